"""The generation worker process, and how the app and CLI start and watch it.

    python -m datagen.worker --job-id 3     # what the Generate tab and `moodshelf generate --detach` launch

State lives in the DB (status, pid, counters, error); a worker that died is marked failed by
reconcile_jobs and can be resumed: `moodshelf generate --resume 3`.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from datetime import datetime, timezone

from sqlalchemy import select

from db.engine import Database, open_db
from db.models import GenerationJob
from db.processes import launch_worker, mark_worker_dead, pid_alive
from db.settings import get_settings

ACTIVE = ("pending", "running")


def start_job(db: Database, job_id: int) -> int:
    log_path = get_settings().ensure_home().logs_dir / f"generate-{job_id}.log"
    pid = launch_worker("datagen.worker", ["--job-id", str(job_id)], log_path, db.url)
    with db.begin() as s:
        job = s.get(GenerationJob, job_id)
        job.pid, job.log_path, job.status, job.error = pid, str(log_path), "running", None
        job.cancel_requested = False
    return pid


def reconcile_jobs(db: Database) -> list[int]:
    """Mark jobs whose worker is gone as failed (resumable), with the tail of their log."""
    failed = []
    with db.begin() as s:
        for job in s.scalars(select(GenerationJob).where(GenerationJob.status == "running")):
            if not pid_alive(job.pid):
                mark_worker_dead(job, f"The worker (pid {job.pid}) died; resume with "
                                      f"`moodshelf generate --resume {job.id}`.", tail_lines=10)
                failed.append(job.id)
    return failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--job-id", type=int, required=True)
    args = ap.parse_args(argv)
    db = open_db()
    try:
        from datagen.jobs import run_job

        job = run_job(db, args.job_id)
        print(f"job {job.id}: {job.status} ({job.accepted} accepted)", flush=True)
        return 0 if job.status == "completed" else 1
    except BaseException as e:  # never leave the job 'running'
        traceback.print_exc()
        with db.begin() as s:
            job = s.get(GenerationJob, args.job_id)
            if job is not None and job.status in ACTIVE:
                job.status, job.error = "failed", f"{type(e).__name__}: {e}"
                job.pid, job.finished_at = None, datetime.now(timezone.utc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
