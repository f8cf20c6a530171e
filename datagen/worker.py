"""The generation worker process, and how the app and CLI start and watch it.

    python -m datagen.worker --job-id 3     # what the Generate tab and `moodshelf generate --detach` launch

The supervisor (workers/supervisor.py) launches, owns, stops and reconciles it; this module gives it the job
to run. State lives in the DB (status, pid, counters, error); a worker that died is marked failed by
reconcile_jobs and can be resumed: `moodshelf generate --resume 3`.
"""
from __future__ import annotations

import sys

from datagen.job_runner import GENERATION
from datagen.jobs import JobError, run_job
from db.engine import Database
from db.models import GenerationJob
from db.settings import get_settings
from workers import supervisor


def start_job(db: Database, job_id: int) -> int:
    """Launch a worker for the job and record it as the job's owner. Refused (WorkerBusy) while another
    worker of this job is alive, as `moodshelf generate --resume` in the foreground is; a completed job
    has nothing left to do."""
    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        if job is None:
            raise JobError(f"No generation job {job_id} (see `moodshelf jobs`).")
        if job.status == "completed":
            raise JobError(f"Generation job {job_id} is already complete ({job.accepted} samples); nothing to resume.")
    log_path = get_settings().ensure_home().logs_dir / f"generate-{job_id}.log"
    return supervisor.start(db, GENERATION, [job_id], log_path=log_path)


def reconcile_jobs(db: Database) -> list[int]:
    """Mark jobs whose worker is gone as failed (resumable), with the tail of their log."""
    return supervisor.reconcile(db, GENERATION)


def run(db: Database, job_id: int) -> int:
    """The worker's body: run the job to its end in this process."""
    job = run_job(db, job_id)
    print(f"job {job.id}: {job.status} ({job.accepted} accepted)", flush=True)
    return 0 if job.status == "completed" else 1


def main(argv: list[str] | None = None) -> int:
    return supervisor.run_worker_main(GENERATION, run, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
