"""Alembic, driven from code so that the app and the CLI upgrade the schema on start.

    moodshelf db upgrade          # what every command does first anyway
    alembic -c db/alembic.ini revision --autogenerate -m "..."   # for developers adding a migration

An upgrade is all-or-nothing: every pending migration runs inside one database transaction, DDL included,
so a migration that fails halfway (a full disk, a killed process) leaves the schema exactly at the revision
it started from, and the next start simply runs the upgrade again.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any fixed number: PostgreSQL processes that upgrade at the same time queue on this advisory lock.
PG_UPGRADE_LOCK = 0x6D6F6F64
UPGRADE_WAIT_MS = 300_000  # SQLite: how long a second process waits for another one's schema upgrade


class SchemaUpgradeError(RuntimeError):
    """The upgrade failed and was rolled back; the database is still at `revision`."""

    def __init__(self, message: str, revision: str | None):
        super().__init__(message)
        self.revision = revision


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def head_revisions(engine: Engine) -> set[str]:
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config(engine)).get_heads())


def current_heads(engine: Engine) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def schema_transaction(conn: Connection) -> Iterator[Connection]:
    """One real transaction around a whole upgrade: committed when every migration succeeded, rolled back
    (DDL included) when any failed.

    PostgreSQL has transactional DDL and needs only the transaction (plus an advisory lock so that two
    processes starting at once upgrade one after the other). SQLite has transactional DDL too, but Python
    3.11's sqlite3 driver runs DDL outside any transaction (it only opens one before INSERT/UPDATE/DELETE),
    so an ALTER TABLE would be committed on its own. The fix is SQLAlchemy's pysqlite recipe for
    transactional DDL: take transaction control away from the driver (AUTOCOMMIT = isolation_level None)
    and emit BEGIN ourselves, so batch-mode table rebuilds and the alembic_version update sit in the same
    transaction. BEGIN IMMEDIATE takes the write lock first: a second process starting at the same time
    waits (busy timeout), then finds the schema at head and has nothing to do.
    https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
    """
    if conn.dialect.name != "sqlite":
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_UPGRADE_LOCK})")
            yield conn
        return
    conn.execution_options(isolation_level="AUTOCOMMIT")  # reset when the connection goes back to the pool
    # Batch mode rebuilds a table (create copy, drop, rename); with foreign keys on, dropping a referenced
    # table would cascade into its children. The pragma cannot change inside a transaction: set it first,
    # and check the keys before committing instead.
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    # A second process waits for the first one's whole upgrade, which on a new database (every migration, table
    # rebuilds included) can take longer than an ordinary write's busy timeout on a loaded machine.
    busy_timeout_ms = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
    conn.exec_driver_sql(f"PRAGMA busy_timeout={UPGRADE_WAIT_MS}")
    conn.commit()  # ends SQLAlchemy's autobegun (empty) transaction so that ours can begin
    try:
        with conn.begin():
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise RuntimeError(f"the upgrade would leave {len(broken)} row(s) with a broken foreign key "
                                   f"(first: table {broken[0][0]}, row {broken[0][1]})")
    finally:
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")
        conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        conn.commit()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` in one transaction; raise SchemaUpgradeError (nothing changed) on failure."""
    if revision == "head" and current_heads(engine) == head_revisions(engine):
        return  # nothing to do: no write lock taken on every start
    before = current_revision(engine)
    cfg = alembic_config(engine)
    try:
        with engine.connect() as conn, schema_transaction(conn):
            cfg.attributes["connection"] = conn  # env.py runs the migrations on it, inside this transaction
            command.upgrade(cfg, revision)
    except Exception as e:  # noqa: BLE001 - any failure: say that nothing changed, keep the cause
        cause = (str(getattr(e, "orig", None) or e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
        raise SchemaUpgradeError(
            f"The database schema upgrade (from revision {before or 'none'}) failed and was rolled back: "
            f"{cause}. Nothing was changed; fix the cause (e.g. free disk space) and start again.",
            before) from e
