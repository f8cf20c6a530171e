"""A throwaway PostgreSQL server for the test session.

    from pg_server import pg_url          # session fixture: a SQLAlchemy URL to a fresh database

Where the server binaries are installed (Debian/Ubuntu: `apt-get install -y postgresql`, which puts
initdb, pg_ctl and postgres under /usr/lib/postgresql/<version>/bin), the fixture runs initdb in a temp
directory, starts the server on a free 127.0.0.1 TCP port (its unix socket inside the temp dir, so it never
collides with a system cluster), creates a database and yields

    postgresql+psycopg2://postgres@127.0.0.1:<port>/moodshelf_test

At the end of the session the server is stopped and the directory removed. Without the binaries the
fixture skips the PostgreSQL tests.

initdb refuses to run as root: as root the binaries run as the `postgres` system user (created by the
Debian package) through `runuser -u postgres --` (or `su postgres -c`), and the temp dir belongs to it.

Environment:
    MOODSHELF_PG_BIN   directory holding initdb/pg_ctl/postgres (overrides the search; a directory
                       without them makes the fixture skip, e.g. MOODSHELF_PG_BIN=/nonexistent)
"""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

SKIP_MESSAGE = (
    "PostgreSQL server binaries not installed (apt-get install postgresql): "
    "skipping the PostgreSQL run of the repository tests"
)
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 30
SUPERUSER = "postgres"
DATABASE = "moodshelf_test"
RUN_AS_WHEN_ROOT = "postgres"


class PostgresStartError(RuntimeError):
    """The server could not be initialised or started; the message carries the server log tail."""


def _has_binaries(d: Path) -> bool:
    return all(os.access(d / b, os.X_OK) for b in REQUIRED_BINARIES)


def _version_key(p: Path) -> tuple:
    # /usr/lib/postgresql/<version>/bin: newest version first ("16" > "15" > "9.6").
    return tuple(int(x) if x.isdigit() else -1 for x in re.split(r"[.]", p.parent.name))


def find_pg_bin() -> Path | None:
    """The directory with initdb, pg_ctl and postgres, or None."""
    env = os.environ.get("MOODSHELF_PG_BIN")
    if env is not None:
        d = Path(env)
        return d if _has_binaries(d) else None
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    # Fedora/Homebrew/source installs have them on PATH (Debian only links psql/initdb wrappers there).
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for d in candidates:
        if _has_binaries(d):
            return d
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(log: Path, lines: int = 30) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no server log)"
    return "\n".join(text.splitlines()[-lines:]) or "(server log is empty)"


class _Runner:
    """Runs the server binaries as ourselves, or as the `postgres` user when we are root."""

    def __init__(self) -> None:
        self.as_root = hasattr(os, "geteuid") and os.geteuid() == 0
        self.uid = self.gid = None
        if self.as_root:
            import pwd

            try:
                pw = pwd.getpwnam(RUN_AS_WHEN_ROOT)
            except KeyError:
                raise PostgresStartError(
                    f"Running as root, and initdb refuses to run as root, but there is no "
                    f"'{RUN_AS_WHEN_ROOT}' system user to run PostgreSQL as (the Debian 'postgresql' "
                    "package creates it). Run the tests as a regular user or create that user."
                ) from None
            self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def argv(self, cmd: list[str]) -> list[str]:
        if not self.as_root:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", RUN_AS_WHEN_ROOT, "--", *cmd]
        return ["su", RUN_AS_WHEN_ROOT, "-s", "/bin/sh", "-c", shlex.join(cmd)]

    def run(self, cmd: list[str], *, cwd: Path, timeout: float) -> subprocess.CompletedProcess:
        env = dict(os.environ, LC_ALL="C", LANG="C")
        env.pop("PGDATA", None)
        return subprocess.run(
            self.argv(cmd), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def make_tempdir(self) -> Path:
        base = None
        if self.as_root and not _world_traversable(Path(tempfile.gettempdir())):
            base = "/tmp"  # TMPDIR under /root: the postgres user could not reach it
        d = Path(tempfile.mkdtemp(prefix="moodshelf-pg-", dir=base))
        if self.as_root:
            os.chown(d, self.uid, self.gid)
        return d


def _world_traversable(p: Path) -> bool:
    p = p.resolve()
    return all(os.stat(x).st_mode & 0o001 for x in [p, *p.parents])


@contextlib.contextmanager
def running_postgres(bin_dir: Path, *, database: str = DATABASE) -> Iterator[str]:
    """Start a server in a temp dir, create `database`, yield its SQLAlchemy URL; stop and clean up after."""
    runner = _Runner()
    tmp = runner.make_tempdir()
    data, log = tmp / "data", tmp / "server.log"
    started = False
    try:
        r = runner.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            cwd=tmp, timeout=120,
        )
        if r.returncode != 0:
            raise PostgresStartError(f"initdb failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")

        last_error = ""
        for _attempt in range(3):  # a free port can be taken between probing it and binding it
            port = _free_port()
            opts = (f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={tmp} "
                    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
            try:
                r = runner.run(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts,
                     "-w", "-t", str(START_TIMEOUT_S), "start"],
                    cwd=tmp, timeout=START_TIMEOUT_S + 15,
                )
                ok = r.returncode == 0
                output = f"{r.stdout}\n{r.stderr}"
            except subprocess.TimeoutExpired:
                ok, output = False, f"pg_ctl start did not return within {START_TIMEOUT_S + 15} s"
            if ok:
                started = True
                break
            tail = _log_tail(log)
            last_error = f"{output.strip()}\n--- server log ({log}) ---\n{tail}"
            _stop(runner, bin_dir, data, tmp)  # in case it came up after pg_ctl gave up
            if "already in use" not in tail:
                break
        if not started:
            raise PostgresStartError(
                f"PostgreSQL ({bin_dir}) did not start within {START_TIMEOUT_S} s:\n{last_error}"
            )

        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres",
                                connect_timeout=10)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}" TEMPLATE template0 ENCODING \'UTF8\'')
        finally:
            conn.close()
        yield f"postgresql+psycopg2://{SUPERUSER}@127.0.0.1:{port}/{database}"
    finally:
        if started:
            _stop(runner, bin_dir, data, tmp)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(runner: _Runner, bin_dir: Path, data: Path, cwd: Path) -> None:
    if not (data / "postmaster.pid").exists():
        return
    for mode in ("fast", "immediate"):
        try:
            r = runner.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", mode, "-w",
                            "-t", str(STOP_TIMEOUT_S), "stop"], cwd=cwd, timeout=STOP_TIMEOUT_S + 15)
            if r.returncode == 0 or not (data / "postmaster.pid").exists():
                return
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """SQLAlchemy URL of a database on a session-wide throwaway PostgreSQL server (skips without one)."""
    bin_dir = find_pg_bin()
    if bin_dir is None:
        pytest.skip(SKIP_MESSAGE)
    pytest.importorskip("psycopg2", reason="psycopg2 not installed (pip install -e '.[test]'): "
                                           "skipping the PostgreSQL run of the repository tests")
    with running_postgres(bin_dir) as url:
        yield url
