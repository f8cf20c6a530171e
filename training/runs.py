"""Training runs: create (validate, split, write config.yaml), launch the worker process, watch, stop.

    run_id = create_run(db, TrainConfig(max_steps=20))
    start_run(db, run_id)            # python -m training.sft --run-id N, its own process and session
    wait_for_run(db, run_id, on_metric=print)

The web server only starts and watches; all state lives in the DB. A run whose process died is
marked failed with the tail of its log (reconcile_runs), never left 'running'.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from sqlalchemy import select

from db.engine import Database
from db.models import RunMetric, TrainingRun
from db.processes import (WorkerBusy, check_not_owned, claim_worker, kill_process_group, launch_worker,
                          mark_worker_dead, pid_alive)
from db.settings import get_settings
from training.config import TrainConfig
from training.data import assign_splits, carries_candidates
from training.sft import STOP_FILE

ACTIVE = ("queued", "running")


class RunError(RuntimeError):
    """A run that cannot be created or started, worded for the user."""


def create_run(db: Database, cfg: TrainConfig, name: str | None = None) -> int:
    cfg.validate()
    ids = assign_splits(db, eval_fraction=cfg.eval_fraction, seed=cfg.seed, language=cfg.language)
    with_candidates = carries_candidates(db, ids.train)
    settings = get_settings().ensure_home()
    with db.begin() as s:
        run = TrainingRun(name=name or f"{cfg.base_model} r{cfg.lora_r}", base_model=cfg.base_model,
                          config=cfg.to_dict(), sample_ids=ids.train, eval_sample_ids=ids.eval, status="queued",
                          with_candidates=with_candidates)
        s.add(run)
        s.flush()
        run_dir = settings.runs_dir / str(run.id)
        run_dir.mkdir(parents=True, exist_ok=True)
        run.output_dir, run.log_path = str(run_dir), str(run_dir / "train.log")
        cfg.to_yaml(run_dir / "config.yaml")  # rerun with: moodshelf train --config <this file>
        return run.id


def reconcile_runs(db: Database) -> list[int]:
    """Mark runs whose process is gone as failed, with the tail of their log. Returns their ids."""
    failed = []
    with db.begin() as s:
        for run in s.scalars(select(TrainingRun).where(TrainingRun.status.in_(ACTIVE))):
            if run.status == "queued" and run.pid is None:
                continue  # created, not launched yet
            if not pid_alive(run.pid):
                mark_worker_dead(run, run.error or "The training process exited without reporting.")
                failed.append(run.id)
    return failed


def active_run(db: Database) -> TrainingRun | None:
    reconcile_runs(db)
    with db.session() as s:
        return s.scalars(select(TrainingRun).where(TrainingRun.status == "running")).first()


def start_run(db: Database, run_id: int) -> int:
    """Launch the worker (no shell) in its own session; returns its pid. One run at a time."""
    other = active_run(db)
    if other is not None and other.id != run_id:
        raise RunError(f"Run {other.id} is still training (pid {other.pid}); one run at a time. "
                       "Wait for it, or stop it first.")
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise RunError(f"No training run {run_id}.")
        try:
            check_not_owned(run, f"Training run {run_id}")
        except WorkerBusy as e:
            raise RunError(str(e)) from None
        log_path, cfg = run.log_path, TrainConfig.from_dict(run.config)
    if cfg.num_processes > 1:
        # One launcher, N ranks: accelerate starts them; the launcher's process group is what Cancel kills.
        args = ["--config_file", str(cfg.accelerate_config_path()), "--num_processes", str(cfg.num_processes),
                "-m", "training.sft", "--run-id", str(run_id)]
        pid = launch_worker("accelerate.commands.launch", args, log_path, db.url)
    else:
        pid = launch_worker("training.sft", ["--run-id", str(run_id)], log_path, db.url)
    try:
        claim_worker(db, TrainingRun, run_id, pid)
    except WorkerBusy as e:  # another launcher won the race: ours must not run
        kill_process_group(pid, grace_s=2)
        raise RunError(str(e)) from None
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        if run.status == "queued" and run.pid == pid:
            run.status = "running"
            run.started_at = datetime.now(timezone.utc)
    return pid


def resume_run(db: Database, run_id: int) -> int:
    """Start a failed, stopped or cancelled run again; the worker continues from its last checkpoint."""
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise RunError(f"No training run {run_id}.")
        if run.status not in ("failed", "stopped", "cancelled"):
            raise RunError(f"Run {run_id} is {run.status}; only failed, stopped or cancelled runs resume.")
        (Path(run.output_dir) / STOP_FILE).unlink(missing_ok=True)
        run.status, run.error, run.finished_at = "queued", None, None
    return start_run(db, run_id)


def request_stop(db: Database, run_id: int) -> None:
    """Cooperative stop: the worker finishes the current step, saves the adapter and exits."""
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
        if run and run.output_dir:
            (Path(run.output_dir) / STOP_FILE).touch()


def cancel_run(db: Database, run_id: int, grace_s: float = 10.0) -> None:
    """Kill the worker's process group after a grace period and mark the run cancelled."""
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
        pid = run.pid if run else None
    kill_process_group(pid, grace_s)
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        if run and run.status in ACTIVE:
            run.status, run.pid, run.finished_at = "cancelled", None, datetime.now(timezone.utc)


def latest_metrics(db: Database, run_id: int) -> list[RunMetric]:
    with db.session() as s:
        return list(s.scalars(select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.step)))


def wait_for_run(db: Database, run_id: int, on_metric: Callable[[RunMetric, TrainingRun], None] | None = None,
                 poll_s: float = 1.0) -> TrainingRun:
    """Block until the run leaves queued/running, calling on_metric for each new metric row."""
    seen = -1
    while True:
        reconcile_runs(db)
        with db.session() as s:
            run = s.get(TrainingRun, run_id)
            new = list(s.scalars(select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.step > seen)
                                 .order_by(RunMetric.step)))
        for m in new:
            # A row for the current step may still gain eval_loss; only report finished steps.
            if on_metric:
                on_metric(m, run)
            seen = max(seen, m.step)
        if run.status not in ACTIVE:
            return run
        time.sleep(poll_s)
