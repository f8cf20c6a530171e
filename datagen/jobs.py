"""A generation job: its creation (every input checked first), its stop request, and running it here.

    moodshelf generate --provider offline --count 100 --language ko --seed 0
    moodshelf generate --provider openai --model gpt-4.1-mini --count 2000 --concurrency 16 --rpm 500
    moodshelf generate --resume 3        # continue job 3 until it has exactly its target count

Its config is datagen/job_config.py; the runner of live calls datagen/job_runner.py, of the batch API
datagen/batch.py; the worker process datagen/worker.py.
"""
from __future__ import annotations

import socket
from urllib.parse import urlparse

from datagen.catalog import books_for_moods
from datagen.grid import Grid
from datagen.job_config import JobConfig
from datagen.job_runner import GENERATION
from datagen.prompts import PROMPT_VERSION, TEACHER_PROMPT_VERSION
from db.engine import Database
from db.errors import UserError
from db.models import GenerationJob
from vendors.base import VendorError
from workers import supervisor


class JobError(UserError, ValueError):
    """A job that cannot be started or resumed as asked, worded for the user."""


def check_reachable(url: str, timeout_s: float = 3.0) -> None:
    u = urlparse(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise VendorError(f"'{url}' is not an http(s) URL (expected e.g. http://localhost:8000/v1).")
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname, port), timeout=timeout_s).close()
    except OSError as e:
        raise VendorError(f"Cannot reach {u.scheme}://{u.hostname}:{port} ({e.strerror or e}). Is the server "
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
        raise VendorError(
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
    """Cooperative cancel: the runner stops dispatching, lets in-flight calls finish, and marks it cancelled."""
    supervisor.request_stop(db, GENERATION, job_id)


def run_job(db: Database, job_id: int, on_progress=None) -> GenerationJob:
    """Run (or resume) a job in this process until done: live calls (datagen/job_runner.py) or, for a job made
    with batch=True, the provider's batch API (datagen/batch.py)."""
    import asyncio

    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        batch = job is not None and JobConfig.stored(job.config).batch
    if batch:
        from datagen.batch import BatchJobRunner as Runner
    else:
        from datagen.job_runner import JobRunner as Runner
    return asyncio.run(Runner(db, job_id, on_progress=on_progress).run())
