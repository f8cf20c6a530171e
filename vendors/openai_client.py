"""GPT through the official `openai` SDK, and any OpenAI-compatible server (vLLM, Ollama, llama.cpp server) by
base URL: structured teacher answers from a JSON schema (JSON mode when a server has no strict schemas),
streamed chat, and the OpenAI Batch API.

    export OPENAI_API_KEY=...                                     # openai
    export OPENAI_COMPATIBLE_BASE_URL=http://localhost:8000/v1   # openai-compatible (key optional)
    client = OpenAIClient(model="gpt-4.1-mini")

Retries are the caller's (they honour Retry-After and are recorded), so the SDK's are off (max_retries=0).
"""
from __future__ import annotations

import io
import json
from typing import Iterator

from vendors.base import (CallError, Completion, StructuredTask, Usage, VendorClient, VendorError, parse_answer,
                          translate_sdk_error)

MAX_OUTPUT_TOKENS = 1200
BATCH_DONE = ("completed", "failed", "expired", "cancelled")


def completion_from_chat(body: dict) -> Completion:
    """A chat completion as JSON (a batch result line's body) -> Completion."""
    choice = (body.get("choices") or [{}])[0]
    raw = (choice.get("message") or {}).get("content") or ""
    parsed, error = parse_answer(raw)
    if choice.get("finish_reason") == "length":
        parsed, error = None, "format:truncated(max_tokens)"
    usage = body.get("usage") or {}
    return Completion(raw=raw, parsed=parsed, parse_error=error, input_tokens=usage.get("prompt_tokens", 0),
                      output_tokens=usage.get("completion_tokens", 0), finish_reason=choice.get("finish_reason"))


class OpenAIClient(VendorClient):
    name = "openai"
    label = "OpenAI"
    default_model = "gpt-4.1-mini"
    key_env = "OPENAI_API_KEY"
    base_url_env = "OPENAI_BASE_URL"
    vendor_url = "https://api.openai.com/v1"
    can_batch = True
    can_chat = True

    def __init__(self, model: str | None = None, **kw):
        super().__init__(model, **kw)
        self.json_mode_only = False  # set when a server refuses strict json_schema
        self._client = None
        self._sync_client = None

    @property
    def client(self):
        """The async SDK client (teacher calls, batches)."""
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(api_key=self.api_key or "not-needed", base_url=self.base_url,
                                              timeout=self.timeout_s, max_retries=0)
        return self._client

    @property
    def sync_client(self):
        """The blocking SDK client (streamed chat, read in the caller's thread)."""
        if self._sync_client is None:
            import openai

            self._sync_client = openai.OpenAI(api_key=self.api_key or "not-needed", base_url=self.base_url,
                                              timeout=self.timeout_s, max_retries=0)
        return self._sync_client

    def sdk_error(self, exc: BaseException) -> CallError | None:
        import openai

        if not isinstance(exc, openai.OpenAIError):
            return None
        return translate_sdk_error(exc, self, openai, not_found_hint=" (or wrong base URL)")

    # -- structured teacher answers ------------------------------------------------------------------------
    def response_format(self, task: StructuredTask) -> dict:
        if self.json_mode_only:
            return {"type": "json_object"}
        return {"type": "json_schema",
                "json_schema": {"name": "book_recommendations", "strict": True, "schema": task.schema}}

    def request_body(self, task: StructuredTask) -> dict:
        messages = task.messages
        if self.json_mode_only:  # JSON mode needs the word "JSON" and the shape in the prompt itself
            messages = messages[:-1] + [{"role": "user", "content": messages[-1]["content"]
                                         + "\n\nReply with a JSON object of this schema:\n" + json.dumps(task.schema)}]
        return {"model": self.model, "messages": messages, "response_format": self.response_format(task),
                "max_tokens": MAX_OUTPUT_TOKENS, "temperature": 0.7, "seed": task.seed}

    def request_record(self, task: StructuredTask) -> dict:
        return self.request_body(task)

    async def agenerate(self, task: StructuredTask) -> Completion:
        import openai

        body = self.request_body(task)
        try:
            resp = await self.client.chat.completions.create(**body)
        except openai.BadRequestError as e:
            if not self.json_mode_only and ("response_format" in str(e) or "json_schema" in str(e)):
                # OpenAI-compatible servers without strict schemas: JSON mode, then our own validation.
                self.json_mode_only = True
                return await self.agenerate(task)
            raise self.sdk_error(e) from None
        except openai.OpenAIError as e:
            raise self.sdk_error(e) from None
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

    # -- streamed chat ---------------------------------------------------------------------------------------
    def open_chat(self) -> None:
        self.sync_client  # noqa: B018 - built now, outside the first-token deadline

    def stream_chat(self, messages: list[dict], *, max_tokens: int, usage: Usage,
                    temperature: float | None = None) -> Iterator[str]:
        import openai

        extra = {"temperature": temperature} if temperature is not None else {}
        try:
            stream = self.sync_client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=max_tokens, stream=True,
                stream_options={"include_usage": True}, **extra)
            for chunk in stream:
                if chunk.usage is not None:  # the last chunk (choices []) carries the usage
                    usage.prompt_tokens = chunk.usage.prompt_tokens
                    usage.completion_tokens = chunk.usage.completion_tokens
                if chunk.choices and chunk.choices[0].finish_reason:
                    usage.finish_reason = chunk.choices[0].finish_reason
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    yield chunk.choices[0].delta.content
        except openai.OpenAIError as e:
            raise self.sdk_error(e) from None
        usage.truncated = usage.finish_reason == "length"

    # -- the Batch API ---------------------------------------------------------------------------------------
    async def batch_probe(self) -> None:
        await self.client.batches.list(limit=1)

    async def batch_submit(self, requests: list[tuple[str, StructuredTask]]) -> str:
        lines = [json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions",
                             "body": self.request_body(task)}, ensure_ascii=False) for custom_id, task in requests]
        f = await self.client.files.create(file=("batch.jsonl", io.BytesIO("\n".join(lines).encode()),
                                                 "application/jsonl"), purpose="batch")
        b = await self.client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                             completion_window="24h")
        return b.id

    async def batch_done(self, batch_id: str) -> bool:
        return (await self.client.batches.retrieve(batch_id)).status in BATCH_DONE

    async def batch_results(self, batch_id: str) -> dict[str, Completion | str]:
        out: dict[str, Completion | str] = {}
        b = await self.client.batches.retrieve(batch_id)
        for file_id in (b.output_file_id, getattr(b, "error_file_id", None)):
            if not file_id:
                continue
            content = await self.client.files.content(file_id)
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                resp = row.get("response") or {}
                if resp.get("status_code") == 200:
                    out[row["custom_id"]] = completion_from_chat(resp.get("body") or {})
                else:
                    out[row["custom_id"]] = self.redact(json.dumps(row.get("error") or resp)[:500])
        return out

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._sync_client is not None:
            self._sync_client.close()


class OpenAICompatibleClient(OpenAIClient):
    """vLLM, Ollama, llama.cpp server… A vLLM LoRA module is addressed by its name as the model."""

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
            raise VendorError("The openai-compatible provider needs a base URL: pass --base-url "
                              "http://HOST:PORT/v1 or set OPENAI_COMPATIBLE_BASE_URL.")

    batch_probe = VendorClient.batch_probe
    batch_submit = VendorClient.batch_submit
    batch_done = VendorClient.batch_done
    batch_results = VendorClient.batch_results
