"""Training runs: create (validate, split, write config.yaml), then start, watch and stop the worker through
the supervisor (workers/supervisor.py, kind TRAINING from training/sft.py).

    run_id = create_run(db, TrainConfig(max_steps=20))
    start_run(db, run_id)            # python -m training.sft --run-id N, its own process and session
    wait_for_run(db, run_id, on_metric=print)

The web server only starts and watches; all state lives in the DB. A run whose process died is
marked failed with the tail of its log (reconcile_runs), never left 'running'.
"""
from __future__ import annotations

from typing import Callable

from sqlalchemy import select

from db.engine import Database
from db.errors import UserError
from db.models import RunMetric, TrainingRun
from db.settings import get_settings
from training.config import TrainConfig
from training.data import assign_splits, carries_candidates
from training.sft import TRAINING
from workers import supervisor
from workers.supervisor import WorkerBusy


class RunError(UserError, RuntimeError):
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
    return supervisor.reconcile(db, TRAINING)


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
    try:
        return supervisor.start(db, TRAINING, [run_id])
    except LookupError:
        raise RunError(f"No training run {run_id}.") from None
    except WorkerBusy as e:
        raise RunError(str(e)) from None


def resume_run(db: Database, run_id: int) -> int:
    """Start a failed, stopped or cancelled run again; the worker continues from its last checkpoint."""
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise RunError(f"No training run {run_id}.")
        if run.status not in ("failed", "stopped", "cancelled"):
            raise RunError(f"Run {run_id} is {run.status}; only failed, stopped or cancelled runs resume.")
        run.status, run.error, run.finished_at, run.stop_requested = "queued", None, None, False
    return start_run(db, run_id)


def request_stop(db: Database, run_id: int) -> None:
    """Stop & save: the worker finishes the current step, saves the adapter and exits (status 'stopped')."""
    supervisor.request_stop(db, TRAINING, run_id)


def cancel_run(db: Database, run_id: int, grace_s: float = 10.0) -> None:
    """Ask the worker to stop, end its process group after grace_s, and mark the run cancelled if it had not
    stopped by itself."""
    supervisor.stop(db, TRAINING, run_id, grace_s)


def wait_for_run(db: Database, run_id: int, on_metric: Callable[[RunMetric, TrainingRun], None] | None = None,
                 poll_s: float = 1.0) -> TrainingRun:
    """Block until the run leaves queued/running, calling on_metric for each new metric row."""
    seen = [-1]

    def new_metrics(run: TrainingRun) -> None:
        with db.session() as s:
            new = list(s.scalars(select(RunMetric).where(RunMetric.run_id == run_id, RunMetric.step > seen[0])
                                 .order_by(RunMetric.step)))
        for m in new:
            if on_metric:
                on_metric(m, run)
            seen[0] = max(seen[0], m.step)

    (run,) = supervisor.wait(db, TRAINING, [run_id], new_metrics, poll_s)
    return run
