"""Engine and sessions. SQLite gets WAL, a busy timeout and foreign keys; any other URL is used as is.

    from db.engine import open_db
    db = open_db()                      # settings from the environment, schema upgraded
    with db.begin() as s:               # one transaction
        s.add(...)
"""
from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.errors import UserError
from db.settings import Settings, SettingsError, get_settings

BUSY_TIMEOUT_MS = 10_000


class DatabaseError(UserError, RuntimeError):
    """A database problem worded for the user (locked file, unreachable server...)."""


def _switch_to_wal(cur, busy_timeout_ms: int) -> None:
    """PRAGMA journal_mode=WAL, waiting like an ordinary write would.

    Switching a new database file to WAL takes an exclusive lock and SQLite does not call the busy handler for
    it: two processes opening a fresh file at once could get "database is locked" at once (6% of cold opens by
    two threads, measured). The mode is stored in the file, so once either has switched, the other's retry
    only reads it."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_pragmas(busy_timeout_ms: int):
    def on_connect(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        # WAL lets the web server read while a worker process writes; the busy timeout makes writers
        # wait for each other instead of failing at once; SQLite ignores foreign keys unless asked.
        _switch_to_wal(cur, busy_timeout_ms)
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    return on_connect


URL_EXAMPLES = "sqlite:////absolute/path/moodshelf.db or postgresql+psycopg2://user@host/dbname"


def check_database_url(url: str) -> URL:
    """Parse DATABASE_URL and make sure its driver can be imported, or say what to fix in one line."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Never echo the value: it may carry a password.
        raise DatabaseError(f"DATABASE_URL is not a database URL; expected e.g. {URL_EXAMPLES}.") from None
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        raise DatabaseError(f"DATABASE_URL names an unknown kind of database '{parsed.drivername}'; "
                            f"expected e.g. {URL_EXAMPLES}.") from None
    try:
        dialect.import_dbapi()
    except ImportError as e:
        missing = getattr(e, "name", None) or parsed.drivername
        if parsed.get_backend_name() == "postgresql":
            raise DatabaseError(f"DATABASE_URL points at PostgreSQL, but its driver ({missing}) is not installed: "
                                "pip install 'moodshelf[postgres]' (psycopg2; use a postgresql+psycopg2:// URL)."
                                ) from None
        raise DatabaseError(f"DATABASE_URL needs the Python driver '{missing}' for {parsed.drivername}, which is "
                            f"not installed: pip install it.") from None
    return parsed


def make_engine(url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_MS / 1000) -> Engine:
    check_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": busy_timeout_s})
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_s * 1000))
        return engine
    return create_engine(url, pool_pre_ping=True)


def explain_operational_error(e: OperationalError, url: str) -> DatabaseError:
    msg = str(e.orig) if e.orig is not None else str(e)
    if "locked" in msg:
        return DatabaseError(
            f"The database is locked by another process and stayed locked past the busy timeout "
            f"({_safe_url(url)}). Close the other moodshelf process (or the SQLite browser) holding it and retry."
        )
    if "unable to open" in msg:
        return DatabaseError(f"Cannot open the database file ({_safe_url(url)}): check MOODSHELF_HOME / DATABASE_URL.")
    return DatabaseError(f"Database error on {_safe_url(url)}: {msg}")


def _safe_url(url: str) -> str:
    # Never show a password from DATABASE_URL.
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<DATABASE_URL>"


@dataclass
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]
    url: str

    def begin(self):
        """`with db.begin() as s:` — a session in one transaction, committed on success."""
        return self.sessionmaker.begin()

    def session(self) -> Session:
        return self.sessionmaker()

    @contextlib.contextmanager
    def friendly_errors(self) -> Iterator[None]:
        try:
            yield
        except OperationalError as e:
            raise explain_operational_error(e, self.url) from e

    def dispose(self) -> None:
        self.engine.dispose()


def open_db(url: str | None = None, *, upgrade: bool = True, settings: Settings | None = None) -> Database:
    """Open the database (creating the data directory) and bring its schema to the latest migration."""
    if url is None:
        settings = settings or get_settings()
        check_database_url(settings.database_url)  # before anything is created on disk
        url = settings.ensure_home().database_url
    elif url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SettingsError(f"Cannot create the database directory {path.parent}: {e.strerror or e}") from e
    engine = make_engine(url)
    db = Database(engine=engine, sessionmaker=sessionmaker(engine, expire_on_commit=False), url=url)
    if upgrade:
        from db.migrate import SchemaUpgradeError, upgrade_schema

        try:
            with db.friendly_errors():
                upgrade_schema(engine)
        except SchemaUpgradeError as e:
            raise DatabaseError(str(e)) from e
    return db
