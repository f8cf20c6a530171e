"""The generation worker as its own process: killed with SIGKILL mid-job, it resumes to exactly the target
with no duplicates and nothing lost. Plus the rate limiter, measured."""
import asyncio
import os
import signal
import time

import pytest
from fakes.fixtures import fake_openai  # noqa: F401
from sqlalchemy import func, select

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from datagen.limits import RateLimiter, backoff_delay
from datagen.worker import reconcile_jobs, start_job
from db.models import GenerationJob, Sample


def _job(db, job_id) -> GenerationJob:
    with db.session() as s:
        return s.get(GenerationJob, job_id)


def test_killed_worker_resumes_to_exactly_the_target_without_duplicates(catalog_db, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.latency = 0.15
    for _ in range(3):
        fake_openai.add_fault(malformed=True)  # some rejected answers along the way
    job_id = create_job(catalog_db, JobConfig(provider="openai", language="en", count=30, concurrency=4))
    pid = start_job(catalog_db, job_id)
    deadline = time.time() + 60
    while _job(catalog_db, job_id).accepted < 8 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)  # no cleanup, no goodbye: the worst moment we can pick
    deadline = time.time() + 10
    while not reconcile_jobs(catalog_db) and time.time() < deadline:
        time.sleep(0.1)
    assert _job(catalog_db, job_id).status == "failed"

    job = run_job(catalog_db, job_id)  # `moodshelf generate --resume JOB`
    assert job.status == "completed"
    with catalog_db.session() as s:
        q = select(func.count()).select_from(Sample).where(Sample.job_id == job_id)
        accepted = s.scalar(q.where(Sample.status.in_(("approved", "pending"))))
        total = s.scalar(q)
        distinct_idx = s.scalar(select(func.count(func.distinct(Sample.request_index))).where(Sample.job_id == job_id))
        distinct_hash = s.scalar(select(func.count(func.distinct(Sample.content_hash))).where(Sample.job_id == job_id))
    assert accepted == 30 == job.accepted
    assert total == distinct_idx == distinct_hash  # no request stored twice, no duplicate content


def test_rate_limiter_holds_requests_per_minute():
    async def burst(n):
        limiter = RateLimiter(rpm=60)  # the bucket starts full: 60 at once, then one per second
        t0 = time.monotonic()
        for _ in range(n):
            await limiter.acquire()
        return time.monotonic() - t0

    assert asyncio.run(burst(60)) < 0.5
    assert asyncio.run(burst(62)) == pytest.approx(2.0, abs=0.3)


def test_tokens_per_minute_limit_waits_for_tokens():
    async def run():
        limiter = RateLimiter(tpm=6000)  # 100 tokens per second
        t0 = time.monotonic()
        await limiter.acquire(tokens=6000)
        await limiter.acquire(tokens=100)
        return time.monotonic() - t0

    assert asyncio.run(run()) == pytest.approx(1.0, abs=0.3)


@pytest.mark.parametrize("jitter", [0.0, 0.999])
def test_backoff_doubles_within_its_jitter_and_a_longer_retry_after_wins(jitter, monkeypatch):
    import datagen.limits

    monkeypatch.setattr(datagen.limits.random, "random", lambda: jitter)
    factor = 0.5 + jitter / 2  # the jitter keeps half to all of the exponential delay
    assert [backoff_delay(a) for a in (1, 2, 3, 4)] == pytest.approx([factor * 2 ** (a - 1) for a in (1, 2, 3, 4)])
    assert backoff_delay(10) == pytest.approx(60 * factor)                   # capped at 60 s before the jitter
    assert backoff_delay(1, retry_after=7) == 7                              # the server asks for longer: it wins
    assert backoff_delay(4, retry_after=0.5) == pytest.approx(8 * factor)    # shorter: the backoff still holds
    assert backoff_delay(2, retry_after=600) == 60                           # never past the cap
