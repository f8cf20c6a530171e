"""Teachers that write samples. Each is a small class; `get_provider(name)` picks one.

Issue #3 adds OpenAI, Anthropic and OpenAI-compatible providers behind the same interface.
"""
from __future__ import annotations

from datagen.providers.base import Completion, Provider, ProviderError
from datagen.providers.offline import OfflineCatalogProvider

PROVIDERS: dict[str, type[Provider]] = {OfflineCatalogProvider.name: OfflineCatalogProvider}


def get_provider(name: str, model: str | None = None) -> Provider:
    try:
        cls = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"Unknown provider '{name}'. Available here: {', '.join(sorted(PROVIDERS))}.") from None
    return cls(model=model)


__all__ = ["Completion", "Provider", "ProviderError", "get_provider", "PROVIDERS"]
