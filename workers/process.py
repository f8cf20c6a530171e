"""The operating-system side of a worker: start `python -m module` (no shell, its own session), tell whether a
pid is alive, end a process group, and read one attempt's section of a worker log.

    pid = launch_worker("datagen.worker", ["--job-id", "3"], log_path, db.url)
    pid_alive(pid); kill_process_group(pid, grace_s=2); log_tail(log_path, 20, pid=pid)

Ownership, stopping and reconciling rows in the DB are workers/supervisor.py's; this module knows no table.
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

# The directory that holds the app, training, datagen, workers and db packages (the checkout, or site-packages).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
ATTEMPT_HEADER = re.compile(r"^===== attempt (\d+) · pid (\d+) · .* =====$", re.MULTILINE)


def worker_env(database_url: str) -> dict[str, str]:
    """The environment of a worker: same data directory and database as the launcher, and imports from
    this project only. `python -m` would put the caller's current directory first on sys.path, so a file
    named inspect.py (or json.py, ...) there would replace the standard module; PYTHONSAFEPATH stops that
    (and is inherited by accelerate's rank processes), PYTHONPATH puts the project first."""
    env = dict(os.environ)
    env.setdefault("MOODSHELF_HOME", str(get_settings().home))
    env["DATABASE_URL"] = database_url
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONSAFEPATH"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def launch_worker(module: str, args: list[str], log_path: str | Path, database_url: str) -> int:
    """Start `python -m module args...` in its own session (no shell), output appended to log_path under a
    header line of its own (attempt number, pid, time), so that each attempt's traceback stays with it."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    attempt = len(ATTEMPT_HEADER.findall(_read(log_path))) + 1
    # The working directory stays the caller's: relative paths (a local base model, a sqlite:///x.db URL)
    # mean the same in the worker; imports are kept out of it by worker_env.
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=worker_env(database_url), start_new_session=True,
                                cwd=os.getcwd())
        # Written as soon as the pid is known: a new interpreter takes far longer to start than this append
        # (O_APPEND), so the header comes before anything the worker prints.
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        log.write(f"===== attempt {attempt} · pid {proc.pid} · {stamp} =====\n".encode())
        log.flush()
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


def ancestors() -> set[int]:
    """Pids of this process's parent, grandparent, ... (Linux /proc; elsewhere just the parent)."""
    found, pid = set(), os.getppid()
    for _ in range(32):
        if pid <= 1 or pid in found:
            break
        found.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return found


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_PROGRESS_BAR = re.compile(r"^\s*[^|]*\d+%\|")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def attempt_log(text: str, pid: int | None = None) -> str:
    """The section of a worker log written by one attempt: the one whose header names `pid`, else the last."""
    headers = list(ATTEMPT_HEADER.finditer(text))
    if not headers:
        return text  # a log from before attempt headers
    chosen = next((h for h in reversed(headers) if pid is not None and int(h.group(2)) == pid), headers[-1])
    later = [h.start() for h in headers if h.start() > chosen.start()]
    return text[chosen.start(): later[0] if later else len(text)]


def log_tail(path: str | None, lines: int = 20, pid: int | None = None) -> str:
    """The last lines of one attempt's log (pid's, or the latest), without terminal escapes or progress-bar
    redraws."""
    if not path or not Path(path).exists():
        return ""
    text = _ANSI.sub("", attempt_log(_read(Path(path)), pid)).replace("\r", "\n")
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
