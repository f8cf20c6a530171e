"""How long what readers told us is kept: `moodshelf purge --older-than 30d` deletes the stored reader requests
(Compare comparisons and Arena battles with their votes) made before then, in one transaction.

    age = parse_age("30d")                                   # also 12h or 2w; "90m" is refused (minutes or months?)
    removed = purge_reader_requests(db, datetime.now(timezone.utc) - age)   # {"comparisons": 3, "arena battles": 1}
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import delete

from db.engine import Database
from db.errors import UserError
from db.models import Comparison

UNITS = {"h": "hours", "d": "days", "w": "weeks"}
MAX_AGE = timedelta(days=36525)


class RetentionError(UserError, ValueError):
    """An age the purge cannot use, worded for the user."""


def parse_age(text: str) -> timedelta:
    """'30d', '12h', '2w' (hours, days, weeks; a whole number greater than 0)."""
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", (text or "").lower())
    if not m or int(m.group(1)) == 0:
        raise RetentionError(f"--older-than {text!r} is not an age: use a whole number and h, d or w, e.g. 30d, "
                             "12h or 2w.")
    try:
        age = timedelta(**{UNITS[m.group(2)]: int(m.group(1))})
    except OverflowError:
        age = timedelta.max
    if age > MAX_AGE:
        raise RetentionError(f"--older-than {text!r} is more than 100 years: nothing stored is that old.")
    return age


def purge_reader_requests(db: Database, before: datetime) -> dict[str, int]:
    """Delete the comparisons and arena battles stored before `before` (aware, UTC); counts by kind."""
    with db.begin() as s:
        compared = s.execute(delete(Comparison).where(Comparison.created_at < before,
                                                      Comparison.blind.is_(False))).rowcount
        battles = s.execute(delete(Comparison).where(Comparison.created_at < before,
                                                     Comparison.blind.is_(True))).rowcount
    return {"comparisons": compared, "arena battles": battles}
