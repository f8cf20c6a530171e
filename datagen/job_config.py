"""The config of a generation job: every setting typed, with its help text; the CLI flags and the Generate tab
are views of it, and a job stores it (GenerationJob.config) so a resume runs exactly the same job.

    cfg = JobConfig(provider="openai", model="gpt-4.1-mini", count=2000, concurrency=16, rpm=500)
    create_job(db, cfg)                      # datagen/jobs.py: every input checked, then the job recorded

Invalid values are refused when the object is built (pydantic validators), before anything is written. A job
read back from its row goes through `JobConfig.stored(job.config)`, which drops settings this version no
longer has, so a job written by an older version still resumes.
"""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from datagen.grid import Grid
from datagen.providers import PROVIDERS, get_provider
from workers.config import ConfigModel


class JobConfig(ConfigModel):
    """Everything a generation job needs; the CLI flags and the Generate tab are views of it."""

    provider: str = Field("offline", description="offline, openai, anthropic or openai-compatible")
    model: str | None = Field(None, description="model id; each provider has a default")
    base_url: str | None = Field(None, description="OpenAI-compatible server URL, e.g. http://localhost:8000/v1")
    language: Literal["ko", "en"] = Field("ko", description="language of the samples: ko or en")
    count: int = Field(100, description="accepted samples to produce")
    seed: int = Field(0, description="the same seed gives the same requests (and offline answers)")
    n_books: int = Field(3, description="books per answer")
    max_per_title: int = Field(12, description="a title may appear at most this many times in one job")
    auto_approve: bool = Field(False, description="approve samples that pass validation (the demo does)")
    max_attempts_factor: int = Field(3, description="give up after count × this many requests")
    concurrency: int = Field(4, description="requests in flight at once")
    rpm: int | None = Field(None, description="requests per minute limit")
    tpm: int | None = Field(None, description="tokens per minute limit")
    max_retries: int = Field(5, description="retries of a call on 429 / 5xx / timeout")
    timeout_s: float = Field(60.0, description="seconds one teacher call may take (a whole structured answer) "
                                               "before it counts as timed out and is retried")
    candidates_k: int = Field(8, description="catalog candidates retrieved for each request (the teacher chooses "
                                             "among them)")
    retrieval: bool = Field(True, description="write the candidates into the sample's input, so the student "
                                              "learns to choose among given books (--no-retrieval: the request only)")
    near_dup_threshold: float = Field(0.9, description="MinHash Jaccard above which answers are near-duplicates "
                                                        "(above 0, at most 0.96)")
    price_in: float | None = Field(None, description="override: USD per 1M input tokens")
    price_out: float | None = Field(None, description="override: USD per 1M output tokens")
    batch: bool = Field(False, description="use the provider's batch API (half price, slower)")
    emotions: list[str] | None = None
    occupations: list[str] | None = None
    effects: list[str] | None = None
    situations: list[str] | None = None
    focus_levels: list[str] | None = None

    @field_validator("count", "n_books", "max_per_title", "max_attempts_factor", "concurrency", "candidates_k")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        if v <= 0:
            raise ValueError(f"{info.field_name} must be > 0 (got {v})")
        return v

    @field_validator("rpm", "tpm")
    @classmethod
    def _positive_limit(cls, v, info):
        if v is not None and v <= 0:
            raise ValueError(f"{info.field_name} must be > 0 (got {v})")
        return v

    @field_validator("near_dup_threshold")
    @classmethod
    def _indexable_threshold(cls, v: float) -> float:
        from datagen.dedup import check_threshold

        return check_threshold(v)

    @field_validator("timeout_s")
    @classmethod
    def _positive_timeout(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"timeout_s must be > 0 seconds (got {v})")
        return v

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        if v not in PROVIDERS:
            raise ValueError(f"unknown provider '{v}' (available: {', '.join(sorted(PROVIDERS))})")
        return v

    @model_validator(mode="after")
    def _consistent(self):
        if self.candidates_k < self.n_books:
            raise ValueError(f"candidates_k ({self.candidates_k}) must be at least n_books ({self.n_books})")
        if self.batch and not PROVIDERS[self.provider].can_batch:
            raise ValueError(f"provider '{self.provider}' has no batch API (openai and anthropic do)")
        for name in ("emotions", "occupations", "effects", "situations", "focus_levels"):
            value = getattr(self, name)
            if value is not None and not [v for v in value if v.strip()]:
                raise ValueError(f"the {name} list is empty: give at least one value or leave it at the default")
        return self

    def grid(self) -> Grid:
        return Grid.from_lists(self.language, self.emotions, self.occupations, self.effects, self.situations,
                               self.focus_levels)

    def price_override(self) -> tuple[float, float] | None:
        if self.price_in is None and self.price_out is None:
            return None
        return (self.price_in or 0.0, self.price_out or 0.0)

    def make_provider(self):
        return get_provider(self.provider, self.model, base_url=self.base_url, timeout_s=self.timeout_s)
