"""Claude through the official `anthropic` SDK: structured teacher answers by forced tool use (the tool's input
schema is the answer schema), streamed chat, and Message Batches.

    export ANTHROPIC_API_KEY=...
    client = AnthropicClient(model="claude-haiku-4-5")

Retries are the caller's (they honour Retry-After and are recorded), so the SDK's are off (max_retries=0).
"""
from __future__ import annotations

import json
from typing import Iterator

from vendors.base import (CallError, Completion, StructuredTask, Usage, VendorClient, parse_answer,
                          translate_sdk_error)

MAX_OUTPUT_TOKENS = 1200
TOOL_NAME = "recommend_books"


def split_system(messages: list[dict]) -> tuple[str, list[dict]]:
    """Claude takes the system prompt as a parameter, not as a message."""
    system = "\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
    return system, [m for m in messages if m.get("role") != "system"]


def completion_from_message(msg) -> Completion:
    """A Claude message (live or from a batch) -> Completion: the tool input, or JSON in a text block."""
    tool = next((b for b in msg.content if getattr(b, "type", None) == "tool_use"), None)
    if tool is not None:
        raw = json.dumps(tool.input, ensure_ascii=False)
    else:
        raw = "".join(getattr(b, "text", "") for b in msg.content)
    parsed, error = parse_answer(raw)
    if msg.stop_reason == "max_tokens":
        parsed, error = None, "format:truncated(max_tokens)"
    usage = msg.usage
    return Completion(raw=raw, parsed=parsed, parse_error=error, input_tokens=usage.input_tokens if usage else 0,
                      output_tokens=usage.output_tokens if usage else 0, finish_reason=msg.stop_reason)


class AnthropicClient(VendorClient):
    name = "anthropic"
    label = "Anthropic"
    default_model = "claude-haiku-4-5"
    key_env = "ANTHROPIC_API_KEY"
    base_url_env = "ANTHROPIC_BASE_URL"
    vendor_url = "https://api.anthropic.com"
    can_batch = True
    can_chat = True

    def __init__(self, model: str | None = None, **kw):
        super().__init__(model, **kw)
        self._client = None
        self._sync_client = None

    @property
    def client(self):
        """The async SDK client (teacher calls, batches)."""
        if self._client is None:
            import anthropic

            self._client = anthropic.AsyncAnthropic(api_key=self.api_key, base_url=self.base_url,
                                                    timeout=self.timeout_s, max_retries=0)
        return self._client

    @property
    def sync_client(self):
        """The blocking SDK client (streamed chat, read in the caller's thread)."""
        if self._sync_client is None:
            import anthropic

            self._sync_client = anthropic.Anthropic(api_key=self.api_key, base_url=self.base_url,
                                                    timeout=self.timeout_s, max_retries=0)
        return self._sync_client

    def sdk_error(self, exc: BaseException) -> CallError | None:
        import anthropic

        return translate_sdk_error(exc, self, anthropic) if isinstance(exc, anthropic.AnthropicError) else None

    # -- structured teacher answers ------------------------------------------------------------------------
    def request_body(self, task: StructuredTask) -> dict:
        system, messages = split_system(task.messages)
        return {"model": self.model, "max_tokens": MAX_OUTPUT_TOKENS, "system": system, "messages": messages,
                "tools": [{"name": TOOL_NAME, "description": "Record the recommended books.",
                           "input_schema": task.schema}],
                "tool_choice": {"type": "tool", "name": TOOL_NAME}}

    def request_record(self, task: StructuredTask) -> dict:
        return self.request_body(task)

    async def agenerate(self, task: StructuredTask) -> Completion:
        import anthropic

        try:
            msg = await self.client.messages.create(**self.request_body(task))
        except anthropic.AnthropicError as e:
            raise self.sdk_error(e) from None
        return completion_from_message(msg)

    # -- streamed chat ---------------------------------------------------------------------------------------
    def open_chat(self) -> None:
        self.sync_client  # noqa: B018 - built now, outside the first-token deadline

    def stream_chat(self, messages: list[dict], *, max_tokens: int, usage: Usage,
                    temperature: float | None = None) -> Iterator[str]:
        import anthropic

        system, chat = split_system(messages)
        body = {"model": self.model, "max_tokens": max_tokens, "messages": chat}
        if system:
            body["system"] = system
        if temperature is not None:
            body["temperature"] = min(temperature, 1.0)  # Anthropic's range is 0–1
        try:
            with self.sync_client.messages.stream(**body) as stream:
                yield from stream.text_stream
                final = stream.get_final_message()
        except anthropic.AnthropicError as e:
            raise self.sdk_error(e) from None
        usage.prompt_tokens = final.usage.input_tokens
        usage.completion_tokens = final.usage.output_tokens
        usage.finish_reason = final.stop_reason
        usage.truncated = final.stop_reason == "max_tokens"

    # -- Message Batches -------------------------------------------------------------------------------------
    async def batch_probe(self) -> None:
        await self.client.messages.batches.list(limit=1)

    async def batch_submit(self, requests: list[tuple[str, StructuredTask]]) -> str:
        b = await self.client.messages.batches.create(requests=[
            {"custom_id": custom_id, "params": self.request_body(task)} for custom_id, task in requests])
        return b.id

    async def batch_done(self, batch_id: str) -> bool:
        return (await self.client.messages.batches.retrieve(batch_id)).processing_status == "ended"

    async def batch_results(self, batch_id: str) -> dict[str, Completion | str]:
        out: dict[str, Completion | str] = {}
        async for row in await self.client.messages.batches.results(batch_id):
            if row.result.type == "succeeded":
                out[row.custom_id] = completion_from_message(row.result.message)
            else:
                out[row.custom_id] = self.redact(str(getattr(row.result, "error", row.result.type))[:500])
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._sync_client is not None:
            self._sync_client.close()
