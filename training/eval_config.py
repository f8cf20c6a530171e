"""EvalConfig — the one object behind the Evaluate tab, `moodshelf eval` flags and an evaluation's stored config.

    moodshelf eval --run-id 3                        # base model and run 3's adapter on run 3's eval split
    moodshelf eval --backend openai:gpt-4.1-mini --run-id 3 --limit 20 --judge auto

A backend is named by a short string, the same in the tab, the CLI and the database:
    base                              the local base model (base_model, or the training run's)
    run:3                             the adapter of finished training run 3, on its base model
    openai:MODEL / anthropic:MODEL    an API model (OPENAI_API_KEY / ANTHROPIC_API_KEY)
    openai-compatible:MODEL@URL       any OpenAI-compatible server (vLLM, Ollama, llama.cpp server)

Validation collects every problem and raises once with all of them.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

API_KINDS = ("openai", "anthropic", "openai-compatible")
KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}
DEFAULT_JUDGE_MODELS = {"openai": "gpt-4.1-mini", "anthropic": "claude-haiku-4-5"}


class EvalError(ValueError):
    """An evaluation that cannot be configured, created or started, worded for the user."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else problems
        text = self.problems[0] if len(self.problems) == 1 else \
            "Invalid evaluation:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


@dataclass(frozen=True)
class BackendRef:
    """A parsed backend name: kind local/openai/anthropic/openai-compatible, model, adapter run, URL."""

    kind: str
    model: str = ""
    run_id: int | None = None
    base_url: str = ""

    @classmethod
    def parse(cls, name: str) -> "BackendRef":
        name = (name or "").strip()
        if name in ("base", "base model"):
            return cls("local")
        head, _, rest = name.partition(":")
        if head == "run" and rest.strip().lstrip("#").isdigit():
            return cls("local", run_id=int(rest.strip().lstrip("#")))
        if head == "openai-compatible" and "@" in rest:
            model, _, url = rest.partition("@")
            if model.strip() and url.strip():
                return cls(head, model=model.strip(), base_url=url.strip())
        if head in ("openai", "anthropic") and rest.strip():
            return cls(head, model=rest.strip())
        raise EvalError(f"Unknown backend {name!r}: use base, run:N, openai:MODEL, anthropic:MODEL or "
                        "openai-compatible:MODEL@URL.")

    @property
    def name(self) -> str:
        if self.kind == "local":
            return "base" if self.run_id is None else f"run:{self.run_id}"
        if self.kind == "openai-compatible":
            return f"{self.kind}:{self.model}@{self.base_url}"
        return f"{self.kind}:{self.model}"

    def missing_key(self) -> str | None:
        env = KEY_ENV.get(self.kind)
        if env and not os.environ.get(env):
            return f"No {env} set for backend {self.name}: export it, or evaluate a local backend."
        return None


@dataclass
class EvalConfig:
    backend: str = field(default="base", metadata={
        "help": "base, run:N (a training run's adapter), openai:MODEL, anthropic:MODEL, openai-compatible:MODEL@URL"})
    run_id: int | None = field(default=None, metadata={
        "help": "training run whose held-out eval split is used (default: the adapter's run; without one, "
                "every sample in the eval split)"})
    base_model: str = field(default="", metadata={
        "help": "base model of local backends (default: the training run's, else the embedded default)"})
    limit: int = field(default=0, metadata={"help": "evaluate the first N eval samples only (0: all)"})
    max_new_tokens: int = field(default=320, metadata={"help": "answer length limit in tokens"})
    judge: str = field(default="", metadata={
        "help": "LLM judge scoring each answer 1-5: empty (none), auto (OpenAI or Anthropic, whichever key is "
                "set), or a backend name such as openai:gpt-4.1-mini"})

    def problems(self) -> list[str]:
        p = []
        try:
            ref = BackendRef.parse(self.backend)
            if (msg := ref.missing_key()) is not None:
                p.append(msg)
        except EvalError as e:
            p += e.problems
        if self.limit < 0:
            p.append(f"limit must be >= 0 (got {self.limit})")
        if self.max_new_tokens <= 0:
            p.append(f"max_new_tokens must be > 0 (got {self.max_new_tokens})")
        if self.judge:
            try:
                self.judge_ref()
            except EvalError as e:
                p += e.problems
        return p

    def validate(self) -> "EvalConfig":
        if problems := self.problems():
            raise EvalError(problems)
        return self

    def backend_ref(self) -> BackendRef:
        return BackendRef.parse(self.backend)

    def judge_ref(self) -> BackendRef | None:
        """The judge's backend, or None. 'auto' picks the API whose key is set, OpenAI first."""
        if not self.judge:
            return None
        if self.judge == "auto":
            for kind in ("openai", "anthropic"):
                if os.environ.get(KEY_ENV[kind]):
                    return BackendRef(kind, model=DEFAULT_JUDGE_MODELS[kind])
            raise EvalError("judge 'auto' needs OPENAI_API_KEY or ANTHROPIC_API_KEY: export one, or leave the "
                            "judge empty.")
        ref = BackendRef.parse(self.judge)
        if ref.kind == "local":
            raise EvalError("The judge must be an API model (openai:MODEL, anthropic:MODEL or "
                            "openai-compatible:MODEL@URL), not a local one.")
        if (msg := ref.missing_key()) is not None:
            raise EvalError(msg.replace("for backend", "for the judge"))
        return ref

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvalConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise EvalError(f"Unknown evaluation setting(s): {', '.join(unknown)}.")
        return cls(**d)
