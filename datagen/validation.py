"""Validate a generated answer before it becomes a sample: parse the numbered list, check the format,
length, language and repeats, and ground every book against the catalog.

    flags = validate_output(text, language="ko", n_books=3, index=catalog_index(db)).flags

A sample with flags is stored anyway (status needs_review or rejected) with its raw output: nothing is
thrown away.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field

from datagen.grounding import CatalogIndex, normalize_title
from datagen.prompts import LABELS

MIN_OUTPUT_CHARS = 60
MAX_OUTPUT_CHARS = 4000
_ITEM = re.compile(r"^\s*(\d+)[.)]\s+(.+?)\s*$")
_FIELD = re.compile(r"^\s*[-*•]\s*([^:：]+)[:：]\s*(.+?)\s*$")


@dataclass
class BookItem:
    title: str
    author: str
    reason: str = ""
    effect: str = ""
    book_id: int | None = None

    def as_dict(self) -> dict:
        return {"title": self.title, "author": self.author, "reason": self.reason, "effect": self.effect,
                "book_id": self.book_id}


@dataclass
class Validation:
    items: list[BookItem] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def grounded_count(self) -> int:
        return sum(1 for i in self.items if i.book_id is not None)

    @property
    def format_ok(self) -> bool:
        return not any(f.startswith(("format", "length", "language", "repeated")) for f in self.flags)


_QUOTED = re.compile(r'^["“《「\'](.+?)["”》」\']\s*(?:(?:by|-|–|—)\s*([^-–—:]+?))?\s*(?:[-–—:]\s+.*)?$')


def _split_title_author(head: str) -> tuple[str, str]:
    # '"Title" by Author - blurb' (what untrained models write)
    m = _QUOTED.match(head)
    if m:
        return m.group(1).strip(), (m.group(2) or "").strip()
    # "Title - Author" (the seed format) — the last " - " separates them, because titles may contain dashes.
    for sep in (" - ", " – ", " — "):
        if sep in head:
            t, a = head.rsplit(sep, 1)
            return t.strip().strip("\"'“”《》"), a.strip()
    m = re.match(r"^(.+?)\s+(?:by|저자[:：]?)\s+(.+)$", head)
    if m:
        return m.group(1).strip().strip("\"'“”《》"), m.group(2).strip()
    return head.strip().strip("\"'“”《》"), ""


def parse_books(text: str, language: str) -> list[BookItem]:
    labels = LABELS.get(language, LABELS["en"])
    reason_keys = {labels["reason"].lower(), "추천 이유", "why this book", "reason", "why"}
    effect_keys = {labels["effect_line"].lower(), "이 책이 도움이 될 수 있는 이유", "감정적 효과", "how it may help",
                   "emotional effect", "effect"}
    items: list[BookItem] = []
    for line in text.splitlines():
        m = _ITEM.match(line)
        # Only "N. Title - Author" lines are books: a numbered field line ("2. Reason: ...", what a looping
        # answer writes) is a field, and a line without two letters ("3. �", "4. ...") is nothing.
        if m and not _FIELD.match(line) and not _numbered_field(m.group(2), reason_keys | effect_keys) \
                and sum(c.isalpha() for c in m.group(2)) >= 2:
            title, author = _split_title_author(m.group(2))
            items.append(BookItem(title=title, author=author))
            continue
        if m and _numbered_field(m.group(2), reason_keys | effect_keys):
            line = "- " + m.group(2)
        f = _FIELD.match(line)
        if f and items:
            key, value = f.group(1).strip().lower(), f.group(2).strip()
            if key in reason_keys:
                items[-1].reason = value
            elif key in effect_keys:
                items[-1].effect = value
    return items


def _numbered_field(head: str, keys: set[str]) -> bool:
    label, sep, _ = head.replace("：", ":").partition(":")
    return bool(sep) and label.strip().strip("*_ ").lower() in keys


def hangul_ratio(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return 0.0
    return sum(1 for c in letters if unicodedata.name(c, "").startswith("HANGUL")) / len(letters)


def validate_output(text: str, *, language: str, n_books: int, index: CatalogIndex | None) -> Validation:
    v = Validation(items=parse_books(text, language))
    if len(text) < MIN_OUTPUT_CHARS:
        v.flags.append(f"length:too_short({len(text)}<{MIN_OUTPUT_CHARS})")
    if len(text) > MAX_OUTPUT_CHARS:
        v.flags.append(f"length:too_long({len(text)}>{MAX_OUTPUT_CHARS})")
    if len(v.items) != n_books:
        v.flags.append(f"format:expected_{n_books}_books_got_{len(v.items)}")
    for i, item in enumerate(v.items, 1):
        if not item.author:
            v.flags.append(f"format:book_{i}_no_author")
        if not item.reason:
            v.flags.append(f"format:book_{i}_no_reason")
        if not item.effect:
            v.flags.append(f"format:book_{i}_no_effect")
    ratio = hangul_ratio(text)
    if language == "ko" and ratio < 0.5:
        v.flags.append(f"language:not_korean({ratio:.2f})")
    if language == "en" and ratio > 0.1:
        v.flags.append(f"language:not_english({ratio:.2f})")
    titles = [normalize_title(i.title) for i in v.items]
    if len(set(titles)) != len(titles):
        v.flags.append("repeated:title_within_answer")
    if index is not None:
        for item in v.items:
            m = index.match(item.title, item.author)
            item.book_id = m.book_id
            if m.book_id is None:
                v.flags.append(f"ungrounded:{item.title}")
    return v


def content_hash(instruction: str, input_text: str, output: str) -> str:
    norm = "\x1f".join(" ".join(unicodedata.normalize("NFKC", s).split()) for s in (instruction, input_text, output))
    return hashlib.sha256(norm.encode()).hexdigest()


def status_for(v: Validation, *, auto_approve: bool = False) -> str:
    """Format problems reject; ungrounded books ask a curator to look; clean samples wait for a curator
    unless the job approves them itself (the demo does)."""
    if not v.format_ok:
        return "rejected"
    if v.flags:
        return "needs_review"
    return "approved" if auto_approve else "pending"
