"""A generation job: sample the grid, ask the provider, validate, dedup, and commit each sample as it arrives.

    moodshelf generate --provider offline --count 100 --language ko --seed 0
    moodshelf generate --resume 3        # continue job 3 until it has its target count

A job is resumable: request i always derives from (seed, i), and a sample that already exists (same
content hash) is counted as a duplicate, never inserted twice.
"""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from typing import Callable, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from datagen.catalog import books_for_moods, catalog_index
from datagen.grid import Grid
from datagen.prompts import PROMPT_VERSION, input_for, instruction_for
from datagen.providers import PROVIDERS, ProviderError, get_provider
from datagen.validation import content_hash, status_for, validate_output
from db.engine import Database
from db.models import GenerationJob, Sample


class JobConfig(BaseModel):
    """Everything a generation job needs; the CLI flags and (later) the Generate tab are views of it."""

    provider: str = "offline"
    model: str | None = None
    language: Literal["ko", "en"] = "ko"
    count: int = Field(100, description="accepted samples to produce")
    seed: int = 0
    n_books: int = Field(3, description="books per answer")
    max_per_title: int = Field(12, description="a title may appear at most this many times in one job")
    auto_approve: bool = Field(False, description="approve samples that pass validation (the demo does)")
    max_attempts_factor: int = Field(5, description="give up after count × this many requests")

    @field_validator("count", "n_books", "max_per_title", "max_attempts_factor")
    @classmethod
    def _positive(cls, v: int, info) -> int:
        if v <= 0:
            raise ValueError(f"{info.field_name} must be > 0 (got {v})")
        return v

    @field_validator("provider")
    @classmethod
    def _known_provider(cls, v: str) -> str:
        if v not in PROVIDERS:
            raise ValueError(f"unknown provider '{v}' (available: {', '.join(sorted(PROVIDERS))})")
        return v


ProgressFn = Callable[[GenerationJob], None]


def create_job(db: Database, cfg: JobConfig) -> int:
    provider = get_provider(cfg.provider, cfg.model)  # fails early on a missing key / unknown model
    with db.begin() as s:
        job = GenerationJob(provider=cfg.provider, model=provider.model, language=cfg.language,
                            target_count=cfg.count, seed=cfg.seed, prompt_version=PROMPT_VERSION,
                            config=cfg.model_dump(), status="pending")
        s.add(job)
        s.flush()
        return job.id


def run_job(db: Database, job_id: int, on_progress: ProgressFn | None = None) -> GenerationJob:
    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        if job is None:
            raise ValueError(f"No generation job {job_id}.")
        cfg = JobConfig(**job.config)
    provider = get_provider(cfg.provider, cfg.model)
    index = catalog_index(db)
    grid = Grid.default(cfg.language)
    max_requests = cfg.count * cfg.max_attempts_factor
    requests = grid.sample(max_requests, seed=cfg.seed)

    with db.begin() as s:
        job = s.get(GenerationJob, job_id)
        job.status, job.started_at, job.error = "running", job.started_at or _now(), None
        accepted = s.scalar(select(func.count()).select_from(Sample).where(
            Sample.job_id == job_id, Sample.status.in_(("approved", "pending", "needs_review"))))
        title_uses = Counter(b["title"] for (books,) in s.execute(select(Sample.books).where(Sample.job_id == job_id))
                             for b in books)
        done_hashes = set(s.scalars(select(Sample.content_hash).where(Sample.job_id == job_id)))

    try:
        for i, req in enumerate(requests):
            if accepted >= cfg.count:
                break
            candidates = [b for b in books_for_moods(db, req.moods, cfg.language)
                          if title_uses[b.title] < cfg.max_per_title]
            instruction, input_text = instruction_for(req, cfg.n_books), input_for(req)
            try:
                completion = provider.complete(req, instruction, input_text, candidates,
                                               n_books=cfg.n_books, seed=cfg.seed * 1_000_003 + i)
            except ProviderError as e:
                _bump(db, job_id, rejected=1, error=str(e))
                continue
            h = content_hash(instruction, input_text, completion.text)
            if h in done_hashes:  # resumed job re-deriving a request it already stored
                continue
            v = validate_output(completion.text, language=cfg.language, n_books=cfg.n_books, index=index)
            status = status_for(v, auto_approve=cfg.auto_approve)
            sample = Sample(
                job_id=job_id, instruction=instruction, input=input_text, output=completion.text,
                emotion=req.emotion, occupation=req.occupation, effect=", ".join(req.effects),
                situation=req.situation, focus=req.focus, language=cfg.language, provider=cfg.provider,
                model=provider.model, prompt_version=PROMPT_VERSION, status=status, quality_flags=v.flags,
                books=[it.as_dict() for it in v.items], grounded_count=v.grounded_count,
                raw_output=completion.text, content_hash=h,
            )
            try:
                with db.begin() as s:  # one sample, one transaction: a kill loses at most this one
                    s.add(sample)
                    j = s.get(GenerationJob, job_id)
                    if status == "rejected":
                        j.rejected += 1
                    else:
                        j.accepted += 1
            except IntegrityError:
                _bump(db, job_id, duplicates=1)
                continue
            done_hashes.add(h)
            if status != "rejected":
                accepted += 1
                title_uses.update(it.title for it in v.items)
            if on_progress:
                with db.session() as s:
                    on_progress(s.get(GenerationJob, job_id))
    except BaseException as e:
        with db.begin() as s:
            j = s.get(GenerationJob, job_id)
            j.status, j.error, j.finished_at = ("cancelled" if isinstance(e, KeyboardInterrupt) else "failed"), \
                f"{type(e).__name__}: {e}", _now()
        raise

    with db.begin() as s:
        j = s.get(GenerationJob, job_id)
        j.finished_at = _now()
        if accepted >= cfg.count:
            j.status = "completed"
        else:
            j.status = "failed"
            j.error = (f"Only {accepted} of {cfg.count} samples were accepted after {len(requests)} requests"
                       + (f"; last provider error: {j.error}" if j.error else "")
                       + ". Import more catalog books or lower --max-per-title.")
        return j


def _bump(db: Database, job_id: int, *, rejected: int = 0, duplicates: int = 0, error: str | None = None) -> None:
    with db.begin() as s:
        j = s.get(GenerationJob, job_id)
        j.rejected += rejected
        j.duplicates += duplicates
        if error:
            j.error = error


def _now() -> datetime:
    return datetime.now(timezone.utc)
