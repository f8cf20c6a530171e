"""The one supervisor of long work: generation jobs, training runs, evaluations and sweeps. Each kind declares
its DB row and the module whose body runs (a `WorkerKind`); launching, owning, stopping, reconciling and
waiting are written here once.

    # launcher side (the app, the CLI)
    pid = start(db, TRAINING, [run_id])            # python -m training.sft --run-id N: no shell, its own session
    wait(db, TRAINING, [run_id], on_progress=print) # until every row has left the kind's active statuses
    stop(db, TRAINING, run_id, grace_s=10)          # ask it to stop; after grace_s, end its process group
    reconcile(db, TRAINING)                         # rows whose worker died: failed, with that attempt's log tail

    # worker side: the module's whole main()
    sys.exit(run_worker_main(TRAINING, train))     # claims the row first, never leaves it 'running'

A row of any kind has: id, status, pid (its owner), log_path, error, started_at, finished_at and
stop_requested (the one cooperative stop: a body checks it with `stop_requested()` at its own safe points).
"""
from __future__ import annotations

import argparse
import os
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import select, update

from db.engine import Database, open_db
from db.errors import UserError
from workers.process import ancestors, kill_process_group, launch_worker, log_tail, pid_alive


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


@dataclass(frozen=True)
class WorkerKind:
    """What the supervisor needs to know about one kind of long work."""

    label: str                          # how messages name a row: "Training run" -> "Training run 3"
    model: type                         # the DB model of its rows
    module: str                         # the worker: python -m <module> <id_flag> 3 [<id_flag> 4 ...]
    id_flag: str                        # "--run-id"
    active: tuple[str, ...] = ("queued", "running")   # statuses in which a worker may be alive
    # Why a row whose worker vanished failed (the tail of that attempt's log is appended).
    dead_message: Callable[[Any], str] = lambda row: row.error or "The worker exited without reporting."
    tail_lines: int = 20
    describe_error: Callable[[BaseException], str] = error_text   # the error a failed row keeps
    # (module, args) when the default command line does not fit (accelerate's launcher for several ranks).
    command: Callable[[list], tuple[str, list[str]]] | None = None
    # Several ranks under one launcher (accelerate): the launcher is the owner; rank 0 claims as it.
    launched_by_owner: bool = False
    # Rows turn 'running' as soon as the worker is started (a worker of several rows marks each itself).
    running_on_launch: bool = True

    def name(self, row_id: int) -> str:
        return f"{self.label} {row_id}"


class WorkerBusy(UserError, RuntimeError):
    """Another live process already owns this job, run, evaluation or sweep; nothing was changed."""


class StopRequested(Exception):
    """Raised by a body that saw its stop request at a safe point; the row ends 'cancelled'."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _busy(label: str, owner: int) -> WorkerBusy:
    return WorkerBusy(f"{label} is already running in process {owner}; a second worker would duplicate its work. "
                      "Wait for it to finish, or stop it first.")


# -- one owner per row --------------------------------------------------------------------------------------------
def claim(db: Database, kind: WorkerKind, row_id: int, pid: int | None = None) -> int:
    """Make process `pid` (default: this one) the one owner of a row, or raise WorkerBusy and change nothing
    when another live process owns it. Returns the owner's pid.

    Atomic without locks: read the owner, then compare-and-swap it, UPDATE ... SET pid = :me WHERE id = :id
    AND pid IS <the owner read>. Two workers racing for one row cannot both match: the loser's UPDATE finds a
    pid it did not read and it looks again, now seeing a live owner. For a kind `launched_by_owner`, a process
    started under the recorded owner (accelerate's ranks under their launcher) counts as that owner.
    """
    model, label = kind.model, kind.name(row_id)
    me = pid or os.getpid()
    mine = {me} | (ancestors() if kind.launched_by_owner and pid is None else set())
    for _ in range(5):
        with db.session() as s:
            row = s.get(model, row_id)
            if row is None:
                raise LookupError(f"No {label.lower()}.")
            owner = row.pid
        if owner in mine:
            return owner
        if owner is not None and pid_alive(owner):
            raise _busy(label, owner)
        with db.begin() as s:
            same_owner = model.pid.is_(None) if owner is None else model.pid == owner
            swapped = s.execute(update(model).where(model.id == row_id, same_owner).values(pid=me)
                                .execution_options(synchronize_session=False)).rowcount == 1
        if swapped:
            return me
    raise WorkerBusy(f"{label} is being claimed by another process at the same moment; try again.")


def check_not_owned(kind: WorkerKind, row) -> None:
    """Launcher side, before starting a process: refuse when the row's worker is still alive."""
    if row.pid and row.pid != os.getpid() and pid_alive(row.pid):
        raise _busy(kind.name(row.id), row.pid)


# -- launcher side ------------------------------------------------------------------------------------------------
def start(db: Database, kind: WorkerKind, row_ids: list[int], log_path: str | Path | None = None) -> int:
    """Launch one worker for these rows (worked on in order) and record it as their owner; returns its pid.
    Refused (WorkerBusy) while any of them has a live worker, and LookupError for a missing row. The log is
    log_path (recorded on the rows), else the first row's own log."""
    reconcile(db, kind)
    with db.session() as s:
        rows = [s.get(kind.model, i) for i in row_ids]
        missing = [i for i, row in zip(row_ids, rows) if row is None]
        if missing:
            raise LookupError(f"No {kind.name(missing[0]).lower()}.")
        for row in rows:
            check_not_owned(kind, row)
        module, args = (kind.command(rows) if kind.command else
                        (kind.module, [a for i in row_ids for a in (kind.id_flag, str(i))]))
        log = log_path or rows[0].log_path
    pid = launch_worker(module, args, log, db.url)
    try:
        for i in row_ids:
            claim(db, kind, i, pid)
    except WorkerBusy:  # another launcher won the race: ours must not run
        kill_process_group(pid, grace_s=2)
        raise
    with db.begin() as s:
        for i in row_ids:
            row = s.get(kind.model, i)
            if log_path is not None:
                row.log_path = str(log_path)
            # Still ours: a very short worker may already have finished and let go.
            if kind.running_on_launch and row.pid == pid:
                row.status, row.error, row.finished_at = "running", None, None
                row.started_at = row.started_at or _now()
    return pid


def request_stop(db: Database, kind: WorkerKind, row_id: int) -> None:
    """Ask the worker to stop at its next safe point (the row and every active row the same worker owns)."""
    with db.begin() as s:
        row = s.get(kind.model, row_id)
        if row is None:
            return
        row.stop_requested = True
        if row.pid is not None:
            for other in s.scalars(select(kind.model).where(kind.model.pid == row.pid,
                                                            kind.model.status.in_(kind.active))):
                other.stop_requested = True


def stop_requested(db: Database, kind: WorkerKind, row_id: int) -> bool:
    """Worker side: has a stop been asked for? Cheap (one primary-key read); call it at safe points."""
    with db.session() as s:
        return bool(s.scalar(select(kind.model.stop_requested).where(kind.model.id == row_id)))


def stop(db: Database, kind: WorkerKind, row_id: int, grace_s: float = 10.0) -> None:
    """Ask the worker to stop, give it grace_s to do so, then end its process group (SIGTERM, SIGKILL). Rows
    the worker did not finish itself are marked cancelled."""
    with db.session() as s:
        row = s.get(kind.model, row_id)
        pid = row.pid if row else None
    request_stop(db, kind, row_id)
    deadline = time.time() + grace_s
    while pid and pid_alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    kill_process_group(pid, grace_s=2)
    with db.begin() as s:
        owned = (kind.model.id == row_id) | ((kind.model.pid == pid) & kind.model.pid.is_not(None))
        for row in s.scalars(select(kind.model).where(kind.model.status.in_(kind.active), owned)):
            row.status, row.pid, row.finished_at, row.stop_requested = "cancelled", None, _now(), False


def mark_dead(kind: WorkerKind, row) -> None:
    """A row whose worker process is gone: failed, with the kind's message and the tail of that worker's own
    attempt in the log."""
    tail = log_tail(row.log_path, kind.tail_lines, pid=row.pid)
    row.status = "failed"
    row.error = kind.dead_message(row) + (f"\n--- log tail ---\n{tail}" if tail else "")
    row.finished_at, row.pid, row.stop_requested = _now(), None, False


def reconcile(db: Database, kind: WorkerKind) -> list[int]:
    """Mark active rows whose worker is gone as failed, with the tail of its attempt's log. Returns their ids.
    A row not launched yet (no pid) is left alone."""
    failed = []
    with db.begin() as s:
        for row in s.scalars(select(kind.model).where(kind.model.status.in_(kind.active),
                                                      kind.model.pid.is_not(None))):
            if not pid_alive(row.pid):
                mark_dead(kind, row)
                failed.append(row.id)
    return failed


def wait(db: Database, kind: WorkerKind, row_ids: list[int], on_progress: Callable[[Any], None] | None = None,
         poll_s: float = 1.0) -> list:
    """Block until every row has left the kind's active statuses, calling on_progress with each row at each
    poll; dead workers are reconciled on the way. Returns the rows as they ended."""
    while True:
        reconcile(db, kind)
        with db.session() as s:
            rows = [s.get(kind.model, i) for i in row_ids]
        for row in rows:
            if on_progress and row is not None:
                on_progress(row)
        if all(row is None or row.status not in kind.active for row in rows):
            return rows
        time.sleep(poll_s)


# -- worker side --------------------------------------------------------------------------------------------------
def _let_go(db: Database, kind: WorkerKind, row_id: int) -> None:
    """After a body returned: a row it finished carries no stale stop request into its next start."""
    with db.begin() as s:
        row = s.get(kind.model, row_id)
        if row is not None and row.status not in kind.active and row.stop_requested:
            row.stop_requested = False


def run_worker_main(kind: WorkerKind, body: Callable[[Database, int], int | None],
                    argv: list[str] | None = None, description: str | None = None) -> int:
    """The main() of every worker: `python -m <kind.module> <kind.id_flag> N [...]`. For each row in order:
    claim it (a live owner elsewhere: say so, skip it, change nothing, exit code 3), run `body(db, row_id)`
    (its return value is the exit code, None = 0), and if the body raises, mark the row failed (cancelled for
    Ctrl-C or StopRequested) with the error, so it never stays 'running'. A stop request is the body's to
    honour: it knows its safe points (a training run saves its adapter first)."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    dest = kind.id_flag.lstrip("-").replace("-", "_")
    ap.add_argument(kind.id_flag, dest=dest, type=int, action="append", required=True)
    row_ids = getattr(ap.parse_args(argv), dest)
    db = open_db()
    code = 0
    for row_id in row_ids:
        try:
            # Under accelerate only rank 0 claims: the other ranks run under it, and its launcher is the owner.
            if int(os.environ.get("RANK", "0")) == 0:
                claim(db, kind, row_id)  # before anything else (and before heavy imports): one worker per row
            code = max(code, body(db, row_id) or 0)
            _let_go(db, kind, row_id)
        except WorkerBusy as e:  # a second worker for a live row: say so and leave it to its owner
            print(f"moodshelf worker (pid {os.getpid()}): {e} This worker skips it and changes nothing.", flush=True)
            code = 3
        except BaseException as e:  # never leave a row 'running'
            if not isinstance(e, StopRequested):
                traceback.print_exc()
            cancelled = isinstance(e, (KeyboardInterrupt, StopRequested))
            with db.begin() as s:
                row = s.get(kind.model, row_id)
                if row is not None and row.status in kind.active:
                    row.status = "cancelled" if cancelled else "failed"
                    row.error = str(e) if isinstance(e, StopRequested) else kind.describe_error(e)
                    row.finished_at, row.pid, row.stop_requested = _now(), None, False
            if isinstance(e, KeyboardInterrupt):
                return 130
            code = max(code, 1)
    return code
