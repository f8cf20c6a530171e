"""Repository tests run twice: on SQLite (a file under tmp_path) and on a real PostgreSQL server.

The PostgreSQL server is started for the session by tests/pg_server.py when the server binaries are
installed (`apt-get install -y postgresql`); without them the postgresql parametrization is skipped with a
message saying so (see `pytest -rs`). Each test gets a fresh schema, brought up by Alembic through
`db.engine.open_db`, exactly as the app does it.
"""
from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete, func, inspect, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

try:
    from pg_server import _free_port, pg_url  # noqa: F401  (pg_url is a session fixture)
except ImportError:  # pytest's importlib import mode does not put tests/ on sys.path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from pg_server import _free_port, pg_url  # noqa: F401

from datagen.catalog import CatalogError, count_books, import_catalog_file, load_builtin_catalog
from db.engine import BUSY_TIMEOUT_MS, Database, DatabaseError, make_engine, open_db
from db.migrate import alembic_config, current_revision
from db.models import Base, Book, Comparison, GenerationJob, RunMetric, Sample, TrainingRun
from db.settings import SettingsError

TABLES = {"books", "generation_jobs", "samples", "training_runs", "run_metrics", "comparisons"}


# --------------------------------------------------------------------------- fixtures


def _reset_postgres_schema(url: str) -> None:
    """Empty the session database: every table, index and alembic_version goes with the schema."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET lock_timeout = '10s'"))  # a leaked connection fails loudly, not hangs
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'moodshelf.db'}"
    else:
        url = request.getfixturevalue("pg_url")
        _reset_postgres_schema(url)
    database = open_db(url)
    assert database.engine.dialect.name == request.param
    yield database
    database.dispose()


@pytest.fixture
def sqlite_only_db(tmp_path):
    database = open_db(f"sqlite:///{tmp_path / 'moodshelf.db'}")
    yield database
    database.dispose()


def make_sample(content_hash: str = "h" * 64, **kw) -> Sample:
    values = dict(
        instruction="요즘 마음이 지쳐서 위로가 되는 책을 추천해 주세요.",
        input="",
        output="1. 아몬드 - 손원평",
        language="ko",
        provider="openai",
        model="gpt-test",
        prompt_version="v1",
        content_hash=content_hash,
    )
    values.update(kw)
    return Sample(**values)


def make_book(title: str = "아몬드", author: str = "손원평", **kw) -> Book:
    values = dict(title=title, author=author, language="ko", match_key=f"{title}|{author}")
    values.update(kw)
    return Book(**values)


def make_run(name: str = "run") -> TrainingRun:
    return TrainingRun(name=name, base_model="tiny-base-model")


def count(db: Database, stmt) -> int:
    with db.session() as s:
        return s.scalar(stmt)


# --------------------------------------------------------------------------- schema and migrations


def test_migrations_create_every_table_at_head_revision(db):
    from alembic.script import ScriptDirectory

    tables = set(inspect(db.engine).get_table_names())
    assert TABLES <= tables, f"missing tables: {TABLES - tables}"
    assert "alembic_version" in tables
    head = ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()
    assert head is not None
    assert current_revision(db.engine) == head


def test_migrated_schema_matches_the_models(db):
    """The migrations mirror db/models.py: autogenerate finds nothing left to migrate."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_open_db_twice_is_idempotent(db):
    with db.begin() as s:
        s.add(make_book())
    revision = current_revision(db.engine)
    tables = set(inspect(db.engine).get_table_names())

    again = open_db(db.url)
    try:
        assert current_revision(again.engine) == revision
        assert set(inspect(again.engine).get_table_names()) == tables
        assert count(again, select(func.count()).select_from(Book)) == 1
        with again.session() as s:
            assert s.scalar(select(func.count()).select_from(text("alembic_version"))) == 1
    finally:
        again.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A URL to an empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'moodshelf.db'}"
    url = request.getfixturevalue("pg_url")
    _reset_postgres_schema(url)
    return url


def _columns(engine, table: str) -> set[str]:
    return {c["name"] for c in inspect(engine).get_columns(table)}


def test_a_migration_that_fails_halfway_changes_nothing_and_the_next_start_upgrades(empty_url):
    """The disk fills during the first start, right after migration 0003 added its first column: the whole
    upgrade is rolled back (no half-applied 0003, no `duplicate column name: eval_loss` forever after)."""
    from sqlalchemy import event

    from db.migrate import upgrade_schema

    engine = make_engine(empty_url)
    upgrade_schema(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO books (title, author, language, genres, moods, description, match_key, "
                          "source, created_at) VALUES ('아몬드', '손원평', 'ko', '[]', '[]', '', 'k', 'test', "
                          "CURRENT_TIMESTAMP)"))

    def disk_full(conn, cursor, statement, parameters, context, executemany):
        if "ADD COLUMN sweep" in statement:  # 0003's second statement; its first (eval_loss) has run
            raise engine.dialect.loaded_dbapi.OperationalError("database or disk is full")

    from sqlalchemy import Engine

    event.listen(Engine, "before_cursor_execute", disk_full)  # every engine, open_db's own included
    try:
        with pytest.raises(DatabaseError, match="rolled back") as err:
            open_db(empty_url)  # what every command does on start
    finally:
        event.remove(Engine, "before_cursor_execute", disk_full)
    assert "database or disk is full" in str(err.value) and "0002" in str(err.value)
    # Nothing of the failed upgrade is left: still at 0002, without 0003's first column, and usable.
    assert current_revision(engine) == "0002"
    assert "eval_loss" not in _columns(engine, "training_runs")
    with engine.begin() as conn:
        assert conn.scalar(text("SELECT count(*) FROM books")) == 1
        conn.execute(text("UPDATE books SET source = 'still writable'"))
    engine.dispose()

    db = open_db(empty_url)  # space freed: the next start simply upgrades
    try:
        head = ScriptDirectoryHead(db)
        assert current_revision(db.engine) == head
        assert {"eval_loss", "sweep", "peak_memory_mb"} <= _columns(db.engine, "training_runs")
        assert count(db, select(func.count()).select_from(Book)) == 1
    finally:
        db.dispose()


def _insert_minimal(conn, table_name: str, **values) -> int:
    """A row in a table as the schema has it now (reflected, not the models at head): every required column filled."""
    import datetime

    from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, MetaData, Table

    table = Table(table_name, MetaData(), autoload_with=conn)
    row = dict(values)
    for col in table.columns:
        if col.name in row or col.nullable or col.primary_key or col.server_default is not None:
            continue
        t = col.type
        row[col.name] = (datetime.datetime.now(datetime.timezone.utc) if isinstance(t, DateTime) else
                         False if isinstance(t, Boolean) else 0 if isinstance(t, (Integer, Float)) else
                         {} if isinstance(t, JSON) else "x")
    return conn.execute(table.insert().values(**row)).inserted_primary_key[0]


def test_upgrading_a_database_with_jobs_keeps_their_samples_and_api_calls(empty_url):
    """Migrations that rebuild or alter generation_jobs must not cascade into the rows that reference it."""
    from db.migrate import upgrade_schema

    engine = make_engine(empty_url)
    upgrade_schema(engine, "0006")
    with engine.begin() as conn:
        job_id = _insert_minimal(conn, "generation_jobs", status="failed", config={}, batch_state={})
        _insert_minimal(conn, "api_calls", job_id=job_id, request={}, status="ok")
        _insert_minimal(conn, "samples", job_id=job_id, content_hash="h" * 64, quality_flags=[], books=[],
                        status="pending")
    engine.dispose()
    db = open_db(empty_url)
    try:
        with db.session() as s:
            job = s.get(GenerationJob, job_id)
            assert (job.failed_calls, job.reasons, job.status) == (0, {}, "failed")
            assert s.scalar(select(func.count()).select_from(text("api_calls"))) == 1
            assert s.scalars(select(Sample.job_id)).one() == job_id
    finally:
        db.dispose()


def ScriptDirectoryHead(db: Database) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(db.engine)).get_current_head()


def test_two_processes_starting_on_a_fresh_database_both_upgrade(empty_url):
    """Two commands started at once on a new database: one upgrades, the other waits and finds it done."""
    import threading

    errors: list[BaseException] = []

    def start() -> None:
        try:
            open_db(empty_url).dispose()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        engine.dispose()


def test_two_connections_opening_a_new_file_at_once_both_switch_it_to_wal(tmp_path):
    """The switch to WAL on a cold file fails at once with "database is locked" in a few percent of races
    (SQLite does not wait on the busy handler for it); connecting waits for it instead. 150 races: the old
    connect failed in one of them with a probability over 99.9%."""
    import threading

    from db.engine import _sqlite_pragmas

    on_connect = _sqlite_pragmas(10_000)
    for i in range(150):
        path = tmp_path / f"cold{i}.db"
        errors: list[BaseException] = []
        ready = threading.Barrier(2)

        def connect() -> None:
            conn = sqlite3.connect(path, timeout=10, isolation_level=None)
            try:
                ready.wait()
                on_connect(conn, None)
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                conn.close()

        threads = [threading.Thread(target=connect) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert errors == [], f"race {i}: {errors}"


# --------------------------------------------------------------------------- SQLite connection setup


def test_sqlite_pragmas_wal_foreign_keys_busy_timeout(sqlite_only_db):
    with sqlite_only_db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar().lower() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == BUSY_TIMEOUT_MS
    assert BUSY_TIMEOUT_MS > 0


def test_sqlite_make_engine_honours_busy_timeout_argument(sqlite_only_db):
    """make_engine(url, busy_timeout_s=0.2) must wait 0.2 s for a lock, not the 10 s default."""
    engine = make_engine(sqlite_only_db.url, busy_timeout_s=0.2)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 200
    finally:
        engine.dispose()


def test_sqlite_locked_database_gives_friendly_error(sqlite_only_db):
    path = sqlite_only_db.url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    engine = make_engine(sqlite_only_db.url, busy_timeout_s=0.2)
    locked = Database(engine=engine, sessionmaker=sessionmaker(engine), url=sqlite_only_db.url)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(DatabaseError) as err:
            with locked.friendly_errors(), locked.begin() as s:
                s.add(make_book())
        message = str(err.value)
        assert "locked" in message
        assert "Close the other moodshelf process" in message  # the worded one, not the raw driver text
        assert path in message
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    assert count(sqlite_only_db, select(func.count()).select_from(Book)) == 0


# --------------------------------------------------------------------------- constraints


def test_sample_content_hash_is_unique(db):
    with db.begin() as s:
        s.add(make_sample("dup", output="first"))
    with db.session() as s:
        s.add(make_sample("dup", output="second"))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    with db.session() as s:
        rows = s.scalars(select(Sample).where(Sample.content_hash == "dup")).all()
        assert [r.output for r in rows] == ["first"]


def test_run_metrics_run_step_is_unique(db):
    with db.begin() as s:
        run = make_run()
        run.metrics.append(RunMetric(step=10, loss=1.5))
        s.add(run)
    with db.session() as s:
        s.add(RunMetric(run_id=run.id, step=10, loss=0.5))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
        # Another step of the same run, and the same step of another run, are fine.
        other = make_run("other")
        s.add_all([RunMetric(run_id=run.id, step=20, loss=1.0), other])
        s.flush()
        s.add(RunMetric(run_id=other.id, step=10, loss=2.0))
        s.commit()
    assert count(db, select(func.count()).select_from(RunMetric)) == 3
    assert count(db, select(RunMetric.loss).where(RunMetric.run_id == run.id, RunMetric.step == 10)) == 1.5


def test_foreign_key_to_missing_run_is_refused(db):
    with db.session() as s:
        s.add(RunMetric(run_id=987654, step=1, loss=1.0))
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    assert count(db, select(func.count()).select_from(RunMetric)) == 0


def test_deleting_a_run_deletes_its_metrics(db):
    with db.begin() as s:
        orm_run, sql_run, kept = make_run("orm"), make_run("sql"), make_run("kept")
        for run in (orm_run, sql_run, kept):
            run.metrics = [RunMetric(step=i, loss=1.0 / (i + 1)) for i in range(3)]
        s.add_all([orm_run, sql_run, kept])

    with db.begin() as s:  # ORM delete of the object
        s.delete(s.get(TrainingRun, orm_run.id))
    assert count(db, select(func.count()).where(RunMetric.run_id == orm_run.id)) == 0

    with db.begin() as s:  # a plain DELETE: only the database's ON DELETE CASCADE removes the metrics
        s.execute(delete(TrainingRun).where(TrainingRun.id == sql_run.id))
    assert count(db, select(func.count()).where(RunMetric.run_id == sql_run.id)) == 0

    assert count(db, select(func.count()).where(RunMetric.run_id == kept.id)) == 3
    assert count(db, select(func.count()).select_from(TrainingRun)) == 1


def test_deleting_a_job_keeps_its_samples_unlinked(db):
    with db.begin() as s:
        job = GenerationJob(provider="openai", model="gpt-test", language="ko", target_count=1,
                            prompt_version="v1")
        s.add(job)
        s.flush()
        s.add(make_sample(job_id=job.id))
    with db.begin() as s:
        s.execute(delete(GenerationJob).where(GenerationJob.id == job.id))
    with db.session() as s:
        sample = s.scalars(select(Sample)).one()
        assert sample.job_id is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(lambda: make_sample(status="bogus"), id="sample-status"),
        pytest.param(lambda: make_sample(split="test"), id="sample-split"),
        pytest.param(lambda: TrainingRun(name="r", base_model="m", status="bogus"), id="run-status"),
        pytest.param(lambda: GenerationJob(provider="p", model="m", language="ko", target_count=1,
                                           prompt_version="v1", status="bogus"), id="job-status"),
        pytest.param(lambda: Comparison(prompt="p", vote="C"), id="comparison-vote"),
    ],
)
def test_check_constraints_refuse_unknown_values(db, bad):
    obj = bad()
    with db.session() as s:
        s.add(obj)
        with pytest.raises(IntegrityError):
            s.flush()
        s.rollback()
    assert count(db, select(func.count()).select_from(type(obj))) == 0


def test_check_constraints_accept_known_values(db):
    with db.begin() as s:
        s.add_all([make_sample("a", status="approved", split="train"),
                   make_sample("b", status="needs_review", split=None),
                   Comparison(prompt="p", vote="both_bad")])
    assert count(db, select(func.count()).select_from(Sample)) == 2


# --------------------------------------------------------------------------- JSON columns


def test_json_columns_round_trip_korean_text(db):
    moods = ["위로", "healing", "잔잔한 밤"]
    picks = [
        {"title": "아몬드", "author": "손원평", "reason": "감정을 배워 가는 소년의 이야기가 마음을 다독여 줍니다.",
         "effect": "위로", "book_id": None},
        {"title": "Pride and Prejudice", "author": "Jane Austen", "reason": "wit", "effect": "joy", "book_id": 7},
    ]
    with db.begin() as s:
        s.add(make_book(moods=moods, genres=["소설", "성장"]))
        s.add(make_sample(books=picks, quality_flags=["근거 부족"]))
    with db.session() as s:  # a new session: values come back from the database, not the identity map
        book = s.scalars(select(Book)).one()
        sample = s.scalars(select(Sample)).one()
        assert book.moods == moods
        assert book.genres == ["소설", "성장"]
        assert sample.books == picks
        assert sample.quality_flags == ["근거 부족"]
        assert book.title == "아몬드"


# --------------------------------------------------------------------------- catalog

HEADER = "title,author,translator,publisher,year,language,original_language,isbn,genres,moods,description\n"
VALID_ROWS = (
    "아몬드,손원평 지음,,창비,2017,ko,,,novel;성장,empathy;healing,감정을 느끼지 못하는 소년 윤재의 성장 이야기.\n"
    "A Quiet Test Book,Jane Doe,,Test Press,1999,en,,0-306-40615-2,essay,calm;comfort,A quiet book for tests.\n"
)


def test_builtin_catalog_loads_both_languages_and_is_idempotent(db):
    first = load_builtin_catalog(db)
    counts = count_books(db)
    assert first.inserted > 300
    assert sum(counts.values()) == first.inserted
    assert counts.get("ko", 0) >= 150
    assert counts.get("en", 0) >= 150

    second = load_builtin_catalog(db)
    assert second.inserted == 0
    assert second.updated == first.inserted
    assert count_books(db) == counts


def test_valid_catalog_csv_imports_its_rows(db, tmp_path):
    path = tmp_path / "library.csv"
    path.write_text(HEADER + VALID_ROWS, encoding="utf-8")
    report = import_catalog_file(db, path)
    assert (report.rows, report.inserted, report.updated) == (2, 2, 0)
    assert count_books(db) == {"ko": 1, "en": 1}
    with db.session() as s:
        ko = s.scalars(select(Book).where(Book.language == "ko")).one()
        en = s.scalars(select(Book).where(Book.language == "en")).one()
    assert (ko.title, ko.author, ko.year, ko.source) == ("아몬드", "손원평 지음", 2017, "library.csv")
    assert ko.moods == ["empathy", "healing"]
    assert ko.genres == ["novel", "성장"]
    assert en.isbn == "0306406152"

    again = import_catalog_file(db, path)  # same books again: updated in place, not duplicated
    assert (again.inserted, again.updated) == (0, 2)
    assert count_books(db) == {"ko": 1, "en": 1}


def test_two_catalog_imports_at_once_both_succeed_with_one_row_per_book(db, tmp_path):
    """Two `moodshelf catalog import` at once (each its own engine, as two processes would have), held at
    a barrier so that both have read the catalog before either writes: no UNIQUE match_key error, one row
    per book, and between them the two reports count each book once as new and once as updated."""
    import threading

    from sqlalchemy import Engine, event

    rows = "".join(f"Book {i},Author {i},,,2001,en,,,essay,calm,A test book.\n" for i in range(60))
    files = []
    for name in ("a.csv", "b.csv"):
        files.append(tmp_path / name)
        files[-1].write_text(HEADER + rows, encoding="utf-8")
    barrier = threading.Barrier(2, timeout=10)
    waited: set[int] = set()

    def both_read_before_either_writes(conn, cursor, statement, parameters, context, executemany):
        me = threading.get_ident()
        if statement.lstrip().upper().startswith("INSERT INTO BOOKS") and me in workers and me not in waited:
            waited.add(me)
            barrier.wait()

    reports, errors = {}, []
    workers: set[int] = set()

    def run(path) -> None:
        workers.add(threading.get_ident())
        other = open_db(db.url)
        try:
            reports[path.name] = import_catalog_file(other, path)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            barrier.abort()
        finally:
            other.dispose()

    event.listen(Engine, "before_cursor_execute", both_read_before_either_writes)
    try:
        threads = [threading.Thread(target=run, args=(f,)) for f in files]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        event.remove(Engine, "before_cursor_execute", both_read_before_either_writes)
    assert errors == []
    assert count_books(db) == {"en": 60}
    a, b = reports["a.csv"], reports["b.csv"]
    assert a.rows == b.rows == 60
    assert a.inserted + b.inserted == 60 and a.updated + b.updated == 60
    assert {a.inserted, b.inserted} == {0, 60}  # one transaction inserted them all, the other updated
    with db.session() as s:
        assert {b.source for b in s.scalars(select(Book))} <= {"a.csv", "b.csv"}


@pytest.mark.parametrize(
    "bad_row",
    [
        pytest.param("Broken Year,John Roe,,,19xx,en,,,,calm,x\n", id="year-19xx"),
        pytest.param("Broken Mood,John Roe,,,2001,en,,,,calm;gloomy,x\n", id="unknown-mood"),
    ],
)
def test_catalog_csv_with_one_bad_row_imports_nothing(db, tmp_path, bad_row):
    good = tmp_path / "good.csv"
    good.write_text(HEADER + VALID_ROWS, encoding="utf-8")
    import_catalog_file(db, good)
    before = count_books(db)

    bad = tmp_path / "bad.csv"
    # line 1 header, line 2 a new valid book, line 3 the bad row
    bad.write_text(HEADER + "Fine New Book,Ann Poe,,,2020,en,,,,hope,ok\n" + bad_row, encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        import_catalog_file(db, bad)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith("line 3:")
    assert "nothing was imported" in str(err.value)

    assert count_books(db) == before
    assert count(db, select(func.count()).where(Book.title == "Fine New Book")) == 0


def test_cp949_catalog_needs_the_encoding_option(db, tmp_path):
    path = tmp_path / "korean_export.csv"
    path.write_bytes((HEADER + "달러구트 꿈 백화점,이미예,,팩토리나인,2020,ko,,,fantasy,comfort;escape,"
                      "잠들어야만 입장할 수 있는 꿈 백화점 이야기.\n").encode("cp949"))

    with pytest.raises(CatalogError) as err:
        import_catalog_file(db, path)
    assert "cp949" in str(err.value).lower()
    assert count_books(db) == {}

    report = import_catalog_file(db, path, encoding="cp949")
    assert report.inserted == 1
    with db.session() as s:
        assert s.scalars(select(Book.title)).one() == "달러구트 꿈 백화점"


# --------------------------------------------------------------------------- settings and connection errors


def test_unwritable_moodshelf_home_raises_settings_error(tmp_path, monkeypatch):
    # Under a regular file: mkdir fails even for root (chmod would not stop root).
    (tmp_path / "afile").write_text("not a directory")
    home = tmp_path / "afile" / "home"
    monkeypatch.setenv("MOODSHELF_HOME", str(home))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(SettingsError, match="MOODSHELF_HOME") as err:
        open_db()
    assert str(home) in str(err.value)


def test_unreachable_postgres_gives_database_error_without_password():
    pytest.importorskip("psycopg2")
    url = f"postgresql+psycopg2://moodshelf:s3cret-pw@127.0.0.1:{_free_port()}/nowhere"
    with pytest.raises(DatabaseError) as err:
        open_db(url)
    assert "s3cret-pw" not in str(err.value)
    assert "127.0.0.1" in str(err.value)
