"""Readers' thumbs up / down on Recommend answers, stored per model and counted for Curate.

    record_feedback(db, "run:3 (demo)", "up", "en", ["The Midnight Library"])
    feedback_by_model(db)        # [("run:3 (demo)", 4, 1), ...]: model, 👍, 👎
"""
from __future__ import annotations

from sqlalchemy import case, func, select

from db.engine import Database
from db.errors import UserError
from db.models import ReaderFeedback


def record_feedback(db: Database, backend: str, vote: str, language: str, titles: list[str]) -> None:
    if vote not in ("up", "down"):
        raise UserError(f"A vote is up or down (got {vote!r}).")
    with db.begin() as s:
        s.add(ReaderFeedback(backend=backend, vote=vote, language=language, titles=list(titles)))


def feedback_by_model(db: Database) -> list[tuple[str, int, int]]:
    """(model, thumbs up, thumbs down), most voted first."""
    up = func.sum(case((ReaderFeedback.vote == "up", 1), else_=0))
    down = func.sum(case((ReaderFeedback.vote == "down", 1), else_=0))
    with db.session() as s:
        rows = s.execute(select(ReaderFeedback.backend, up, down).group_by(ReaderFeedback.backend)
                         .order_by(func.count().desc())).all()
    return [(b, int(u or 0), int(d or 0)) for b, u, d in rows]
