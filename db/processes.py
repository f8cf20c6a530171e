"""Worker processes that keep their state in the DB (training runs, generation jobs): launch, liveness, logs.

The web server and the CLI only start and watch; a worker that died is found by its pid and marked
failed with the tail of its log.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from db.settings import get_settings

_children: dict[int, subprocess.Popen] = {}  # our own children, reaped so they don't linger as zombies


def launch_worker(module: str, args: list[str], log_path: str | Path, database_url: str) -> int:
    """Start `python -m module args...` in its own session (no shell), output appended to log_path."""
    env = dict(os.environ)
    env.setdefault("MOODSHELF_HOME", str(get_settings().home))
    env["DATABASE_URL"] = database_url
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True, cwd=os.getcwd())
    _children[proc.pid] = proc
    return proc.pid


def reap() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            _children.pop(pid, None)


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    reap()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited child not yet reaped) still answers kill(0); check /proc where it exists.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROGRESS_BAR = re.compile(r"^\s*[^|]*\d+%\|")


def log_tail(path: str | None, lines: int = 20) -> str:
    """The last lines of a worker's log, without terminal escapes or progress-bar redraws."""
    if not path or not Path(path).exists():
        return ""
    text = _ANSI.sub("", Path(path).read_text(encoding="utf-8", errors="replace")).replace("\r", "\n")
    kept = [ln for ln in text.splitlines() if ln.strip() and not _PROGRESS_BAR.match(ln)]
    return "\n".join(kept[-lines:])


def kill_process_group(pid: int | None, grace_s: float) -> None:
    """SIGTERM the worker's process group (it started its own session), SIGKILL what is left after grace_s."""
    if pid and pid_alive(pid):
        try:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.time() + grace_s
            while time.time() < deadline and pid_alive(pid):
                time.sleep(0.2)
            if pid_alive(pid):
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    reap()


def mark_worker_dead(row, message: str, tail_lines: int = 20) -> None:
    """A job, run or evaluation whose worker process is gone: failed, with the message and the log's tail."""
    tail = log_tail(row.log_path, tail_lines)
    row.status = "failed"
    row.error = message + (f"\n--- log tail ---\n{tail}" if tail else "")
    row.finished_at, row.pid = datetime.now(timezone.utc), None
