"""A generation job: its config, its creation (every input checked first), and its state in the DB.

    moodshelf generate --provider offline --count 100 --language ko --seed 0
    moodshelf generate --provider openai --model gpt-4.1-mini --count 2000 --concurrency 16 --rpm 500
    moodshelf generate --resume 3        # continue job 3 until it has exactly its target count

The engine that runs a job lives in datagen/engine.py; the worker process in datagen/worker.py.
"""
from __future__ import annotations

import socket
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, Field, field_validator, model_validator

from datagen.catalog import books_for_moods
from datagen.grid import Grid
from datagen.prompts import PROMPT_VERSION, TEACHER_PROMPT_VERSION
from datagen.providers import PROVIDERS, ProviderError, get_provider
from db.engine import Database
from db.models import GenerationJob


class JobError(ValueError):
    """A job that cannot be started or resumed as asked, worded for the user."""


class JobConfig(BaseModel):
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


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ProviderError(f"'{url}' is not an http(s) URL (expected e.g. http://localhost:8000/v1).")
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise ProviderError(f"Cannot reach {u.scheme}://{u.hostname}:{port} ({e.strerror or e}). Is the server "
                            "running, and is the base URL right?") from None


def check_catalog_covers(db: Database, grid: Grid, language: str, n_books: int) -> None:
    """Every effect in the grid needs at least n_books catalog books for its moods, or the job cannot run."""
    from datagen.grid import Request

    missing = []
    for effect in grid.effects:
        moods = Request(language, "", "", "", (effect,), "", "").moods
        found = len(books_for_moods(db, moods, language))
        if found < n_books:
            missing.append(f"'{effect}' ({found} book(s))")
    if missing:
        raise ProviderError(
            f"The catalog has fewer than {n_books} {language} books for the effect(s) {', '.join(missing)}. "
            "Import more books (moodshelf catalog import FILE.csv), tag them with these moods, or remove the effect.")


def create_job(db: Database, cfg: JobConfig) -> int:
    """Check everything that can be checked before spending money, then record the job (status pending)."""
    provider = cfg.make_provider()  # unknown provider, missing key, missing base URL
    if provider.base_url:
        check_reachable(provider.base_url)
    if cfg.batch:
        from datagen.batch import check_batch_api

        check_batch_api(cfg.make_provider())  # no batch API at this URL: refused here, before the job exists
    grid = cfg.grid()
    grid.validate()
    check_catalog_covers(db, grid, cfg.language, cfg.n_books)
    with db.begin() as s:
        job = GenerationJob(provider=cfg.provider, model=provider.model, language=cfg.language,
                            target_count=cfg.count, seed=cfg.seed,
                            prompt_version=TEACHER_PROMPT_VERSION if provider.is_api else PROMPT_VERSION,
                            config=cfg.model_dump(), status="pending")
        s.add(job)
        s.flush()
        return job.id


def request_stop(db: Database, job_id: int) -> None:
    """Cooperative cancel: the engine stops dispatching, lets in-flight calls finish, and marks it cancelled."""
    with db.begin() as s:
        job = s.get(GenerationJob, job_id)
        if job is not None:
            job.cancel_requested = True


def run_job(db: Database, job_id: int, on_progress=None) -> GenerationJob:
    """Run (or resume) a job in this process until done: live calls (datagen/engine.py) or, for a job made
    with batch=True, the provider's batch API (datagen/batch.py)."""
    import asyncio

    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        batch = job is not None and JobConfig(**job.config).batch
    if batch:
        from datagen.batch import BatchJobRunner as Runner
    else:
        from datagen.engine import JobRunner as Runner
    return asyncio.run(Runner(db, job_id, on_progress=on_progress).run())
