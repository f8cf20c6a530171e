"""Chat backends: one small interface over everything that answers a request — messages in, streamed text
and usage out. The Recommend, Compare and Arena tabs and batch evaluation all use it.

    spec = BackendSpec.from_label("openai:gpt-4.1-mini")           # or BackendSpec(kind="openai", model=...)
    backend = make_backend(spec)                                    # keys come from the environment only
    for delta in backend.stream([{"role": "user", "content": "Recommend 3 books..."}], max_new_tokens=400):
        print(delta, end="")
    print(backend.usage)            # prompt/completion tokens, estimated cost (None: unknown price), ttft, total

    local = make_backend(BackendSpec(kind="local", adapter_run=3), local_model=lm, db=db)   # run:3's adapter

kinds (names follow the one grammar of vendors/labels.py: base, run:3, openai:MODEL, openai-compatible:MODEL@URL)
    local              the shared base model (training/inference.LocalModel), or one finished run's adapter
    openai             GPT through vendors/openai_client.py                  OPENAI_API_KEY (OPENAI_BASE_URL)
    anthropic          Claude through vendors/anthropic_client.py            ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL)
    openai-compatible  any OpenAI-compatible URL: vLLM (a LoRA module is a model name), Ollama, llama.cpp
                       server; key optional                                  OPENAI_COMPATIBLE_API_KEY

API backends stream through the vendor clients (vendors/), the same clients that write teacher samples, so a
key is looked up, sent, redacted and explained in one place. A backend object holds the usage of its last
call, so make one per column/request (they are cheap); the local model behind local backends is shared and
queues generations itself.

API backends give up when the first token takes longer than `first_token_timeout_s` (20 s by default; the app
reads MOODSHELF_FIRST_TOKEN_TIMEOUT_S) with one line, instead of a column that shows nothing for a minute. An
answer that ended at its token limit (OpenAI finish_reason "length", Anthropic stop_reason "max_tokens", a local
model that reached max_new_tokens) has `usage.truncated` set, so the page can say it was cut short.
"""
from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterator, Literal

from datagen.pricing import estimate_cost
from vendors import DEFAULT_MODELS, KEY_ENVS, CallError, Usage, VendorError, get_client
from vendors.base import redact
from vendors.labels import BASE, KINDS, LabelError, format_label, normalize_kind, parse_label

Kind = Literal["local", "offline", "openai", "anthropic", "openai-compatible"]
BASE_LABEL = BASE
DEFAULT_API_MODELS = DEFAULT_MODELS
FIRST_TOKEN_TIMEOUT_S = 20.0


class BackendError(RuntimeError):
    """A backend that cannot be made or that failed mid-answer, in one line with no key in it."""


@dataclass(frozen=True)
class BackendSpec:
    """What answers: the kind, the model and, for local backends, which run's adapter (None: the base).

    `label` is what the UI shows and the CLI takes, and `from_label` reads it back (vendors/labels.py):
        base | run:3 (tiny) | openai:gpt-4.1-mini | anthropic:claude-haiku-4-5 |
        openai-compatible:my-lora@http://127.0.0.1:8000/v1
    """

    kind: Kind
    model: str = ""                   # API model id / LoRA module name; "" for local (the loaded base)
    adapter_run: int | None = None    # local only: a finished training run's id
    run_name: str = ""                # local only: shown after the run id
    base_url: str | None = None       # openai-compatible (required), openai/anthropic (optional proxy)

    def __post_init__(self):
        object.__setattr__(self, "kind", normalize_kind(self.kind))  # rows stored as openai_compatible load
        if self.kind not in KINDS:
            raise BackendError(f"Unknown backend kind '{self.kind}'. Kinds: {', '.join(KINDS)}.")
        if self.kind == "openai-compatible" and not self.base_url:
            raise BackendError("An OpenAI-compatible backend needs a base URL, e.g. http://127.0.0.1:8000/v1.")

    @property
    def is_local(self) -> bool:
        return self.kind == "local"

    @property
    def label(self) -> str:
        model = self.model or DEFAULT_MODELS.get(self.kind, "")
        return format_label(self.kind, model, self.adapter_run, self.run_name, self.base_url)

    @classmethod
    def from_label(cls, label: str) -> "BackendSpec":
        try:
            p = parse_label(label)
        except LabelError as e:
            raise BackendError(str(e)) from None
        return cls(kind=p.kind, model=p.model, adapter_run=p.adapter_run, run_name=p.run_name,  # type: ignore[arg-type]
                   base_url=p.base_url)


class Backend(ABC):
    """Messages in, text deltas out. Subclasses write `_deltas` (and fill `self.usage` tokens/cost);
    `stream` adds the timing and turns any failure into one BackendError line."""

    kind: ClassVar[str]
    can_stream: ClassVar[bool] = True
    first_token_timeout_s: float | None = None   # None: wait as long as it takes (a local model's queue)
    # Sampling temperature of the next answers; None: the backend's default (greedy for a local model, so one
    # request always gets one answer). The Arena sets it so two battles on one request can differ.
    temperature: float | None = None

    def __init__(self, spec: BackendSpec, *, system_prompt: str | None = None):
        self.spec = spec
        self.system_prompt = system_prompt
        self.usage = Usage()

    @property
    def label(self) -> str:
        return self.spec.label

    def stream(self, messages: list[dict], *, max_new_tokens: int = 400) -> Iterator[str]:
        if not messages or not any(str(m.get("content") or "").strip() for m in messages):
            raise BackendError("The request is empty: there is nothing to answer.")
        self.usage = Usage()
        t0 = time.perf_counter()
        deltas = self._deltas(messages, max_new_tokens)
        if self.first_token_timeout_s:
            deltas = first_token_deadline(deltas, self.first_token_timeout_s, self.label)
        try:
            for delta in deltas:
                if not delta:
                    continue
                if self.usage.ttft_s is None:
                    self.usage.ttft_s = time.perf_counter() - t0
                self.usage.total_s = time.perf_counter() - t0
                yield delta
        except BackendError:
            raise
        except Exception as e:  # noqa: BLE001 - every failure reaches the user as one clear line
            raise BackendError(self.describe_error(e)) from e
        finally:
            self.usage.total_s = time.perf_counter() - t0

    def complete(self, messages: list[dict], *, max_new_tokens: int = 400) -> str:
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens))

    def queue_stats(self):
        """The live place of the answer being streamed in a local model's queue (training/batching.StreamStats:
        writing, ahead_now, wait_s, left_s), or None: an API answer waits on its server, not on a queue here."""
        return None

    def describe_error(self, exc: Exception) -> str:
        return redact(f"{self.label}: {type(exc).__name__}: {exc}")

    @abstractmethod
    def _deltas(self, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
        """Yield text deltas; set self.usage.prompt_tokens / completion_tokens / cost_usd."""


def first_token_deadline(deltas: Iterator[str], timeout_s: float, label: str) -> Iterator[str]:
    """`deltas`, read in a thread of its own, with a deadline on the first non-empty one: a server that accepts
    the request and then sends nothing (or only keep-alive pings) fails after `timeout_s` with one line. After
    the first token the SDK's own read timeout applies. An abandoned reader ends when its request does."""
    items: "queue.Queue[tuple[str, object]]" = queue.Queue()
    abandoned = threading.Event()

    def pump() -> None:
        try:
            for delta in deltas:
                items.put(("delta", delta))
                if abandoned.is_set():
                    break
        except BaseException as e:  # noqa: BLE001 - raised again in the reader's thread
            items.put(("error", e))
        else:
            items.put(("end", None))
        finally:
            close = getattr(deltas, "close", None)
            if close is not None:  # ends the SDK stream (and its connection) in the thread that read it
                close()

    threading.Thread(target=pump, name=f"first-token:{label}", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    started = False
    try:
        while True:
            try:
                kind, value = items.get(timeout=None if started else max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BackendError(f"{label}: no answer within {timeout_s:g} s (first-token timeout); the server "
                                   "may be overloaded or down — try again later.") from None
            if kind == "error":
                raise value  # type: ignore[misc]
            if kind == "end":
                return
            started = started or bool(value)
            yield value  # type: ignore[misc]
    finally:
        abandoned.set()


# ------------------------------------------------------------------------------------------------------ local
class LocalBackend(Backend):
    """The shared LocalModel with one adapter active (or none). The model's own worker queues generations,
    so a local column waits its turn while API columns stream."""

    kind = "local"

    def __init__(self, spec: BackendSpec, local_model, adapter: str | None, **kw):
        super().__init__(spec, **kw)
        self.local_model, self.adapter = local_model, adapter
        # Catalog-constrained decoding of the next answer (a training/constrained.RowConstraint, one per
        # answer: it keeps the answer's state), or None.
        self.constraint = None
        from training.inference import StreamStats

        self._stats = StreamStats()  # replaced by each answer's own; until then: its turn, nothing ahead

    def queue_stats(self):
        return self._stats

    def _deltas(self, messages, max_new_tokens):
        from training.inference import StreamStats

        stats = self._stats = StreamStats()
        # The student was trained on user turns only; a system prompt written for API models would be a
        # distribution shift, so local backends never get one.
        chat = [m for m in messages if m.get("role") != "system"]
        extra = {"row_processor": self.constraint} if self.constraint is not None else {}
        if self.temperature:
            extra["temperature"] = self.temperature
        yield from self.local_model.stream(chat, adapter=self.adapter, max_new_tokens=max_new_tokens, stats=stats,
                                           **extra)
        self.usage.prompt_tokens, self.usage.completion_tokens = stats.prompt_tokens, stats.tokens
        self.usage.cost_usd = 0.0
        self.usage.truncated = stats.truncated
        self.usage.finish_reason = "length" if stats.truncated else "stop"


def attach_run_adapter(local_model, db, run_id: int) -> str:
    """Load a finished run's adapter onto the shared model under the name run-N; refuse an adapter trained
    on another base model (its weights would not fit)."""
    from db.models import TrainingRun

    with db.session() as s:
        run = s.get(TrainingRun, run_id)
    if run is None or not run.adapter_path:
        raise BackendError(f"Run #{run_id} has no adapter: it has not finished, or it was deleted.")
    if run.base_model != local_model.base_model:
        raise BackendError(f"Run #{run_id} was trained on {run.base_model}, but the loaded base model is "
                           f"{local_model.base_model}: its adapter does not fit.")
    name = f"run-{run_id}"
    local_model.add_adapter(name, run.adapter_path)
    return name


# -------------------------------------------------------------------------------------------------------- API
class APIBackend(Backend):
    """An API model, streamed through its vendor client (vendors/): the same client that writes teacher
    samples, so a key is looked up, redacted and explained in exactly one place."""

    def __init__(self, spec: BackendSpec, *, timeout_s: float = 60.0,
                 first_token_timeout_s: float | None = FIRST_TOKEN_TIMEOUT_S, **kw):
        super().__init__(spec, **kw)
        self.first_token_timeout_s = first_token_timeout_s
        try:
            self.client = get_client(spec.kind, model=spec.model or None, base_url=spec.base_url,
                                     timeout_s=timeout_s)
            self.client.open_chat()
        except VendorError as e:
            raise BackendError(str(e)) from None

    @property
    def kind(self) -> str:  # type: ignore[override]
        return self.spec.kind

    def with_system(self, messages: list[dict]) -> list[dict]:
        if self.system_prompt and not any(m.get("role") == "system" for m in messages):
            return [{"role": "system", "content": self.system_prompt}, *messages]
        return messages

    def describe_error(self, exc: Exception) -> str:
        return self.client.redact(super().describe_error(exc))

    def _deltas(self, messages, max_new_tokens):
        try:
            yield from self.client.stream_chat(self.with_system(messages), max_tokens=max_new_tokens,
                                               usage=self.usage, temperature=self.temperature)
        except CallError as e:
            raise BackendError(f"{self.label}: {e}") from None
        # A self-hosted server has no list price to estimate from.
        self.usage.cost_usd = None if self.spec.kind == "openai-compatible" else estimate_cost(
            self.client.model, self.usage.prompt_tokens, self.usage.completion_tokens)


def make_backend(spec: BackendSpec, *, local_model=None, db=None, system_prompt: str | None = None,
                 timeout_s: float = 60.0, first_token_timeout_s: float | None = FIRST_TOKEN_TIMEOUT_S) -> Backend:
    """A backend for a spec. Local backends need the shared LocalModel (and the DB for a run's adapter);
    API backends read their key from the environment and raise BackendError naming the variable to set."""
    if spec.kind == "offline":
        return OfflineTeacherBackend(spec)
    if spec.kind == "local":
        if local_model is None:
            raise BackendError("A local backend needs the loaded base model (local_model=...).")
        adapter = None
        if spec.adapter_run is not None:
            if db is None:
                raise BackendError("A fine-tuned backend needs the database to find its run's adapter (db=...).")
            adapter = attach_run_adapter(local_model, db, spec.adapter_run)
        return LocalBackend(spec, local_model, adapter, system_prompt=system_prompt)
    return APIBackend(spec, system_prompt=system_prompt, timeout_s=timeout_s,
                      first_token_timeout_s=first_token_timeout_s)


class OfflineTeacherBackend(Backend):
    """The offline template teacher (datagen/providers/offline.py) answering a reader's request the way it wrote
    the demo's samples: it chooses among the request's catalog candidates and explains each choice. It needs the
    request, not only messages: the recommendation pipeline hands it `task` (a TeacherTask) before streaming."""

    kind = "offline"

    def __init__(self, spec: BackendSpec, **_):
        super().__init__(spec)
        self.task = None

    def _deltas(self, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
        import asyncio

        from datagen.job_runner import render_answer
        from datagen.providers.offline import OfflineCatalogProvider

        if self.task is None:
            raise BackendError("The offline template teacher answers requests from the form (Recommend, Compare, "
                               "Arena), not free chat messages.")
        completion = asyncio.run(OfflineCatalogProvider().agenerate(self.task))
        text = render_answer(completion.parsed, self.task.request.language)
        self.usage.completion_tokens, self.usage.cost_usd = len(text.split()), 0.0
        for line in text.splitlines(keepends=True):  # line by line, as a streamed answer arrives
            yield line


def api_backends_available() -> dict[str, bool]:
    """Which API kinds have a key in the environment (the Compare tab says how to add a missing one)."""
    import os

    return {kind: bool(os.environ.get(KEY_ENVS[kind])) for kind in DEFAULT_MODELS}


__all__ = ["APIBackend", "Backend", "BackendError", "BackendSpec", "BASE_LABEL", "DEFAULT_API_MODELS",
           "FIRST_TOKEN_TIMEOUT_S", "KEY_ENVS", "KINDS", "OfflineTeacherBackend", "Usage", "api_backends_available",
           "attach_run_adapter", "first_token_deadline", "make_backend"]
