"""The real OpenAI and Anthropic SDKs, unchanged, against fake servers on 127.0.0.1: structured answers,
retries that honour Retry-After, failures stored with their reason, keys never stored, batch mode. The batch
loop's own logic runs on the in-process queued provider (tests/queued.py): no HTTP needed."""
import time

import pytest
from fakes.fixtures import fake_anthropic, fake_openai  # noqa: F401
from sqlalchemy import func, select

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from datagen.prompts import TEACHER_PROMPT_VERSION
from db.models import ApiCall, GenerationJob, Sample
from vendors.base import VendorError

OPENAI_KEY = "sk-test-openai-key-0123456789"
ANTHROPIC_KEY = "sk-ant-test-key-0123456789"


@pytest.fixture
def openai_env(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


@pytest.fixture
def anthropic_env(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    return fake_anthropic


def _samples(db, job_id):
    with db.session() as s:
        return list(s.scalars(select(Sample).where(Sample.job_id == job_id).order_by(Sample.request_index)))


def _calls(db, job_id):
    with db.session() as s:
        return list(s.scalars(select(ApiCall).where(ApiCall.job_id == job_id).order_by(ApiCall.id)))


def _everything_stored(db) -> str:
    """Every text the database holds about jobs, samples and calls, to look for leaked keys."""
    with db.session() as s:
        rows = [repr(r.__dict__) for model in (ApiCall, GenerationJob, Sample) for r in s.scalars(select(model))]
    return "\n".join(rows)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_openai_job_writes_grounded_samples_and_records_every_call(catalog_db, openai_env, language):
    job_id = create_job(catalog_db, JobConfig(provider="openai", language=language, count=6, concurrency=3))
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 6
    samples = _samples(catalog_db, job_id)
    assert len(samples) == 6 and all(s.grounded_count == 3 and s.quality_flags == [] for s in samples)
    assert all(s.prompt_version == TEACHER_PROMPT_VERSION and s.model == "gpt-4.1-mini" for s in samples)
    calls = _calls(catalog_db, job_id)
    assert len(calls) == 6 and all(c.status == "ok" and c.input_tokens > 0 and c.cost_usd > 0 for c in calls)
    assert job.tokens_in == sum(c.input_tokens for c in calls) and job.cost_usd == pytest.approx(
        sum(c.cost_usd for c in calls))
    body = openai_env.generation_requests[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert "<candidates>" in body["messages"][-1]["content"]
    assert OPENAI_KEY not in _everything_stored(catalog_db)


def test_anthropic_job_uses_forced_tool_use(catalog_db, anthropic_env):
    job_id = create_job(catalog_db, JobConfig(provider="anthropic", language="ko", count=4))
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 4
    body = anthropic_env.generation_requests[0]["body"]
    assert body["tool_choice"] == {"type": "tool", "name": "recommend_books"}
    assert all(s.grounded_count == 3 for s in _samples(catalog_db, job_id))
    assert ANTHROPIC_KEY not in _everything_stored(catalog_db)


def test_429_retry_after_is_honoured_and_5xx_and_timeouts_are_retried(catalog_db, openai_env):
    openai_env.add_fault(status=429, retry_after=1.0)
    openai_env.add_fault(status=500)
    openai_env.add_fault(delay=3.0)
    job_id = create_job(catalog_db, JobConfig(provider="openai", language="en", count=2, concurrency=1,
                                              timeout_s=1.0))
    t0 = time.monotonic()
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 2
    assert time.monotonic() - t0 >= 1.0  # waited out Retry-After
    calls = _calls(catalog_db, job_id)
    assert [c.http_status for c in calls[:3]] == [429, 500, None]
    assert "timeout" in calls[2].error and [c.attempt for c in calls[:4]] == [1, 2, 3, 4]


@pytest.mark.parametrize("fault, flag, status", [
    ({"truncate": True}, "format:", "rejected"),
    ({"malformed": True}, "format:invalid_json", "rejected"),
    ({"wrong_count": True}, "format:expected_3_books_got_2", "rejected"),
    ({"ungrounded": True}, "ungrounded:", "needs_review"),
])
def test_bad_answers_are_stored_with_their_reason_not_thrown_away(catalog_db, openai_env, fault, flag, status):
    openai_env.add_fault(**fault)
    job_id = create_job(catalog_db, JobConfig(provider="openai", language="en", count=2, concurrency=1))
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 2  # one more request made up for the bad one
    bad = _samples(catalog_db, job_id)[0]
    assert bad.status == status and any(f.startswith(flag) for f in bad.quality_flags)
    assert bad.raw_output  # the provider's answer is kept as it came
    counter = job.ungrounded if status == "needs_review" else job.rejected
    assert counter == 1


def test_openai_compatible_server_without_json_schema_falls_back_to_json_mode(catalog_db, fake_openai):
    fake_openai.reject_json_schema = True
    cfg = JobConfig(provider="openai-compatible", base_url=fake_openai.base_url, model="llama", language="en",
                    count=2, concurrency=1)
    job = run_job(catalog_db, create_job(catalog_db, cfg))
    assert job.status == "completed"
    formats = [r["body"]["response_format"]["type"] for r in fake_openai.generation_requests]
    assert formats[0] == "json_schema" and set(formats[1:]) == {"json_object"}


def test_wrong_key_fails_the_job_once_with_a_clear_redacted_message(catalog_db, openai_env):
    openai_env.fail_auth_unless = "sk-the-right-key-999999"
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(provider="openai", language="en", count=5)))
    assert job.status == "failed" and "authentication failed: check OPENAI_API_KEY" in job.error
    assert OPENAI_KEY not in job.error and OPENAI_KEY not in _everything_stored(catalog_db)
    assert len(openai_env.generation_requests) <= 4  # stopped dispatching instead of burning the whole job


def test_unknown_model_fails_with_the_model_named(catalog_db, openai_env):
    for _ in range(4):
        openai_env.add_fault(status=404, message="The model `gpt-99` does not exist")
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(provider="openai", model="gpt-99", language="en",
                                                              count=3)))
    assert job.status == "failed" and "unknown model 'gpt-99'" in job.error


def test_missing_key_and_unreachable_server_are_refused_before_the_job(catalog_db, monkeypatch, free_port):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(VendorError, match="No OPENAI_API_KEY set"):
        create_job(catalog_db, JobConfig(provider="openai"))
    with pytest.raises(VendorError, match="needs a base URL"):
        create_job(catalog_db, JobConfig(provider="openai-compatible"))
    with pytest.raises(VendorError, match="Cannot reach"):
        create_job(catalog_db, JobConfig(provider="openai-compatible", base_url=f"http://127.0.0.1:{free_port}/v1"))
    with catalog_db.session() as s:
        assert s.scalar(select(func.count()).select_from(GenerationJob)) == 0


def test_empty_grid_list_is_refused():
    with pytest.raises(ValueError, match="the effects list is empty"):
        JobConfig(effects=["", " "])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_batch_job_submits_polls_and_ingests(catalog_db, openai_env, anthropic_env, monkeypatch, provider):
    import datagen.batch

    monkeypatch.setattr(datagen.batch, "POLL_S", 0.05)
    server = openai_env if provider == "openai" else anthropic_env
    server.add_fault(ungrounded=True)  # one line of the first batch: the job needs a second, smaller batch
    job_id = create_job(catalog_db, JobConfig(provider=provider, language="en", count=5, batch=True))
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 5 and job.ungrounded == 1
    assert [len(b["indexes"]) for b in job.batch_state["batches"]] == [5, 1]
    calls = _calls(catalog_db, job_id)
    assert all(c.batch for c in calls) and len(calls) == 6


def test_batch_job_resumes_waiting_for_the_same_batch(catalog_db, openai_env, monkeypatch):
    import datagen.batch

    monkeypatch.setattr(datagen.batch, "POLL_S", 0.05)
    openai_env.batch_polls_until_done = 4
    job_id = create_job(catalog_db, JobConfig(provider="openai", language="en", count=3, batch=True))

    def crash_while_waiting(job):
        raise KeyboardInterrupt

    with pytest.raises(BaseException):
        run_job(catalog_db, job_id, on_progress=crash_while_waiting)
    job = run_job(catalog_db, job_id)  # a new process would do the same
    assert job.status == "completed" and job.accepted == 3
    assert len(openai_env.requests_to("/v1/batches", "POST")) == 1  # waited for the batch, no resubmission


def test_batch_loop_asks_the_provider_for_its_batch_operations(catalog_db, queued_provider):
    import asyncio

    from datagen.batch import BatchJobRunner

    queued_provider.queue("not json")  # one answer of the first batch is rejected: a second, smaller batch follows
    job_id = create_job(catalog_db, JobConfig(provider="queued", language="en", count=3, batch=True))
    job = asyncio.run(BatchJobRunner(catalog_db, job_id).run())
    assert job.status == "completed" and job.accepted == 3
    assert [len(b["indexes"]) for b in job.batch_state["batches"]] == [3, 1]
    assert list(queued_provider.batches) == ["batch-1", "batch-2"]  # no vendor-specific path was taken
