"""Batch evaluation through the real path: EvalConfig -> create_eval -> worker process -> per-answer results
and aggregate metrics in the DB -> before/after table; bad input refused with a clear message."""
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from browser import api_client
from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import EvalResult, EvalRun
from fakes.fixtures import fake_openai  # noqa: F401
from training.config import TrainConfig
from training.data import assign_splits
from training.eval_config import EvalConfig, EvalError, backend_name, parse_backend
from training.evals import before_after, cancel_eval, create_eval, reconcile_evals, start_evals, wait_for_evals
from training.judge import JudgeError, judge_messages, parse_judge_reply
from training.runs import create_run, start_run, wait_for_run


@pytest.fixture
def samples_db(catalog_db):
    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=12, seed=3, auto_approve=True)))
    return catalog_db


@pytest.fixture
def split_db(samples_db):
    assign_splits(samples_db, eval_fraction=0.25, seed=1)  # 3 of 12 held out
    return samples_db


def test_backend_names_parse_from_short_names_and_app_labels_and_bad_ones_are_refused():
    for name, short in [("base", "base"), ("base model", "base"), ("run:7", "run:7"), ("run #7: tiny", "run:7"),
                        ("openai:gpt-4.1-mini", "openai:gpt-4.1-mini"), ("anthropic: claude-x", "anthropic:claude-x"),
                        ("openai-compatible:qwen@http://localhost:8000/v1",
                         "openai-compatible:qwen@http://localhost:8000/v1")]:
        assert backend_name(parse_backend(name)) == short
    assert parse_backend("run:7").adapter_run == 7 and parse_backend("base").adapter_run is None
    with pytest.raises(EvalError) as e:
        EvalConfig(backend="gpt4", limit=-1, max_new_tokens=0).validate()
    text = str(e.value)
    assert "Unknown backend 'gpt4'" in text and "limit must be >= 0" in text and "max_new_tokens must be > 0" in text


def test_api_backend_and_judge_without_a_key_say_what_to_export(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(EvalError, match="No OPENAI_API_KEY set for backend openai:gpt-4.1-mini: export it"):
        EvalConfig(backend="openai:gpt-4.1-mini").validate()
    with pytest.raises(EvalError, match="judge 'auto' needs OPENAI_API_KEY or ANTHROPIC_API_KEY"):
        EvalConfig(judge="auto").validate()
    with pytest.raises(EvalError, match="must be an API model"):
        EvalConfig(judge="base").validate()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert backend_name(EvalConfig(judge="auto").judge_spec()) == "anthropic:claude-haiku-4-5"


def test_judge_reply_parsing_takes_json_in_fences_or_a_plain_score():
    assert parse_judge_reply('```json\n{"score": 4, "reason": "fits"}\n```') == (4.0, "fits")
    assert parse_judge_reply('Here: {"reason": "weak", "score": "2"}') == (2.0, "weak")
    assert parse_judge_reply("Score: 5 - great picks")[0] == 5.0
    with pytest.raises(JudgeError, match="no score from 1 to 5"):
        parse_judge_reply('{"score": 9}')
    msgs = judge_messages("Recommend 3 books", "1. A - B", "1. C - D")
    assert msgs[0]["role"] == "system" and "ANSWER:\n1. A - B" in msgs[1]["content"]


def test_empty_eval_split_is_refused_with_a_clear_message(samples_db, capsys):
    from app.cli import main

    with pytest.raises(EvalError, match="The eval split is empty"):  # approved samples, none held out yet
        create_eval(samples_db, EvalConfig())
    assert main(["eval", "--backend", "base"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The eval split is empty") and "\n" not in err
    run_id = create_run(samples_db, TrainConfig(eval_fraction=0.0))
    with pytest.raises(EvalError, match=f"The eval split of run {run_id} is empty"):
        create_eval(samples_db, EvalConfig(run_id=run_id))
    with samples_db.session() as s:
        assert s.scalars(select(EvalRun)).first() is None


def test_adapter_of_an_unfinished_run_is_refused(split_db):
    run_id = create_run(split_db, TrainConfig())
    with pytest.raises(EvalError, match=f"Run {run_id} is queued and has no adapter yet"):
        create_eval(split_db, EvalConfig(backend=f"run:{run_id}"))
    with pytest.raises(EvalError, match="No training run 99"):
        create_eval(split_db, EvalConfig(backend="run:99"))


def test_worker_scores_every_held_out_sample_and_resumes_without_rescoring(split_db, tiny_model_dir):
    from training.evaluate import LocalModels, evaluate

    eval_id = create_eval(split_db, EvalConfig(base_model=tiny_model_dir, max_new_tokens=12))
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        assert ev.total == 3 and ev.status == "queued" and ev.label == f"base model ({os.path.basename(tiny_model_dir)})"
        first = ev.sample_ids[0]
    with split_db.begin() as s:  # as if an earlier worker scored one answer and died
        s.add(EvalResult(eval_run_id=eval_id, sample_id=first, output="kept", metrics={"n_books": 0, "latency_s": 9.0},
                         latency_s=9.0))
        s.get(EvalRun, eval_id).done = 1
    evaluate(split_db, eval_id, LocalModels())
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)))
    assert ev.status == "completed" and ev.done == 3 and len(results) == 3
    assert [r.output for r in results if r.sample_id == first] == ["kept"]  # not generated again
    fresh = [r for r in results if r.sample_id != first]
    # Token counts re-encode the decoded text, so a random model's stray bytes may count a little over 12.
    assert all(r.output and r.output_tokens and r.latency_s > 0 for r in fresh)
    m = ev.metrics
    assert m["answers"] == 3 and m["format_compliance"] == 0.0  # a random model writes no numbered list
    assert m["latency_mean_s"] == pytest.approx(sum(r.latency_s for r in results) / 3)
    assert m["distinct_1"] is not None and 0 <= m["rouge_l"] <= 1


def test_cli_eval_runs_base_and_adapter_in_a_worker_and_shows_before_after(samples_db, tiny_model_dir, capsys):
    from app.cli import main

    run_id = create_run(samples_db, TrainConfig(base_model=tiny_model_dir, max_steps=2, batch_size=2, lora_r=4,
                                                max_length=256, eval_fraction=0.25), name="tiny")
    start_run(samples_db, run_id)
    assert wait_for_run(samples_db, run_id, poll_s=0.5).status == "completed"
    t0 = time.perf_counter()
    assert main(["eval", "--run-id", str(run_id), "--max-new-tokens", "16"]) == 0
    elapsed = time.perf_counter() - t0
    out = capsys.readouterr().out
    with samples_db.session() as s:
        evs = list(s.scalars(select(EvalRun).order_by(EvalRun.id)))
        n_results = {ev.id: len(ev.results) for ev in evs}
    assert [ev.backend["name"] for ev in evs] == ["base", f"run:{run_id}"]
    assert all(ev.status == "completed" and ev.training_run_id == run_id and ev.total == 3 for ev in evs)
    assert evs[0].pid is None and evs[0].pid == evs[1].pid  # one worker ran both, and is gone
    assert list(n_results.values()) == [3, 3]
    assert f"run:{run_id} (tiny)" in out and "rouge-l" in out
    rows = {r["metric"]: r for r in before_after(samples_db, run_id)}
    assert rows["rouge_l"]["base"] is not None and rows["rouge_l"]["fine_tuned"] is not None
    assert rows["rouge_l"]["delta"] == pytest.approx(rows["rouge_l"]["fine_tuned"] - rows["rouge_l"]["base"])
    assert main(["evals", "--run-id", str(run_id)]) == 0
    table = capsys.readouterr().out
    assert "base model vs fine-tuned" in table and "latency_mean_s" in table
    print(f"\n[eval throughput] 2 backends x 3 samples x 16 tokens in {elapsed:.1f} s (incl. process start)")


def test_dead_eval_worker_is_marked_failed_with_its_log_tail(split_db):
    eval_id = create_eval(split_db, EvalConfig())
    with split_db.session() as s:
        log = s.get(EvalRun, eval_id).log_path
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('eval worker started', flush=True); "
                             "time.sleep(60)"], stdout=open(log, "w"), start_new_session=True)
    deadline = time.time() + 20
    while "eval worker started" not in open(log).read() and time.time() < deadline:
        time.sleep(0.1)
    with split_db.begin() as s:
        ev = s.get(EvalRun, eval_id)
        ev.pid, ev.status = proc.pid, "running"
    assert reconcile_evals(split_db) == []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reconcile_evals(split_db) == [eval_id]
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
    assert ev.status == "failed" and "eval worker started" in ev.error and ev.pid is None


def test_cancel_kills_the_worker_and_marks_its_evaluations_cancelled(split_db, tiny_model_dir):
    ids = [create_eval(split_db, EvalConfig(base_model=tiny_model_dir, max_new_tokens=900)) for _ in range(2)]
    pid = start_evals(split_db, ids)
    cancel_eval(split_db, ids[0], grace_s=2)
    evs = wait_for_evals(split_db, ids, poll_s=0.2)
    assert [ev.status for ev in evs] == ["cancelled", "cancelled"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_failed_backend_fails_the_evaluation_with_its_error(split_db):
    eval_id = create_eval(split_db, EvalConfig(base_model="/nonexistent/model"))
    start_evals(split_db, [eval_id])
    (ev,) = wait_for_evals(split_db, [eval_id], poll_s=0.3)
    assert ev.status == "failed" and ev.pid is None
    assert "/nonexistent/model" in ev.error


def test_api_backend_is_evaluated_with_an_llm_judge_against_the_fake_server(split_db, fake_openai, monkeypatch):
    from training.evaluate import LocalModels, evaluate

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.canned.append(("grade book recommendations", '{"score": 4, "reason": "fits the request"}'))
    eval_id = create_eval(split_db, EvalConfig(backend="openai:gpt-4.1-mini", judge="auto", max_new_tokens=300))
    evaluate(split_db, eval_id, LocalModels())  # in-process: the fake server lives in this process
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)))
    assert ev.status == "completed" and ev.label == "openai:gpt-4.1-mini" and ev.backend["name"] == "openai:gpt-4.1-mini"
    m = ev.metrics
    # The API model gets the teacher's shape: the sample's own candidates, from which the fake chooses.
    assert m["format_compliance"] == 1.0 and m["books"] == 9
    assert m["grounding_rate"] == 1.0 and m["hallucination_rate"] == 0.0
    assert m["judge_score"] == 4.0 and m["judged"] == 3
    assert all(r.judge_reason == "fits the request" and r.output_tokens > 0 for r in results)
    chats = fake_openai.generation_requests
    assert len(chats) == 6  # one answer and one verdict per sample
    answer_req, judge_req = chats[0].body, chats[1].body
    assert answer_req["messages"][0]["role"] == "system" and "How it may help" in answer_req["messages"][0]["content"]
    assert "Choose only among the candidate books" in answer_req["messages"][0]["content"]
    assert "<candidates>\n- " in answer_req["messages"][1]["content"]
    assert judge_req["model"] == "gpt-4.1-mini" and "ANSWER:\n1. " in judge_req["messages"][1]["content"]


def test_api_failure_fails_the_evaluation_with_one_clear_line(split_db, fake_openai, monkeypatch):
    from training.evaluate import main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.fail_auth_unless = "sk-other-key-000000"
    eval_id = create_eval(split_db, EvalConfig(backend="openai:gpt-4.1-mini"))
    assert main(["--eval-id", str(eval_id)]) == 1
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
    assert ev.status == "failed" and ev.pid is None and ev.done == 0
    assert "openai:gpt-4.1-mini" in ev.error and "sk-test-abcdef123456" not in ev.error


def test_evaluate_tab_starts_a_worker_shows_progress_and_results_and_refuses_bad_input(split_db, tiny_model_dir,
                                                                                       free_port, monkeypatch):
    from app.services import Services
    from app.ui import build_app

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    demo = build_app(Services(db=split_db, base_model=tiny_model_dir))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        ids, status, table, chart = client.predict(["base"], "", None, 2, 8, "", api_name="/start_evaluation")
        (eval_id,) = [int(x) for x in ids.split(",")]
        (ev,) = wait_for_evals(split_db, [eval_id], poll_s=0.3)
        assert ev.status == "completed" and ev.total == 2, ev.error
        status, table, chart = client.predict(ids, "rouge_l", api_name="/refresh_progress")
        assert f"#{eval_id}" in status and "completed" in status and "2/2" in status
        row = table["data"][0]
        assert row[:3] == [eval_id, "completed", f"base model ({os.path.basename(tiny_model_dir)})"]
        assert [r[1] for r in chart["data"]] == [pytest.approx(ev.metrics["rouge_l"])]  # one bar: this backend
        with pytest.raises(Exception, match="Pick at least one backend"):
            client.predict([], "", None, 0, 8, "", api_name="/start_evaluation")
        with pytest.raises(Exception, match="No OPENAI_API_KEY set"):
            client.predict([], "openai:gpt-4.1-mini", None, 0, 8, "", api_name="/start_evaluation")
    finally:
        demo.close()


def test_evaluation_failed_midway_resumes_from_the_cli_keeping_scored_answers(split_db, fake_openai, monkeypatch,
                                                                              capsys):
    from app.cli import main
    from training.evaluate import main as worker_main

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.faults.put({})                 # the first answer arrives
    fake_openai.faults.put({"status": 500})    # the second fails (the SDK's retries are off in backends)
    eval_id = create_eval(split_db, EvalConfig(backend="openai:gpt-4.1-mini"))
    assert worker_main(["--eval-id", str(eval_id)]) == 1
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        first = s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)).one()
    assert ev.status == "failed" and ev.done == 1 and "InternalServerError" in ev.error
    assert main(["eval", "--resume", str(eval_id)]) == 0  # a worker process, against the same fake server
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)))
    assert ev.status == "completed" and ev.done == 3 and len(results) == 3
    assert [r.output for r in results if r.id == first.id] == [first.output]
    assert len(fake_openai.generation_requests) == 4  # 1 + 1 failed + the 2 missing, none repeated
    assert main(["eval", "--resume", str(eval_id)]) == 2
    assert "only failed or cancelled ones resume" in capsys.readouterr().err


def test_unreadable_judge_verdict_costs_only_that_score(split_db, fake_openai, monkeypatch):
    from training.evaluate import LocalModels, evaluate

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.canned.append(("grade book recommendations", "I liked it a lot."))
    eval_id = create_eval(split_db, EvalConfig(backend="openai:gpt-4.1-mini", judge="openai:gpt-4.1-mini", limit=1))
    evaluate(split_db, eval_id, LocalModels())
    with split_db.session() as s:
        ev = s.get(EvalRun, eval_id)
        (result,) = s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id))
    assert ev.status == "completed" and ev.metrics["judge_score"] is None and ev.metrics["judged"] == 0
    assert result.judge_score is None and "no score from 1 to 5" in result.error
