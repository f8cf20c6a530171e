"""The vendor interface: one client per model vendor, for structured teacher answers and streamed chat.

    client = get_client("openai", model="gpt-4.1-mini")           # vendors/__init__.py; key from the environment
    completion = await client.agenerate(task)                      # task: messages, schema, seed (a TeacherTask)
    usage = Usage()
    for delta in client.stream_chat([{"role": "user", "content": "Recommend 3 books..."}], max_tokens=400,
                                    usage=usage):
        print(delta, end="")
    if client.can_batch:                                           # the batch loop asks, never checks the name
        batch_id = await client.batch_submit([("job1-req0", task)])

A client is a small class: class attributes say what it is and needs (name, label, default model, key and
base-URL environment variables, batch support); `agenerate` is the one method every client writes, `stream_chat`
and the `batch_*` methods are there for the vendors that offer them. The key variable and default model of each
vendor are declared here and nowhere else; errors never show a key.
"""
from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Protocol, Sequence
from urllib.parse import urlsplit

from db.errors import UserError


class VendorError(UserError, RuntimeError):
    """A vendor problem worded for the user (unknown model, missing key, unreachable server)."""


class CallError(RuntimeError):
    """One failed call. `retryable` calls are retried with backoff (429, 5xx, timeouts, connection drops)."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None,
                 http_status: int | None = None):
        super().__init__(message)
        self.retryable, self.retry_after, self.http_status = retryable, retry_after, http_status


_KEY_PATTERN = re.compile(r"(sk-(?:ant-|proj-)?)[A-Za-z0-9_\-*]{4,}")


def redact(text: str, secrets: Sequence[str | None] = ()) -> str:
    """Remove API keys from anything that may be shown, logged or stored."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            text = text.replace(secret, "***")
    return _KEY_PATTERN.sub(r"\1***", text)


def same_server(a: str | None, b: str | None) -> bool:
    """Whether two base URLs name the same endpoint: scheme, host and port (defaults filled in) and path,
    ignoring case in scheme and host and a trailing slash."""
    if not a or not b:
        return False

    def key(url: str) -> tuple:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        try:
            port = parts.port or {"http": 80, "https": 443}.get(scheme)
        except ValueError:  # a port that is not a number: never the same as anything
            return (url,)
        return scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/")

    return key(a) == key(b)


def translate_sdk_error(exc, client: "VendorClient", sdk, *, not_found_hint: str = "") -> CallError:
    """An openai or anthropic SDK exception -> CallError. Both SDKs share these exception names, so one
    mapping serves both: what to retry, what Retry-After asked for, and a message with no key in it."""
    msg = client.redact(f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    retry_after = None
    if response is not None and response.headers.get("retry-after"):
        try:
            retry_after = float(response.headers["retry-after"])
        except ValueError:
            pass
    if isinstance(exc, sdk.APITimeoutError):
        return CallError(f"timeout after {client.timeout_s:g} s", retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        return CallError(f"cannot reach {client.base_url or f'the {client.label} API'}: {msg}", retryable=True)
    if isinstance(exc, sdk.RateLimitError):
        return CallError(msg, retryable=True, retry_after=retry_after, http_status=429)
    if isinstance(exc, sdk.AuthenticationError):
        return CallError(f"authentication failed: check {client.key_env or 'the API key'} ({msg})",
                         retryable=False, http_status=status)
    if isinstance(exc, sdk.NotFoundError):
        return CallError(f"unknown model '{client.model}'{not_found_hint}: {msg}", retryable=False,
                         http_status=status)
    if isinstance(exc, sdk.APIStatusError):
        # 5xx (Anthropic's 529 "overloaded" included) is worth retrying; other 4xx are not.
        return CallError(msg, retryable=status is not None and status >= 500, retry_after=retry_after,
                         http_status=status)
    return CallError(msg, retryable=False)


class StructuredTask(Protocol):
    """What a structured teacher call needs (datagen's TeacherTask is one): the chat messages, the JSON schema
    of the answer, and a seed for vendors that take one."""

    messages: list[dict]
    schema: dict
    seed: int
    n_books: int


@dataclass
class Completion:
    """One structured answer: the raw text, the parsed object (or why it is not one) and its usage."""

    raw: str
    parsed: dict | None = None
    parse_error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None


@dataclass
class Usage:
    """What one chat call cost: tokens, estimated USD (None when the model's price is unknown; 0 for local
    models), time to first token and total time in seconds."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    finish_reason: str | None = None   # as the vendor said it ("stop", "length", "end_turn", "max_tokens"...)
    truncated: bool = False            # the answer ended at its token limit: cut short, not complete


def parse_answer(raw: str) -> tuple[dict | None, str | None]:
    """The teacher's JSON answer, or why it is not one (truncated, malformed, wrong shape)."""
    text = raw.strip()
    if text.startswith("```"):  # some models wrap JSON in a code fence even in JSON mode
        text = text.strip("`").removeprefix("json").strip()
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        return None, f"format:invalid_json({e.msg} at char {e.pos})"
    books = obj.get("books") if isinstance(obj, dict) else None
    if not isinstance(books, list):
        return None, "format:no_books_array"
    for i, b in enumerate(books, 1):
        if not isinstance(b, dict) or not all(isinstance(b.get(k), str) and b.get(k).strip()
                                              for k in ("title", "author", "reason", "effect")):
            return None, f"format:book_{i}_missing_fields"
    return obj, None


class VendorClient(ABC):
    """One vendor: structured teacher answers (`agenerate`), streamed chat (`stream_chat`) and, where the
    vendor has a batch API, batch operations (`batch_*`)."""

    name: ClassVar[str]
    label: ClassVar[str]                      # what the UI shows, e.g. "offline template"
    default_model: ClassVar[str]
    key_env: ClassVar[str | None] = None      # e.g. "OPENAI_API_KEY"
    key_required: ClassVar[bool] = True
    base_url_env: ClassVar[str | None] = None
    vendor_url: ClassVar[str | None] = None   # where the key goes when base_url_env is unset (None: nowhere)
    can_batch: ClassVar[bool] = False
    can_chat: ClassVar[bool] = False
    is_api: ClassVar[bool] = True

    def __init__(self, model: str | None = None, *, base_url: str | None = None, timeout_s: float = 60.0):
        self.model = (model or self.default_model).strip()
        if not self.model:
            raise VendorError(f"No model given for provider '{self.name}'.")
        self.api_key = os.environ.get(self.key_env) if self.key_env else None
        if self.key_env and self.key_required and not self.api_key:
            raise VendorError(f"No {self.key_env} set: export it (never commit it), or pick the offline provider.")
        self.base_url = base_url or (os.environ.get(self.base_url_env) if self.base_url_env else None)
        if self.api_key and base_url and not same_server(base_url, self.key_url):
            # A key is configured for one server; a URL typed elsewhere (a form, a flag) never receives it.
            self.api_key = None
            if self.key_required:
                raise VendorError(f"{self.key_env} is only sent to {self.key_url_name}, not to {base_url}: "
                                  f"set {self.base_url_env}={base_url} if that server should get it.")
        self.timeout_s = timeout_s

    @property
    def key_url(self) -> str | None:
        """The one server this client's key may be sent to: $base_url_env, else the vendor's API."""
        return (os.environ.get(self.base_url_env) if self.base_url_env else None) or self.vendor_url

    @property
    def key_url_name(self) -> str:
        env = os.environ.get(self.base_url_env) if self.base_url_env else None
        if env:
            return f"{self.base_url_env} ({env})"
        return self.vendor_url or f"{self.base_url_env} (unset)"

    @property
    def sends_key(self) -> bool:
        return bool(self.api_key)

    def redact(self, text: str) -> str:
        return redact(text, [self.api_key])

    def request_record(self, task: StructuredTask) -> dict[str, Any]:
        """What is stored for a call: the messages and parameters, never the key."""
        return {"model": self.model, "messages": task.messages, "n_books": task.n_books}

    def sdk_error(self, exc: BaseException) -> CallError | None:
        """This vendor's SDK error as a CallError (message redacted), or None for anything else."""
        return None

    # -- structured teacher answers ------------------------------------------------------------------------
    @abstractmethod
    async def agenerate(self, task: StructuredTask) -> Completion:
        """Answer one task. Raise CallError for a failed call (retryable or not)."""

    # -- streamed chat ---------------------------------------------------------------------------------------
    def open_chat(self) -> None:
        """Build what `stream_chat` needs now (the SDK client), so that a first-token deadline later measures
        the server, not the client's construction."""

    def stream_chat(self, messages: list[dict], *, max_tokens: int, usage: Usage,
                    temperature: float | None = None) -> Iterator[str]:
        """Yield text deltas of the answer to `messages`; fill `usage` (tokens, finish reason, truncated).
        `temperature`: sample at it (None: the vendor's default). Raise CallError for a failed call."""
        raise VendorError(f"The {self.label} provider does not chat: pick a chat backend.")

    # -- batch API (can_batch) -------------------------------------------------------------------------------
    def _no_batch(self) -> VendorError:
        return VendorError(f"The {self.label} provider has no batch API: run the job without --batch.")

    async def batch_probe(self) -> None:
        """One cheap call that shows the batch endpoint exists and accepts the key."""
        raise self._no_batch()

    async def batch_submit(self, requests: list[tuple[str, StructuredTask]]) -> str:
        """Submit (custom_id, task) pairs as one batch; return the batch id."""
        raise self._no_batch()

    async def batch_done(self, batch_id: str) -> bool:
        raise self._no_batch()

    async def batch_results(self, batch_id: str) -> dict[str, Completion | str]:
        """custom_id -> Completion, or an error message for a request that failed inside the batch."""
        raise self._no_batch()

    async def aclose(self) -> None:
        pass
