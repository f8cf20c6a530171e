"""One client per model vendor: structured teacher answers and streamed chat behind one interface
(vendors/base.py), each vendor's key variable and default model declared once, on its class.

    from vendors import get_client, DEFAULT_MODELS, KEY_ENVS
    client = get_client("anthropic")                 # ANTHROPIC_API_KEY from the environment
    DEFAULT_MODELS["openai"]                         # 'gpt-4.1-mini'

    openai              GPT via the openai SDK            OPENAI_API_KEY (OPENAI_BASE_URL)
    anthropic           Claude via the anthropic SDK      ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL)
    openai-compatible   vLLM / Ollama / llama.cpp server  OPENAI_COMPATIBLE_BASE_URL (OPENAI_COMPATIBLE_API_KEY optional)

The offline template teacher (datagen/providers/offline.py) and the local transformers backend
(training/backends.py) implement the same interface one floor up, where the catalog and the model live.
"""
from __future__ import annotations

from vendors.anthropic_client import AnthropicClient
from vendors.base import CallError, Completion, Usage, VendorClient, VendorError
from vendors.labels import normalize_kind
from vendors.openai_client import OpenAIClient, OpenAICompatibleClient

API_CLIENTS: dict[str, type[VendorClient]] = {c.name: c for c in (OpenAIClient, AnthropicClient,
                                                                   OpenAICompatibleClient)}
# Derived from the classes, so each is written once. openai-compatible has no default model of its own: the
# server names it (OPENAI_COMPATIBLE_MODEL, else "default").
DEFAULT_MODELS: dict[str, str] = {"openai": OpenAIClient.default_model, "anthropic": AnthropicClient.default_model}
KEY_ENVS: dict[str, str] = {name: cls.key_env for name, cls in API_CLIENTS.items() if cls.key_env}


def get_client(name: str, model: str | None = None, **kw) -> VendorClient:
    """The API client of a vendor by name (`openai_compatible` read as `openai-compatible`)."""
    try:
        cls = API_CLIENTS[normalize_kind(name)]
    except KeyError:
        raise VendorError(f"Unknown vendor '{name}'. Available: {', '.join(sorted(API_CLIENTS))}.") from None
    return cls(model=model, **kw)


__all__ = ["API_CLIENTS", "AnthropicClient", "CallError", "Completion", "DEFAULT_MODELS", "KEY_ENVS",
           "OpenAIClient", "OpenAICompatibleClient", "Usage", "VendorClient", "VendorError", "get_client"]
