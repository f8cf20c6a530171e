"""The one base class of errors meant for the person at the keyboard.

    raise CatalogError("No catalog loaded: moodshelf catalog import FILE.csv")   # class CatalogError(UserError, ValueError)

Every package's user-facing errors derive from UserError, so the CLI (app/errors.py) prints any of them as one
line without a traceback (exit code 2) and the app shows it as a message; anything else is a bug and keeps its
traceback. It lives in db/, the lowest floor, because every package raises such errors. The message says what
happened and what to do, and never shows a key.
"""
from __future__ import annotations


class UserError(Exception):
    """Something the user can fix, worded for them."""
