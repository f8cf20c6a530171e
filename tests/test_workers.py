"""Workers own their job, run or evaluation alone; each attempt has its own log section; workers never import
from the caller's directory.

A "live owner" here is a sleeping process whose pid is recorded on the row, as a running worker's would be.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import func, select

from app.cli import main
from datagen.job_config import JobConfig
from datagen.job_runner import GENERATION
from datagen.jobs import create_job
from datagen.worker import reconcile_jobs, start_job
from db.models import EvalRun, GenerationJob, Sample, TrainingRun
from workers.process import log_tail, worker_env
from workers.supervisor import WorkerBusy, claim


@pytest.fixture
def live_owner():
    """A live process that is not a worker: the recorded owner of a row."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _row(db, model, row_id) -> dict:
    with db.session() as s:
        row = s.get(model, row_id)
        return {c.name: getattr(row, c.name) for c in model.__table__.columns}


def _offline_job(db, count=5, **kw) -> int:
    return create_job(db, JobConfig(provider="offline", language="en", count=count, **kw))


def _set(db, model, row_id, **values) -> None:
    with db.begin() as s:
        row = s.get(model, row_id)
        for k, v in values.items():
            setattr(row, k, v)


def _run_worker(db, module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=180,
                          env=worker_env(db.url))


# -- one owner per job, run and evaluation -----------------------------------------------------------------------
def test_second_generation_worker_for_a_live_job_exits_and_changes_nothing(catalog_db, live_owner):
    job_id = _offline_job(catalog_db)
    _set(catalog_db, GenerationJob, job_id, status="running", pid=live_owner)
    before = _row(catalog_db, GenerationJob, job_id)
    out = _run_worker(catalog_db, "datagen.worker", "--job-id", str(job_id))
    assert out.returncode == 3
    assert f"Generation job {job_id} is already running in process {live_owner}" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    assert _row(catalog_db, GenerationJob, job_id) == before
    with catalog_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Sample)) == 0


def test_second_training_worker_for_a_live_run_exits_and_changes_nothing(sqlite_db, live_owner, tmp_path):
    with sqlite_db.begin() as s:
        run = TrainingRun(name="live", base_model="tiny", status="running", pid=live_owner,
                          output_dir=str(tmp_path), config={})
        s.add(run)
        s.flush()
        run_id = run.id
    before = _row(sqlite_db, TrainingRun, run_id)
    out = _run_worker(sqlite_db, "training.sft", "--run-id", str(run_id))
    assert out.returncode == 3
    assert f"Training run {run_id} is already running in process {live_owner}" in out.stdout
    assert _row(sqlite_db, TrainingRun, run_id) == before


def test_second_evaluation_worker_for_a_live_evaluation_skips_it(sqlite_db, live_owner):
    with sqlite_db.begin() as s:
        ev = EvalRun(label="base", backend={"name": "base", "kind": "local"}, config={}, sample_ids=[1],
                     status="running", pid=live_owner, total=1)
        s.add(ev)
        s.flush()
        eval_id = ev.id
    before = _row(sqlite_db, EvalRun, eval_id)
    out = _run_worker(sqlite_db, "training.evaluate", "--eval-id", str(eval_id))
    assert out.returncode == 3
    assert f"Evaluation {eval_id} is already running in process {live_owner}" in out.stdout
    assert _row(sqlite_db, EvalRun, eval_id) == before


def test_launchers_refuse_a_row_whose_worker_is_alive(catalog_db, live_owner, home):
    from training.evals import start_evals
    from training.eval_config import EvalError
    from training.runs import RunError, start_run

    job_id = _offline_job(catalog_db)
    _set(catalog_db, GenerationJob, job_id, status="running", pid=live_owner)
    with pytest.raises(WorkerBusy, match=f"already running in process {live_owner}"):
        start_job(catalog_db, job_id)
    with catalog_db.begin() as s:
        run = TrainingRun(name="live", base_model="tiny", status="running", pid=live_owner, config={},
                          log_path=str(home / "run.log"))
        ev = EvalRun(label="base", backend={"name": "base"}, config={}, sample_ids=[], status="running",
                     pid=live_owner, log_path=str(home / "eval.log"))
        s.add_all([run, ev])
        s.flush()
        run_id, eval_id = run.id, ev.id
    with pytest.raises(RunError, match="already running"):
        start_run(catalog_db, run_id)
    with pytest.raises(EvalError, match="already running"):
        start_evals(catalog_db, [eval_id])
    # No worker was started: nothing was logged, the owners are unchanged.
    assert not (home / "run.log").exists() and not (home / "eval.log").exists()
    assert not (home / "logs" / f"generate-{job_id}.log").exists()
    assert _row(catalog_db, GenerationJob, job_id)["pid"] == live_owner


def test_detached_resume_of_a_live_job_is_refused(catalog_db, live_owner, capsys):
    job_id = _offline_job(catalog_db)
    _set(catalog_db, GenerationJob, job_id, status="running", pid=live_owner)
    assert main(["generate", "--resume", str(job_id), "--detach"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"already running in process {live_owner}" in err
    assert _row(catalog_db, GenerationJob, job_id)["pid"] == live_owner


def test_two_workers_started_at_once_for_one_job_never_overshoot_its_target(catalog_db):
    """The old failure: a second worker on a live job and the job ended "completed 34/30"."""
    job_id = _offline_job(catalog_db, count=30, seed=3)
    env = worker_env(catalog_db.url)
    procs = [subprocess.Popen([sys.executable, "-m", "datagen.worker", "--job-id", str(job_id)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=180)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], outs
    assert any("already running in process" in o for o in outs)
    job = _row(catalog_db, GenerationJob, job_id)
    assert (job["status"], job["accepted"]) == ("completed", 30)
    with catalog_db.session() as s:
        accepted = s.scalar(select(func.count()).select_from(Sample).where(
            Sample.job_id == job_id, Sample.status.in_(("approved", "pending"))))
    assert accepted == 30


def test_claim_is_a_compare_and_swap_on_the_owner(catalog_db, live_owner):
    job_id = _offline_job(catalog_db)
    assert claim(catalog_db, GENERATION, job_id) == os.getpid()   # free: taken
    assert claim(catalog_db, GENERATION, job_id) == os.getpid()   # already ours
    _set(catalog_db, GenerationJob, job_id, pid=live_owner)
    with pytest.raises(WorkerBusy):
        claim(catalog_db, GENERATION, job_id)                      # a live owner keeps it
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _set(catalog_db, GenerationJob, job_id, pid=int(dead.stdout))
    assert claim(catalog_db, GENERATION, job_id) == os.getpid()   # a dead owner's row is free


# -- log sections --------------------------------------------------------------------------------------------------
def test_a_dead_workers_message_shows_its_own_attempt_not_an_earlier_traceback(catalog_db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    job_id = create_job(catalog_db, JobConfig(provider="openai", language="en", count=3))
    monkeypatch.delenv("OPENAI_API_KEY")  # attempt 1 fails at once: no key in the worker
    start_job(catalog_db, job_id)
    deadline = time.time() + 120
    while _row(catalog_db, GenerationJob, job_id)["status"] == "running" and time.time() < deadline:
        time.sleep(0.2)
    assert "OPENAI_API_KEY" in _row(catalog_db, GenerationJob, job_id)["error"]

    pid = start_job(catalog_db, job_id)  # attempt 2 is killed before it can write anything
    os.killpg(pid, signal.SIGKILL)
    deadline = time.time() + 20
    while not reconcile_jobs(catalog_db) and time.time() < deadline:
        time.sleep(0.1)
    job = _row(catalog_db, GenerationJob, job_id)
    assert job["status"] == "failed"
    assert f"attempt 2 · pid {pid}" in job["error"]
    assert "OPENAI_API_KEY" not in job["error"] and "Traceback" not in job["error"]
    log = open(job["log_path"], encoding="utf-8").read()
    assert "===== attempt 1 · pid" in log and "VendorError" in log  # the first traceback is still there
    assert "VendorError" in log_tail(job["log_path"], 40, pid=int(log.split("attempt 1 · pid ")[1].split()[0]))


# -- imports -------------------------------------------------------------------------------------------------------
def test_a_worker_started_from_a_directory_with_inspect_py_still_runs(catalog_db, tmp_path, monkeypatch):
    cwd = tmp_path / "my-project"
    cwd.mkdir()
    (cwd / "inspect.py").write_text("raise SystemExit('this is not the standard inspect module')\n")
    monkeypatch.chdir(cwd)
    job_id = _offline_job(catalog_db, count=3)
    start_job(catalog_db, job_id)
    deadline = time.time() + 120
    while _row(catalog_db, GenerationJob, job_id)["status"] in ("pending", "running") and time.time() < deadline:
        reconcile_jobs(catalog_db)
        time.sleep(0.2)
    job = _row(catalog_db, GenerationJob, job_id)
    assert (job["status"], job["accepted"]) == ("completed", 3), job["error"]


# -- the supervisor's contract, on any kind ------------------------------------------------------------------------
def test_a_worker_that_ignores_its_stop_is_ended_after_the_grace_period(catalog_db):
    from workers import supervisor

    job_id = _offline_job(catalog_db)
    deaf = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True)
    _set(catalog_db, GenerationJob, job_id, status="running", pid=deaf.pid)
    t0 = time.monotonic()
    supervisor.stop(catalog_db, GENERATION, job_id, grace_s=0.5)
    assert deaf.wait(timeout=10) == -signal.SIGTERM  # its process group was ended, after the grace period
    assert time.monotonic() - t0 >= 0.5
    job = _row(catalog_db, GenerationJob, job_id)
    assert (job["status"], job["pid"], job["stop_requested"]) == ("cancelled", None, False)


def test_run_worker_main_never_leaves_a_row_running(catalog_db):
    from workers.supervisor import StopRequested, run_worker_main

    def crash(db, job_id):
        _set(db, GenerationJob, job_id, status="running")
        raise RuntimeError("boom")

    def stopped(db, job_id):
        _set(db, GenerationJob, job_id, status="running")
        raise StopRequested("stopped at a safe point")

    job_id = _offline_job(catalog_db)
    assert run_worker_main(GENERATION, crash, ["--job-id", str(job_id)]) == 1
    job = _row(catalog_db, GenerationJob, job_id)
    assert (job["status"], job["error"], job["pid"]) == ("failed", "RuntimeError: boom", None)
    assert run_worker_main(GENERATION, stopped, ["--job-id", str(job_id)]) == 1
    assert _row(catalog_db, GenerationJob, job_id)["status"] == "cancelled"


def test_second_sweep_worker_for_a_live_sweep_exits_and_changes_nothing(sqlite_db, live_owner):
    from training.config import TrainConfig
    from training.sweep_worker import create_sweep
    from db.models import Sweep

    sweep_id = create_sweep(sqlite_db, TrainConfig(), {"lora_r": [4, 8]}, name="rank")
    _set(sqlite_db, Sweep, sweep_id, status="running", pid=live_owner)
    before = _row(sqlite_db, Sweep, sweep_id)
    out = _run_worker(sqlite_db, "training.sweep_worker", "--sweep-id", str(sweep_id))
    assert out.returncode == 3, out.stdout + out.stderr
    assert f"Sweep {sweep_id} is already running in process {live_owner}" in out.stdout
    assert _row(sqlite_db, Sweep, sweep_id) == before


def test_a_sweep_stopped_before_it_starts_runs_nothing(sqlite_db):
    from training.config import TrainConfig
    from training.sweep_worker import SWEEP, create_sweep, start_sweep
    from workers import supervisor
    from db.models import Sweep

    sweep_id = create_sweep(sqlite_db, TrainConfig(), {"lora_r": [4, 8]}, name="rank")
    supervisor.request_stop(sqlite_db, SWEEP, sweep_id)
    start_sweep(sqlite_db, sweep_id)  # a worker process of its own, like a job's or a run's
    (sweep,) = supervisor.wait(sqlite_db, SWEEP, [sweep_id], poll_s=0.2)
    assert sweep.status == "stopped", sweep.error
    assert "===== attempt 1 · pid" in open(sweep.log_path, encoding="utf-8").read()
    with sqlite_db.session() as s:
        assert s.scalars(select(TrainingRun)).first() is None


def test_the_web_ui_starts_workers_never_the_cli():
    """A sweep from the Train tab used to run `python -m app.cli sweep`: the UI launching the CLI."""
    from pathlib import Path

    app_dir = Path(__file__).resolve().parents[1] / "app"
    launches_cli = [p.name for p in app_dir.glob("*.py")
                    if '"app.cli"' in p.read_text(encoding="utf-8") or "-m app.cli" in p.read_text(encoding="utf-8")]
    assert launches_cli == []
