"""The book catalog: the shipped CSVs, a user's own CSV import, and mood-based candidate lookup.

    moodshelf catalog import my_library.csv [--encoding cp949]   # one transaction, per-row report
    moodshelf catalog stats

A file is validated whole before anything is written: one bad row and nothing is imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Optional

from pydantic import BaseModel, ValidationError, field_validator
from sqlalchemy import bindparam, func, select, update

from datagen.csv_lines import CsvProblem, dict_records
from datagen.grounding import CatalogIndex, book_key
from db.engine import Database
from db.errors import UserError
from db.models import Book

CATALOG_DIR = Path(__file__).parent / "catalog_data"
MOODS = ("comfort", "calm", "courage", "focus", "healing", "motivation",
         "hope", "joy", "insight", "curiosity", "empathy", "escape")
REQUIRED_COLUMNS = ("title", "author", "language")
KNOWN_COLUMNS = ("title", "author", "translator", "publisher", "year", "language", "original_language",
                 "isbn", "genres", "moods", "description")


class CatalogError(UserError, ValueError):
    """A catalog file that cannot be imported; `problems` lists every bad row."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        detail = "".join(f"\n  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(message + detail + more)


def _split_list(v: object) -> list[str]:
    if v is None or v == "":
        return []
    if isinstance(v, list):
        return [str(x).strip() for x in v if str(x).strip()]
    return [p.strip().lower() for p in str(v).replace(",", ";").split(";") if p.strip()]


class BookRow(BaseModel):
    """One catalog row as validated at the boundary."""

    title: str
    author: str
    translator: Optional[str] = None
    publisher: Optional[str] = None
    year: Optional[int] = None
    language: str
    original_language: Optional[str] = None
    isbn: Optional[str] = None
    genres: list[str] = []
    moods: list[str] = []
    description: str = ""

    @field_validator("title", "author", "language")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        v = (v or "").strip()
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("translator", "publisher", "original_language", "isbn", mode="before")
    @classmethod
    def _blank_is_none(cls, v):
        return (str(v).strip() or None) if v is not None else None

    @field_validator("year", mode="before")
    @classmethod
    def _year(cls, v):
        if v is None or str(v).strip() == "":
            return None
        s = str(v).strip()
        if not (s.isdigit() and len(s) == 4 and 1000 <= int(s) <= 2100):
            raise ValueError(f"'{s}' is not a 4-digit year")
        return int(s)

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        v = v.lower()
        if v not in ("ko", "en"):
            raise ValueError(f"'{v}' is not supported (use ko or en)")
        return v

    @field_validator("isbn")
    @classmethod
    def _isbn(cls, v):
        if v is None:
            return None
        digits = v.replace("-", "").replace(" ", "")
        if not (len(digits) in (10, 13) and digits[:-1].isdigit() and (digits[-1].isdigit() or digits[-1] in "Xx")):
            raise ValueError(f"'{v}' is not an ISBN-10 or ISBN-13")
        return digits.upper()

    @field_validator("genres", mode="before")
    @classmethod
    def _genres(cls, v):
        return _split_list(v)

    @field_validator("moods", mode="before")
    @classmethod
    def _moods(cls, v):
        moods = _split_list(v)
        unknown = [m for m in moods if m not in MOODS]
        if unknown:
            raise ValueError(f"unknown mood tag(s) {unknown}; use: {', '.join(MOODS)}")
        return moods


@dataclass
class ImportReport:
    source: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.source}: {self.rows} rows, {self.inserted} new, {self.updated} updated"


def read_catalog_csv(data: bytes, source: str, encoding: str = "utf-8") -> list[BookRow]:
    """Decode and validate a whole CSV; raise CatalogError listing every problem, or return all rows."""
    try:
        text = data.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as e:
        raise CatalogError(
            f"{source} is not valid {encoding} (byte {e.start}: {data[e.start:e.start + 4]!r}). "
            "Korean library exports are often CP949/EUC-KR: retry with --encoding cp949."
        ) from e
    except LookupError as e:
        raise CatalogError(f"Unknown encoding '{encoding}'.") from e
    if "\x00" in text:
        raise CatalogError(f"{source} contains NUL bytes: it is not a text CSV file (is it a spreadsheet?).")
    try:
        header, records = dict_records(text)
    except CsvProblem as e:
        raise CatalogError(f"{source}: {e}; nothing was imported.") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise CatalogError(
            f"{source}: missing required column(s) {missing}. Found columns: {header or 'none'}. "
            f"Expected a header row with: {', '.join(KNOWN_COLUMNS)}."
        )
    rows: list[BookRow] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    try:
        for line_no, raw in records:  # line_no: where the record starts in the file
            if None in raw:
                problems.append(f"line {line_no}: {len(raw[None])} more field(s) than the header has")
                continue
            if all((v or "").strip() == "" for v in raw.values()):
                continue
            try:
                row = BookRow(**{k: v for k, v in raw.items() if k in KNOWN_COLUMNS})
            except ValidationError as e:
                errs = "; ".join(f"{'.'.join(map(str, er['loc'])) or 'row'}: {er['msg']}" for er in e.errors())
                problems.append(f"line {line_no}: {errs}")
                continue
            key = book_key(row.title, row.author)
            if key in seen:
                problems.append(f"line {line_no}: duplicate of line {seen[key]} ({row.title} - {row.author})")
                continue
            seen[key] = line_no
            rows.append(row)
    except CsvProblem as e:  # the file cannot be read past this point
        problems.append(str(e))
    if problems:
        raise CatalogError(f"{source}: {len(problems)} bad row(s); nothing was imported.", problems)
    if not rows:
        raise CatalogError(f"{source}: no book rows found; nothing was imported.")
    return rows


def _insert_for(db: Database):
    """INSERT ... ON CONFLICT needs the dialect's own insert construct (SQLite and PostgreSQL spell it alike)."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def upsert_books(db: Database, rows: Iterable[BookRow], source: str) -> ImportReport:
    """Write rows in one transaction: new books inserted, known books (same normalised key) updated.

    Race-free: two imports at once never collide on the unique match_key. Each row is first offered as
    INSERT ... ON CONFLICT (match_key) DO NOTHING RETURNING match_key, so the rows the database really
    inserted come back, whoever else is importing; the others already exist (from an earlier import, or one
    committed a moment ago by a concurrent one) and are updated in place. A single ON CONFLICT DO UPDATE
    could not tell the report which rows were new on SQLite.
    """
    rows = list(rows)
    report = ImportReport(source=source, rows=len(rows))
    if not rows:
        return report
    now = datetime.now(timezone.utc)
    values = [{**row.model_dump(), "match_key": book_key(row.title, row.author), "source": source,
               "created_at": now} for row in rows]
    books = Book.__table__
    insert = _insert_for(db)
    with db.friendly_errors(), db.begin() as s:
        conn = s.connection()
        inserted = set(conn.scalars(
            insert(books).on_conflict_do_nothing(index_elements=["match_key"]).returning(books.c.match_key),
            values))
        # updated_at set here, not left to the ORM's onupdate: retrieval rebuilds its index when it moves.
        known = [{**{k: v for k, v in row.items() if k != "created_at"}, "updated_at": now, "key": row["match_key"]}
                 for row in values if row["match_key"] not in inserted]
        if known:
            fields = [k for k in known[0] if k not in ("key", "match_key")]
            conn.execute(update(books).where(books.c.match_key == bindparam("key"))
                         .values({k: bindparam(k) for k in fields}), known)
    report.inserted, report.updated = len(inserted), len(known)
    return report


def import_catalog_file(db: Database, path: str | Path, encoding: str = "utf-8") -> ImportReport:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CatalogError(f"Cannot read {path}: {e.strerror or e}") from e
    rows = read_catalog_csv(data, path.name, encoding)
    return upsert_books(db, rows, source=path.name)


def builtin_catalog_files() -> list[Path]:
    return sorted(CATALOG_DIR.glob("*.csv"))


def load_builtin_catalog(db: Database) -> ImportReport:
    """Load the shipped catalog (idempotent: a second call updates in place)."""
    rows: list[BookRow] = []
    for f in builtin_catalog_files():
        rows += read_catalog_csv(f.read_bytes(), f.name)
    return upsert_books(db, rows, source="builtin")


def count_books(db: Database) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(Book.language, func.count()).group_by(Book.language)).all())


def catalog_index(db: Database) -> CatalogIndex:
    with db.session() as s:
        return CatalogIndex(s.execute(select(Book.id, Book.title, Book.author)).all())


def books_for_moods(db: Database, moods: Iterable[str], language: str) -> list[Book]:
    """Books in `language` tagged with any of `moods`, best overlap first (JSON filtering done in Python
    so the same code runs on SQLite and PostgreSQL)."""
    wanted = set(moods)
    with db.session() as s:
        books = list(s.scalars(select(Book).where(Book.language == language).order_by(Book.id)))
    scored = [(len(wanted & set(b.moods)), b) for b in books]
    return [b for n, b in sorted(scored, key=lambda x: -x[0]) if n > 0]
