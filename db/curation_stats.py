"""Dataset statistics for the Curate tab and `moodshelf samples stats`: GROUP BY queries, never rows in Python
(except the book titles on databases without JSON table functions).

    counts_by(db, "provider", f)      # [("offline", 9120), ("openai", 880)]
    rates_by_model(db, f)             # grounding and rejection rate per provider and model
    top_titles(db, f, limit=20)       # spot a collapse onto a few bestsellers
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import Integer, case, cast, func, select, true

from db.curation import SampleFilter, conditions
from db.engine import Database
from db.models import Sample

GROUPABLE = ("status", "provider", "model", "language", "emotion", "occupation", "effect", "prompt_version", "split")


def counts_by(db: Database, column: str, f: SampleFilter | None = None, limit: int = 30) -> list[tuple[str, int]]:
    if column not in GROUPABLE:
        raise ValueError(f"cannot group by {column!r}: use one of {', '.join(GROUPABLE)}")
    col = getattr(Sample, column)
    q = (select(col, func.count()).where(*conditions(f or SampleFilter())).group_by(col)
         .order_by(func.count().desc(), col).limit(limit))
    with db.session() as s:
        return [(v if v is not None else "(none)", n) for v, n in s.execute(q)]


@dataclass
class ModelRates:
    provider: str
    model: str
    samples: int
    grounded_rate: float   # share of samples whose every book is in the catalog
    rejected_rate: float
    approved_rate: float


def rates_by_model(db: Database, f: SampleFilter | None = None) -> list[ModelRates]:
    grounded = SampleFilter(grounded="yes")
    is_grounded = case((conditions(grounded)[0], 1), else_=0)
    q = (select(Sample.provider, Sample.model, func.count(), func.sum(is_grounded),
                func.sum(cast(Sample.status == "rejected", Integer)),
                func.sum(cast(Sample.status == "approved", Integer)))
         .where(*conditions(f or SampleFilter())).group_by(Sample.provider, Sample.model)
         .order_by(Sample.provider, Sample.model))
    with db.session() as s:
        return [ModelRates(p, m, n, (g or 0) / n, (r or 0) / n, (a or 0) / n) for p, m, n, g, r, a in s.execute(q)]


def top_titles(db: Database, f: SampleFilter | None = None, limit: int = 20) -> list[tuple[str, int]]:
    """Most recommended titles among the filtered samples' answers."""
    f = f or SampleFilter()
    with db.session() as s:
        if db.engine.dialect.name == "sqlite":
            # json_each unnests each answer's book list inside SQLite: no rows come back to Python.
            books = func.json_each(Sample.books).table_valued("value").alias("b")
            title = func.json_extract(books.c.value, "$.title").label("title")
            q = (select(title, func.count()).select_from(Sample).join(books, true()).where(*conditions(f))
                 .group_by(title).order_by(func.count().desc(), title).limit(limit))
            return [(t, n) for t, n in s.execute(q) if t]
        counter: Counter = Counter()
        for books in s.scalars(select(Sample.books).where(*conditions(f)).execution_options(yield_per=2000)):
            counter.update(b.get("title") for b in books or [] if b.get("title"))
        return counter.most_common(limit)

