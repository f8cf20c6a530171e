"""The provider interface: one teacher task in, one answer (raw text, parsed object, usage) out.

    provider = get_provider("openai", model="gpt-4.1-mini")
    completion = await provider.agenerate(task)

A provider is a small class: class attributes say what it is and needs (name, label, default model,
key and base-URL environment variables, batch support); `agenerate` is the one method to write.
"""
from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence
from urllib.parse import urlsplit

from datagen.grid import Request
from db.models import Book


class ProviderError(RuntimeError):
    """A provider problem worded for the user (unknown model, missing key, unreachable server)."""


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


def translate_sdk_error(exc, provider: "Provider", sdk, *, not_found_hint: str = "") -> CallError:
    """An openai or anthropic SDK exception -> CallError. Both SDKs share these exception names, so one
    mapping serves both: what to retry, what Retry-After asked for, and a message with no key in it."""
    msg = provider.redact(f"{type(exc).__name__}: {getattr(exc, 'message', None) or exc}")
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    retry_after = None
    if response is not None and response.headers.get("retry-after"):
        try:
            retry_after = float(response.headers["retry-after"])
        except ValueError:
            pass
    if isinstance(exc, sdk.APITimeoutError):
        return CallError(f"timeout after {provider.timeout_s:g} s", retryable=True)
    if isinstance(exc, sdk.APIConnectionError):
        return CallError(f"cannot reach {provider.base_url or f'the {provider.label} API'}: {msg}", retryable=True)
    if isinstance(exc, sdk.RateLimitError):
        return CallError(msg, retryable=True, retry_after=retry_after, http_status=429)
    if isinstance(exc, sdk.AuthenticationError):
        return CallError(f"authentication failed: check {provider.key_env or 'the API key'} ({msg})",
                         retryable=False, http_status=status)
    if isinstance(exc, sdk.NotFoundError):
        return CallError(f"unknown model '{provider.model}'{not_found_hint}: {msg}", retryable=False,
                         http_status=status)
    if isinstance(exc, sdk.APIStatusError):
        # 5xx (Anthropic's 529 "overloaded" included) is worth retrying; other 4xx are not.
        return CallError(msg, retryable=status is not None and status >= 500, retry_after=retry_after,
                         http_status=status)
    return CallError(msg, retryable=False)


@dataclass
class TeacherTask:
    index: int
    request: Request
    instruction: str
    input_text: str
    candidates: list[Book]
    n_books: int
    seed: int
    messages: list[dict] = field(default_factory=list)
    schema: dict = field(default_factory=dict)
    # book id -> retrieval score relative to the best candidate (datagen/retrieval.py); the offline teacher
    # weighs it into its choice. Empty when the candidates came from elsewhere.
    candidate_scores: dict[int, float] = field(default_factory=dict)


@dataclass
class Completion:
    raw: str
    parsed: dict | None = None
    parse_error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    latency_s: float = 0.0
    cost_usd: float | None = None


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


class Provider(ABC):
    name: ClassVar[str]
    label: ClassVar[str]                      # what the UI shows, e.g. "offline template"
    default_model: ClassVar[str]
    key_env: ClassVar[str | None] = None      # e.g. "OPENAI_API_KEY"
    key_required: ClassVar[bool] = True
    base_url_env: ClassVar[str | None] = None
    vendor_url: ClassVar[str | None] = None   # where the key goes when base_url_env is unset (None: nowhere)
    can_batch: ClassVar[bool] = False
    is_api: ClassVar[bool] = True

    def __init__(self, model: str | None = None, *, base_url: str | None = None, timeout_s: float = 60.0):
        self.model = (model or self.default_model).strip()
        if not self.model:
            raise ProviderError(f"No model given for provider '{self.name}'.")
        self.api_key = os.environ.get(self.key_env) if self.key_env else None
        if self.key_env and self.key_required and not self.api_key:
            raise ProviderError(f"No {self.key_env} set: export it (never commit it), or pick the offline provider.")
        self.base_url = base_url or (os.environ.get(self.base_url_env) if self.base_url_env else None)
        if self.api_key and base_url and not same_server(base_url, self.key_url):
            # A key is configured for one server; a URL typed elsewhere (a form, a flag) never receives it.
            self.api_key = None
            if self.key_required:
                raise ProviderError(f"{self.key_env} is only sent to {self.key_url_name}, not to {base_url}: "
                                    f"set {self.base_url_env}={base_url} if that server should get it.")
        self.timeout_s = timeout_s

    @property
    def key_url(self) -> str | None:
        """The one server this provider's key may be sent to: $base_url_env, else the vendor's API."""
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

    def request_record(self, task: TeacherTask) -> dict[str, Any]:
        """What is stored for a call: the messages and parameters, never the key."""
        return {"model": self.model, "messages": task.messages, "n_books": task.n_books}

    @abstractmethod
    async def agenerate(self, task: TeacherTask) -> Completion:
        """Answer one task. Raise CallError for a failed call (retryable or not)."""

    async def aclose(self) -> None:
        pass
