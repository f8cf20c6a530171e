"""Claude through the official `anthropic` SDK; structured output by forced tool use (the tool's input
schema is the answer schema).

    export ANTHROPIC_API_KEY=...
"""
from __future__ import annotations

import json

from datagen.providers.base import CallError, Completion, Provider, TeacherTask, parse_answer, translate_sdk_error

MAX_OUTPUT_TOKENS = 1200
TOOL_NAME = "recommend_books"


def translate_anthropic_error(exc, provider: Provider) -> CallError:
    import anthropic

    return translate_sdk_error(exc, provider, anthropic)


class AnthropicProvider(Provider):
    name = "anthropic"
    label = "Anthropic"
    default_model = "claude-haiku-4-5"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    vendor_url = "https://api.anthropic.com"
    can_batch = True

    def __init__(self, model: str | None = None, **kw):
        super().__init__(model, **kw)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url,
                                                    timeout=self.timeout_s, max_retries=0)
        return self._client

    def request_body(self, task: TeacherTask) -> dict:
        system = "\n".join(m["content"] for m in task.messages if m["role"] == "system")
        messages = [m for m in task.messages if m["role"] != "system"]
        return {"model": self.model, "max_tokens": MAX_OUTPUT_TOKENS, "system": system, "messages": messages,
                "tools": [{"name": TOOL_NAME, "description": "Record the recommended books.",
                           "input_schema": task.schema}],
                "tool_choice": {"type": "tool", "name": TOOL_NAME}}

    def request_record(self, task: TeacherTask) -> dict:
        return self.request_body(task)

    async def agenerate(self, task: TeacherTask) -> Completion:
        import anthropic

        try:
            msg = await self.client.messages.create(**self.request_body(task))
        except anthropic.AnthropicError as e:
            raise translate_anthropic_error(e, self) from None
        return completion_from_message(msg)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()


def completion_from_message(msg) -> Completion:
    """A Claude message (live or from a batch) -> Completion: the tool input, or JSON in a text block."""
    tool = next((b for b in msg.content if getattr(b, "type", None) == "tool_use"), None)
    if tool is not None:
        raw = json.dumps(tool.input, ensure_ascii=False)
        parsed, error = parse_answer(raw)
    else:
        raw = "".join(getattr(b, "text", "") for b in msg.content)
        parsed, error = parse_answer(raw)
    if msg.stop_reason == "max_tokens":
        parsed, error = None, "format:truncated(max_tokens)"
    usage = msg.usage
    return Completion(raw=raw, parsed=parsed, parse_error=error, input_tokens=usage.input_tokens if usage else 0,
                      output_tokens=usage.output_tokens if usage else 0, finish_reason=msg.stop_reason)
