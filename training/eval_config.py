"""EvalConfig — the one object behind the Evaluate tab, `moodshelf eval` flags and an evaluation's stored config.

    moodshelf eval --run-id 3                        # base model and run 3's adapter on run 3's eval split
    moodshelf eval --backend openai:gpt-4.1-mini --run-id 3 --limit 20 --judge auto
    moodshelf eval --backend base --backend run:3 --requests grid --count 20 --language en   # unseen requests
    moodshelf eval --backend run:3 --requests-file reqs.jsonl --no-constrained

Two kinds of evaluation: on a training run's held-out eval split (requests=split: answers scored against the
samples' reference answers), or on a request set without references (requests=grid: drawn from the request
grid with a seed no generation job used; requests=file: a JSONL file), each request answered through the
recommendation pipeline (training/recommend.py), with catalog-constrained decoding for local backends unless
constrained is off.

A backend is named by a short string (or the app's label for it; training/backends.BackendSpec does the rest):
    base                              the local base model (base_model, or the training run's)
    run:3                             the adapter of finished training run 3, on its base model
    openai:MODEL / anthropic:MODEL    an API model (OPENAI_API_KEY / ANTHROPIC_API_KEY)
    openai-compatible:MODEL@URL       any OpenAI-compatible server (vLLM, Ollama, llama.cpp server)

Validation collects every problem and raises once with all of them (workers/config.ConfigModel).
"""
from __future__ import annotations

import os
from typing import ClassVar

from pydantic import Field, model_validator

from db.errors import UserError
from vendors import DEFAULT_MODELS, KEY_ENVS
from vendors.labels import GRAMMAR, format_label
from workers.config import ConfigModel

REQUEST_SOURCES = ("split", "grid", "file")
LANGUAGES = ("ko", "en")
KEY_ENV = {kind: KEY_ENVS[kind] for kind in DEFAULT_MODELS}   # the vendors a judge needs a key for
DEFAULT_JUDGE_MODELS = DEFAULT_MODELS


class EvalError(UserError, ValueError):
    """An evaluation that cannot be configured, created or started, worded for the user."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else problems
        text = self.problems[0] if len(self.problems) == 1 else \
            "Invalid evaluation:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


def parse_backend(name: str):
    """A BackendSpec (training/backends.py) from a backend name in the one grammar (vendors/labels.py: base,
    run:3, openai:MODEL, anthropic:MODEL, openai-compatible:MODEL@URL; older stored spellings still parse)."""
    from training.backends import BackendError, BackendSpec

    try:
        return BackendSpec.from_label(name)
    except BackendError:
        raise EvalError(f"Unknown backend {(name or '').strip()!r}: use {GRAMMAR}.") from None


def backend_name(spec) -> str:
    """The short, stable name stored with an evaluation (what before/after matches on): the label without a
    run's display name."""
    return format_label(spec.kind, spec.model, spec.adapter_run, "", spec.base_url)


def missing_key(spec) -> str | None:
    env = KEY_ENV.get(spec.kind)
    if env and not os.environ.get(env):
        return f"No {env} set for backend {backend_name(spec)}: export it, or evaluate a local backend."
    return None


class EvalConfig(ConfigModel):
    """One evaluation: a backend answering the eval split or a request set."""

    error: ClassVar[type[Exception]] = EvalError
    unknown_setting: ClassVar[str] = "Unknown evaluation setting(s): {names}."

    backend: str = Field("base", description=
        "base, run:N (a training run's adapter), openai:MODEL, anthropic:MODEL, openai-compatible:MODEL@URL")
    run_id: int | None = Field(None, description=
        "training run whose held-out eval split is used (default: the adapter's run; without one, every sample in "
        "the eval split)")
    base_model: str = Field("", description=
        "base model of local backends (default: the training run's, else the embedded default)")
    limit: int = Field(0, description="evaluate the first N eval samples only (0: all)")
    max_new_tokens: int = Field(320, description="answer length limit in tokens")
    judge: str = Field("", description=
        "LLM judge scoring each answer 1-5: empty (none), auto (OpenAI or Anthropic, whichever key is set), or a "
        "backend name such as openai:gpt-4.1-mini")
    requests: str = Field("split", json_schema_extra={"choices": list(REQUEST_SOURCES)}, description=
        "what is answered: split (the held-out eval split, scored against its reference answers), grid (unseen "
        "requests drawn from the request grid) or file (a JSONL file of requests, --requests-file)")
    requests_file: str = Field("", description=
        "JSONL file, one request per line: language, emotion, occupation, effects, situation, focus, free_text "
        "(implies requests=file)")
    language: str = Field("en", description="grid requests: ko, en or ko,en")
    count: int = Field(20, description="grid requests per language")
    seed: int | None = Field(None, description=
        "grid seed, one no generation job used (default: the first unused one from 9001)")
    constrained: bool | None = Field(None, description=
        "catalog-constrained decoding on request sets (default: on for local backends; API models cannot be "
        "constrained)")
    concurrency: int = Field(8, description="request-set answers generated at once (the local engine batches them)")

    @model_validator(mode="after")
    def _file_implies_requests_file(self) -> "EvalConfig":
        if self.requests_file and self.requests == "split":  # --requests-file alone says which source
            self.requests = "file"
        return self

    @property
    def on_requests(self) -> bool:
        """A request set (grid or file), not the eval split."""
        return self.requests != "split"

    @property
    def languages(self) -> list[str]:
        return [x.strip() for x in self.language.split(",") if x.strip()]

    def problems(self) -> list[str]:
        p = []
        if self.requests not in REQUEST_SOURCES:
            p.append(f"requests must be one of {', '.join(REQUEST_SOURCES)} (got {self.requests!r})")
        elif self.requests == "file" and not self.requests_file:
            p.append("requests=file needs the file: --requests-file PATH (JSONL, one request per line)")
        elif self.requests == "grid":
            bad = [x for x in self.languages if x not in LANGUAGES]
            if bad or not self.languages:
                p.append(f"language must be ko, en or ko,en (got {self.language!r})")
            if self.count <= 0:
                p.append(f"count must be > 0 (got {self.count})")
        if self.on_requests:
            if self.concurrency <= 0:
                p.append(f"concurrency must be > 0 (got {self.concurrency})")
            if self.judge:
                p.append("The LLM judge compares an answer with its reference answer; a request set has none: "
                         "leave the judge empty, or evaluate on the eval split.")
        elif self.constrained:
            p.append("Constrained decoding is evaluated on request sets (--requests grid or --requests-file): the "
                     "eval split scores what a model writes freely against the reference answers.")
        try:
            if (msg := missing_key(parse_backend(self.backend))) is not None:
                p.append(msg)
        except EvalError as e:
            p += e.problems
        if self.limit < 0:
            p.append(f"limit must be >= 0 (got {self.limit})")
        if self.max_new_tokens <= 0:
            p.append(f"max_new_tokens must be > 0 (got {self.max_new_tokens})")
        if self.judge:
            try:
                self.judge_spec()
            except EvalError as e:
                p += e.problems
        return p

    def backend_spec(self):
        return parse_backend(self.backend)

    def judge_spec(self):
        """The judge's backend, or None. 'auto' picks the API whose key is set, OpenAI first."""
        if not self.judge:
            return None
        if self.judge == "auto":
            for kind in ("openai", "anthropic"):
                if os.environ.get(KEY_ENV[kind]):
                    return parse_backend(f"{kind}:{DEFAULT_JUDGE_MODELS[kind]}")
            raise EvalError("judge 'auto' needs OPENAI_API_KEY or ANTHROPIC_API_KEY: export one, or leave the "
                            "judge empty.")
        ref = parse_backend(self.judge)
        if ref.kind == "local":
            raise EvalError("The judge must be an API model (openai:MODEL, anthropic:MODEL or "
                            "openai-compatible:MODEL@URL), not a local one.")
        if (msg := missing_key(ref)) is not None:
            raise EvalError(msg.replace("for backend", "for the judge"))
        return ref
