"""Sample generation: catalog, grounding, prompts, providers (offline, OpenAI, Anthropic), validation, jobs."""
