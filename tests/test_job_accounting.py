"""Honest job accounting: a job that stops short names its real causes, counted by reason; API calls that fail
after retries are failed calls, not rejected samples; the per-call timeout is a job setting."""
from __future__ import annotations

import json

import pytest
from fakes.fixtures import fake_openai  # noqa: F401
from pydantic import ValidationError

from app.cli import main
from datagen.job_config import JobConfig
from datagen.outcomes import not_accepted_summary, reason_for
from db.models import GenerationJob

# One fixed, valid, grounded answer for every request: the first is accepted, every later one is a
# near-duplicate of it (the same answer text under a different request).
SAME_ANSWER = json.dumps({"books": [
    {"title": t, "author": "Jane Austen", "reason": f"{t} is a warm, witty story to read slowly on a quiet evening.",
     "effect": "It lifts the mood and gives a calm, hopeful distance from the day."}
    for t in ("Pride and Prejudice", "Sense and Sensibility", "Emma")]})


@pytest.fixture
def openai_env(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    return fake_openai


def test_a_short_job_names_every_cause_counted_not_the_last_timeout(catalog_db, openai_env, capsys):
    openai_env.canned = [("", SAME_ANSWER)]
    for _ in range(2):  # the first two calls hang past the job's 0.5 s timeout (no retries)
        openai_env.add_fault(delay=2)
    # --no-retrieval: the canned answer's books are not among any request's candidates.
    code = main(["generate", "--provider", "openai", "--no-retrieval", "--language", "en", "--count", "5",
                 "--max-attempts-factor", "2", "--concurrency", "1", "--max-retries", "0", "--timeout", "0.5"])
    err = capsys.readouterr().err
    assert code == 2
    with catalog_db.session() as s:
        job = s.query(GenerationJob).one()
    assert job.config["timeout_s"] == 0.5  # --timeout reached the job config ...
    assert job.status == "failed" and job.accepted == 1
    assert job.failed_calls == 2 and job.rejected == 0  # failed calls are not rejected samples
    assert job.reasons == {"near_duplicate": 7}
    assert job.error.startswith("Only 1 of 5 samples were accepted after 10 requests. Not accepted: 7 near-duplicate; "
                                "2 API calls failed after retries (last: timeout after 0.5 s).")  # ... and the provider
    assert "near-dup-threshold" in job.error  # what to do about the main cause
    assert f"error: {job.error}" in err

    assert main(["jobs"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "1/5 accepted" in line and "not accepted: 7 near-duplicate; 2 API calls failed after retries" in line

    from app.generate_tab import progress_markdown

    shown = progress_markdown(job)
    assert "failed API calls **2**" in shown and "Not accepted, by reason: 7 near-duplicate" in shown


def test_calls_that_fail_after_retries_count_as_failed_calls(catalog_db, queued_provider):
    from datagen.jobs import create_job, run_job
    from vendors.base import CallError

    queued_provider.queue(*[CallError("InternalServerError: HTTP 500", retryable=True, http_status=500)] * 2)
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(provider="queued", language="en", count=3,
                                                               concurrency=1, max_retries=0)))
    assert job.status == "completed" and job.accepted == 3
    assert (job.failed_calls, job.rejected, job.reasons) == (2, 0, {})
    assert len(queued_provider.tasks) == 5  # two failed calls, not retried (max_retries=0), then three answers


@pytest.mark.parametrize("flags, near_dup, reason", [
    (["format:invalid_json(Expecting value at char 0)"], False, "invalid_json"),
    (["format:truncated(max_tokens)"], False, "truncated"),
    (["format:expected_3_books_got_2"], False, "wrong_format"),
    (["repeated:title_cap(Emma)"], False, "title_cap"),
    (["ungrounded:Made Up Book"], True, "near_duplicate"),
    (["ungrounded:Made Up Book"], False, "not_in_catalog"),
    (["language:not_english(0.10)", "repeated:title_cap(Emma)"], False, "wrong_language"),
])
def test_each_answer_is_counted_under_the_one_reason_that_stopped_it(flags, near_dup, reason):
    assert reason_for(flags, near_duplicate=near_dup) == reason


def test_summary_lists_the_largest_cause_first():
    assert not_accepted_summary({"title_cap": 12, "near_duplicate": 116, "invalid_json": 3}, 2, "timeout after 60 s") \
        == ("116 near-duplicate, 12 over the per-title cap, 3 invalid JSON; 2 API calls failed after retries "
            "(last: timeout after 60 s)")
    assert not_accepted_summary({}) == ""


@pytest.mark.parametrize("value", [0, -5])
def test_call_timeout_must_be_positive(value):
    with pytest.raises(ValidationError, match="timeout_s must be > 0"):
        JobConfig(timeout_s=value)
