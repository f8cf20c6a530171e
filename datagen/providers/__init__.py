"""Teachers that write samples. Each is a small class; `get_provider(name)` picks one.

    offline             catalog templates, no key (the demo's teacher)
    openai              GPT via the openai SDK            OPENAI_API_KEY
    anthropic           Claude via the anthropic SDK      ANTHROPIC_API_KEY
    openai-compatible   vLLM / Ollama / llama.cpp server  OPENAI_COMPATIBLE_BASE_URL (key optional)
"""
from __future__ import annotations

from datagen.providers.anthropic_provider import AnthropicProvider
from datagen.providers.base import CallError, Completion, Provider, ProviderError, TeacherTask
from datagen.providers.offline import OfflineCatalogProvider
from datagen.providers.openai_provider import OpenAICompatibleProvider, OpenAIProvider

PROVIDERS: dict[str, type[Provider]] = {p.name: p for p in (
    OfflineCatalogProvider, OpenAIProvider, AnthropicProvider, OpenAICompatibleProvider)}


def get_provider(name: str, model: str | None = None, **kw) -> Provider:
    try:
        cls = PROVIDERS[name]
    except KeyError:
        raise ProviderError(f"Unknown provider '{name}'. Available: {', '.join(sorted(PROVIDERS))}.") from None
    return cls(model=model, **kw)


__all__ = ["CallError", "Completion", "Provider", "ProviderError", "TeacherTask", "get_provider", "PROVIDERS"]
