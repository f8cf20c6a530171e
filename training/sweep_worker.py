"""A sweep as a worker like the others: the grid's training runs one after another, in a process of its own
under the supervisor (workers/supervisor.py), its state in the DB (the sweeps table).

    python -m training.sweep_worker --sweep-id 2     # what the Train tab's "Start sweep" launches

    sweep_id = create_sweep(db, TrainConfig(max_steps=30), {"lora_r": [8, 128]}, name="rank")
    start_sweep(db, sweep_id)      # returns at once; each run is an ordinary TrainingRun tagged with the name
    stop_sweep(db, sweep_id)       # no further run starts; the run in progress stops and saves its adapter

`moodshelf sweep` runs the same grid in the foreground with progress bars (training/sweep.run_sweep), as
`moodshelf generate` runs a job in the foreground.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone

from db.engine import Database
from db.models import Sweep
from db.settings import get_settings
from training.config import TrainConfig
from training.sft import TRAINING
from training.sweep import run_sweep, sweep_configs
from workers import supervisor
from workers.supervisor import WorkerKind

SWEEP = WorkerKind(label="Sweep", model=Sweep, module="training.sweep_worker", id_flag="--sweep-id",
                   dead_message=lambda sweep: sweep.error or "The sweep process exited without reporting.")


def _now() -> datetime:
    return datetime.now(timezone.utc)


def create_sweep(db: Database, base: TrainConfig, grid: dict[str, list], name: str | None = None) -> int:
    """Validate every configuration of the grid (ConfigError lists all problems), then record a queued sweep."""
    sweep_configs(base, grid)
    name = name or f"sweep {_now():%Y-%m-%d %H:%M:%S}"
    logs = get_settings().ensure_home().logs_dir
    with db.begin() as s:
        sweep = Sweep(name=name, config=base.to_dict(), grid=grid, status="queued")
        s.add(sweep)
        s.flush()
        sweep.log_path = str(logs / f"sweep-{sweep.id}.log")
        return sweep.id


def start_sweep(db: Database, sweep_id: int) -> int:
    """Launch the sweep's worker (no shell, its own session); its pid."""
    return supervisor.start(db, SWEEP, [sweep_id])


def stop_sweep(db: Database, sweep_id: int, grace_s: float = 10.0) -> None:
    """Ask the sweep to stop (it passes the request on to its current run), then end it after grace_s."""
    supervisor.stop(db, SWEEP, sweep_id, grace_s)


def run(db: Database, sweep_id: int) -> int:
    """The worker's body: each configuration's run started and watched through the supervisor. A failed run
    does not stop the sweep; a stop request is passed on to the run in progress and no further run starts."""
    from training.runs import request_stop, start_run

    with db.begin() as s:
        sweep = s.get(Sweep, sweep_id)
        sweep.status, sweep.started_at, sweep.error = "running", sweep.started_at or _now(), None
        base, grid, name = TrainConfig.from_dict(sweep.config), dict(sweep.grid), sweep.name

    def stopping() -> bool:
        return supervisor.stop_requested(db, SWEEP, sweep_id)

    def run_one(db_: Database, cfg: TrainConfig, run_id: int) -> None:
        print(f"{name}: run {run_id}", flush=True)
        start_run(db_, run_id)

        def pass_stop_on(run) -> None:
            if not run.stop_requested and stopping():
                request_stop(db_, run_id)

        (run,) = supervisor.wait(db_, TRAINING, [run_id], pass_stop_on)
        print(f"{name}: run {run_id} {run.status}" + (f": {run.error}" if run.error else ""), flush=True)

    run_sweep(db, base, grid, name, run_one=run_one, should_stop=stopping)
    with db.begin() as s:
        sweep = s.get(Sweep, sweep_id)
        sweep.status = "stopped" if sweep.stop_requested else "completed"
        sweep.finished_at, sweep.pid = _now(), None
    return 0


def main(argv: list[str] | None = None) -> int:
    return supervisor.run_worker_main(SWEEP, run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
