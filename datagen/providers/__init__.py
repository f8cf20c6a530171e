"""Teachers that write samples: the offline template teacher and the API vendor clients (vendors/).
`get_provider(name)` picks one.

    provider = get_provider("openai", model="gpt-4.1-mini")
    completion = await provider.agenerate(task)

    offline             catalog templates, no key (the demo's teacher)
    openai              GPT via the openai SDK            OPENAI_API_KEY
    anthropic           Claude via the anthropic SDK      ANTHROPIC_API_KEY
    openai-compatible   vLLM / Ollama / llama.cpp server  OPENAI_COMPATIBLE_BASE_URL (key optional)
"""
from __future__ import annotations

from datagen.providers.offline import OfflineCatalogProvider
from vendors import API_CLIENTS
from vendors.base import VendorClient, VendorError
from vendors.labels import normalize_kind

PROVIDERS: dict[str, type[VendorClient]] = {OfflineCatalogProvider.name: OfflineCatalogProvider, **API_CLIENTS}


def get_provider(name: str, model: str | None = None, **kw) -> VendorClient:
    try:
        cls = PROVIDERS[normalize_kind(name)]
    except KeyError:
        raise VendorError(f"Unknown provider '{name}'. Available: {', '.join(sorted(PROVIDERS))}.") from None
    return cls(model=model, **kw)


