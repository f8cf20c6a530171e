"""Match recommended (title, author) pairs against the catalog — normalised, fuzzy and Korean-aware.

Korean bibliographic strings vary in ways that exact matching misses: spacing ("달러구트 꿈 백화점" vs
"달러구트꿈백화점"), subtitles after ':' , role suffixes ("한강 지음", "방진이 옮김", "저", "역").

    index = CatalogIndex([(1, "채식주의자", "한강"), (2, "Atomic Habits", "James Clear")])
    index.match("채식 주의자", "한강 지음").book_id   # 1

Fuzzy title lookups stay fast at 100,000 books: rapidfuzz (C++) finds the few titles that could reach the
similarity threshold, and only those are scored with difflib as before (bench/bench_constrained.py).
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Iterable

from rapidfuzz import fuzz, process

_ROLE_SUFFIX = re.compile(r"\s*(지음|글|그림|옮김|엮음|저|역|편저|편|著|訳)\s*$")
_PUNCT = re.compile(r"[\W_]+", re.UNICODE)
_BRACKETED = re.compile(r"\([^)]*\)|\[[^\]]*\]|<[^>]*>|《[^》]*》|「[^」]*」")
_NUMBER = re.compile(r"\d+")


def normalize_title(title: str) -> str:
    t = unicodedata.normalize("NFKC", title).lower()
    t = t.strip().strip("\"'“”‘’《》「」<>")
    # Subtitles: "제대로 연습하는 법 : 어학부터 ..." and "Deep Work: Rules for ..." match their main title.
    t = re.split(r"\s[:\-–—]\s|:", t, maxsplit=1)[0]
    t = _BRACKETED.sub(" ", t)
    return _PUNCT.sub("", t)


def normalize_author(author: str) -> str:
    a = unicodedata.normalize("NFKC", author).lower()
    # Keep the first credited person: "아투로 E. 허낸데즈 지음 ; 방진이 옮김" -> "아투로 E. 허낸데즈".
    a = re.split(r"[;,/&]| and | 외 |\s외$", a, maxsplit=1)[0]
    a = _ROLE_SUFFIX.sub("", a.strip())
    a = _BRACKETED.sub(" ", a)
    return _PUNCT.sub("", a)


def book_key(title: str, author: str) -> str:
    return f"{normalize_title(title)}|{normalize_author(author)}"


@dataclass(frozen=True)
class CatalogEntry:
    book_id: int
    title: str
    author: str
    title_norm: str
    author_norm: str


@dataclass(frozen=True)
class Match:
    title: str
    author: str
    book_id: int | None
    score: float

    @property
    def grounded(self) -> bool:
        return self.book_id is not None


class CatalogIndex:
    """In-memory index of the catalog for grounding. Build once per job or app; lookups are cheap."""

    def __init__(self, entries: Iterable[tuple[int, str, str]]):
        self.entries = [
            CatalogEntry(i, t, a, normalize_title(t), normalize_author(a)) for i, t, a in entries
        ]
        self.by_key = {(e.title_norm, e.author_norm): e for e in self.entries}
        self.by_title: dict[str, list[CatalogEntry]] = {}
        for e in self.entries:
            self.by_title.setdefault(e.title_norm, []).append(e)
        self._title_norms = [e.title_norm for e in self.entries]

    def similar_titles(self, title_norm: str, min_ratio: float) -> list[tuple[CatalogEntry, float]]:
        """(entry, difflib ratio) for every normalised title with ratio >= min_ratio to `title_norm`, in
        catalog order.

        difflib's ratio is 2·M/(len a + len b) with M matched characters that form a common subsequence, so it
        never exceeds rapidfuzz's Indel ratio 2·LCS/(len a + len b): rapidfuzz's cutoff drops only titles that
        could not pass, and the few survivors get exactly the score the old loop over every entry gave them.
        """
        if not title_norm:  # difflib: "" vs "" is 1.0, "" vs anything else 0.0
            return [(e, 1.0) for e in self.by_title.get("", [])]
        # A hair under the cutoff, so float rounding never drops a title the old loop kept.
        hits = process.extract(title_norm, self._title_norms, scorer=fuzz.ratio, processor=None,
                               score_cutoff=max(0.0, min_ratio * 100 - 1e-6), limit=None)
        scored = ((self.entries[i], SequenceMatcher(None, title_norm, self._title_norms[i]).ratio())
                  for i in sorted(i for _, _, i in hits))
        return [(e, r) for e, r in scored if r >= min_ratio]

    def match(self, title: str, author: str, *, threshold: float = 0.85) -> Match:
        tn, an = normalize_title(title), normalize_author(author)
        exact = self.by_key.get((tn, an))
        if exact:
            return Match(title, author, exact.book_id, 1.0)
        best, best_score = None, 0.0
        for e in self.by_title.get(tn, []):  # same title, author written differently
            s = 0.5 + 0.5 * _author_similarity(an, e.author_norm)
            if s > best_score:
                best, best_score = e, s
        if best_score < threshold:
            for e, ts in self.similar_titles(tn, 0.8):
                if not same_numbers(tn, e.title_norm):  # "불편한 편의점 2" is the sequel, not a typo of volume 1
                    continue
                s = 0.6 * ts + 0.4 * _author_similarity(an, e.author_norm)
                if s > best_score:
                    best, best_score = e, s
        if best is not None and best_score >= threshold:
            return Match(title, author, best.book_id, round(best_score, 3))
        return Match(title, author, None, round(best_score, 3))


def same_numbers(a: str, b: str) -> bool:
    """Whether two titles carry the same numbers: a volume, a sequel or a year makes a different book."""
    return _NUMBER.findall(a) == _NUMBER.findall(b)


def _author_similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    if a in b or b in a:
        return 1.0
    return SequenceMatcher(None, a, b).ratio()

