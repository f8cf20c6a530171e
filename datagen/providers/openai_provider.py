"""GPT through the official `openai` SDK, with structured output from a JSON schema; and any
OpenAI-compatible server (vLLM, Ollama, llama.cpp server) by base URL, falling back to JSON mode when the
server does not support strict schemas.

    export OPENAI_API_KEY=...                       # openai
    export OPENAI_COMPATIBLE_BASE_URL=http://localhost:8000/v1   # openai-compatible (key optional)
"""
from __future__ import annotations

from datagen.providers.base import (CallError, Completion, Provider, ProviderError, TeacherTask, parse_answer,
                                   translate_sdk_error)

MAX_OUTPUT_TOKENS = 1200


def translate_openai_error(exc, provider: Provider) -> CallError:
    import openai

    return translate_sdk_error(exc, provider, openai, not_found_hint=" (or wrong base URL)")


class OpenAIProvider(Provider):
    name = "openai"
    label = "OpenAI"
    default_model = "gpt-4.1-mini"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    vendor_url = "https://api.openai.com/v1"
    can_batch = True

    def __init__(self, model: str | None = None, **kw):
        super().__init__(model, **kw)
        self.json_mode_only = False  # set when a server refuses strict json_schema
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import openai

            # Retries are ours (they honour Retry-After and are recorded), so the SDK's are off.
            self._client = openai.AsyncOpenAI(api_key=self.api_key or "not-needed", base_url=self.base_url,
                                              timeout=self.timeout_s, max_retries=0)
        return self._client

    def response_format(self, task: TeacherTask) -> dict:
        if self.json_mode_only:
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": "book_recommendations", "strict": True, "schema": task.schema}}

    def request_body(self, task: TeacherTask) -> dict:
        messages = task.messages
        if self.json_mode_only:  # JSON mode needs the word "JSON" and the shape in the prompt itself
            import json

            messages = messages[:-1] + [{"role": "user", "content": messages[-1]["content"]
                                         + "\n\nReply with a JSON object of this schema:\n" + json.dumps(task.schema)}]
        return {"model": self.model, "messages": messages, "response_format": self.response_format(task),
                "max_tokens": MAX_OUTPUT_TOKENS, "temperature": 0.7, "seed": task.seed}

    def request_record(self, task: TeacherTask) -> dict:
        return self.request_body(task)

    async def agenerate(self, task: TeacherTask) -> Completion:
        import openai

        body = self.request_body(task)
        try:
            resp = await self.client.chat.completions.create(**body)
        except openai.BadRequestError as e:
            if not self.json_mode_only and ("response_format" in str(e) or "json_schema" in str(e)):
                # OpenAI-compatible servers without strict schemas: JSON mode, then our own validation.
                self.json_mode_only = True
                return await self.agenerate(task)
            raise translate_openai_error(e, self) from None
        except openai.OpenAIError as e:
            raise translate_openai_error(e, self) from None
        choice = resp.choices[0] if resp.choices else None
        raw = (choice.message.content or "") if choice else ""
        usage = resp.usage
        parsed, error = parse_answer(raw)
        if choice is not None and choice.finish_reason == "length":
            parsed, error = None, "format:truncated(max_tokens)"
        return Completion(raw=raw, parsed=parsed, parse_error=error,
                          input_tokens=usage.prompt_tokens if usage else 0,
                          output_tokens=usage.completion_tokens if usage else 0,
                          finish_reason=choice.finish_reason if choice else None)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


class OpenAICompatibleProvider(OpenAIProvider):
    name = "openai-compatible"
    label = "OpenAI-compatible server"
    default_model = "default"
    key_env = "OPENAI_COMPATIBLE_API_KEY"
    key_required = False
    base_url_env = "OPENAI_COMPATIBLE_BASE_URL"
    vendor_url = None  # OPENAI_COMPATIBLE_API_KEY goes to OPENAI_COMPATIBLE_BASE_URL and nowhere else
    can_batch = False

    def __init__(self, model: str | None = None, **kw):
        super().__init__(model, **kw)
        if not self.base_url:
            raise ProviderError("The openai-compatible provider needs a base URL: pass --base-url "
                                "http://HOST:PORT/v1 or set OPENAI_COMPATIBLE_BASE_URL.")
