"""The generation worker process, and how the app and CLI start and watch it.

    python -m datagen.worker --job-id 3     # what the Generate tab and `moodshelf generate --detach` launch

State lives in the DB (status, pid, counters, error); a worker that died is marked failed by
reconcile_jobs and can be resumed: `moodshelf generate --resume 3`.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from datetime import datetime, timezone

from sqlalchemy import select

from db.engine import Database, open_db
from db.models import GenerationJob
from db.processes import (WorkerBusy, check_not_owned, claim_worker, kill_process_group, launch_worker,
                          mark_worker_dead, pid_alive)
from db.settings import get_settings

ACTIVE = ("pending", "running")


def start_job(db: Database, job_id: int) -> int:
    """Launch a worker for the job and record it as the job's owner. Refused (WorkerBusy) while another
    worker of this job is alive, as `moodshelf generate --resume` in the foreground is; a completed job
    has nothing left to do."""
    from datagen.jobs import JobError

    reconcile_jobs(db)
    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        if job is None:
            raise JobError(f"No generation job {job_id} (see `moodshelf jobs`).")
        check_not_owned(job, f"Generation job {job_id}")
        if job.status == "completed":
            raise JobError(f"Generation job {job_id} is already complete ({job.accepted} samples); nothing to resume.")
    log_path = get_settings().ensure_home().logs_dir / f"generate-{job_id}.log"
    pid = launch_worker("datagen.worker", ["--job-id", str(job_id)], log_path, db.url)
    try:
        claim_worker(db, GenerationJob, job_id, pid)
    except WorkerBusy:  # another launcher won the race: ours must not run
        kill_process_group(pid, grace_s=2)
        raise
    with db.begin() as s:
        job = s.get(GenerationJob, job_id)
        job.log_path = str(log_path)
        if job.pid == pid:  # still ours (a very short job may already have finished and let go)
            job.status, job.error, job.cancel_requested = "running", None, False
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

        claim_worker(db, GenerationJob, args.job_id)  # before anything else: one worker per job
        job = run_job(db, args.job_id)
        print(f"job {job.id}: {job.status} ({job.accepted} accepted)", flush=True)
        return 0 if job.status == "completed" else 1
    except WorkerBusy as e:  # a second worker for a live job: say so and leave the job to its owner
        print(f"moodshelf worker (pid {os.getpid()}): {e} This worker exits and changes nothing.", flush=True)
        return 3
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
