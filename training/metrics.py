"""Evaluation metrics for recommendation answers: pure functions, no database, no model.

    score = score_answer(text, reference, language="en", n_books=3, index=catalog_index(db),
                         book_moods={book_id: ["calm", ...]}, requested_moods=["calm"], latency_s=1.2)
    summary = aggregate([score, ...])      # the figures stored on an EvalRun and shown in the Evaluate tab

What each figure means (rates are in [0, 1]; higher is better unless said otherwise):
- format_compliance  share of answers with exactly N numbered books, each with an author, a reason and an effect
- grounding_rate     share of recommended books found in the catalog (title and author)
- hallucination_rate share of recommended books whose *title* is in no catalog entry (invented, as far as we know);
                     lower is better. A catalog title with the wrong author counts as misattributed, so
                     grounding + hallucination + misattribution = 1 over the books of a backend.
- mood_fit           share of grounded books whose catalog mood tags include one of the requested moods
- distinct_1/2       unique uni/bigrams over all n-grams of every answer of a backend (Li et al. 2016)
- unique_title_share distinct titles over all recommended titles: 1.0 = never recommends the same book twice
- rouge_l            LCS-based ROUGE-L F1 against the reference answer (Lin 2004), averaged over answers
- latency            mean, median and 95th percentile seconds per answer

Tokenization (ROUGE-L, distinct-n): NFKC + lower case, then Latin/digit words as whole tokens and Hangul
*syllables* as single tokens. Korean words carry particles ("책을", "책이"), so word tokens almost never match
across two answers about the same book; syllables do, and this is the usual fallback when no morphological
analyser is installed. It needs no extra package and treats mixed Korean/English text consistently.
"""
from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

from datagen.grounding import CatalogIndex, normalize_title
from datagen.validation import parse_books

_TOKEN = re.compile(r"[\uac00-\ud7a3]|[^\W\uac00-\ud7a3_]+")
TITLE_SIMILARITY = 0.9  # a near-identical title (typo, spacing) is a known title, not an invented one


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).lower())


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence, O(len(a)·len(b)) time and O(len(b)) memory."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b, 1):
            cur.append(prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1]))
        prev = cur
    return prev[-1]


@dataclass(frozen=True)
class RougeL:
    precision: float
    recall: float
    f1: float


def rouge_l(candidate: str, reference: str) -> RougeL:
    c, r = tokenize(candidate), tokenize(reference)
    lcs = lcs_length(c, r)
    if lcs == 0:
        return RougeL(0.0, 0.0, 0.0)
    p, rec = lcs / len(c), lcs / len(r)
    return RougeL(p, rec, 2 * p * rec / (p + rec))


def distinct_n(texts: Iterable[str], n: int) -> float | None:
    """Unique n-grams / all n-grams over the texts; None when there is no n-gram at all."""
    grams: list[tuple[str, ...]] = []
    for t in texts:
        toks = tokenize(t)
        grams += [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]
    return len(set(grams)) / len(grams) if grams else None


def title_known(index: CatalogIndex, title: str) -> bool:
    """Is this title in the catalog under any author (exact after normalisation, or nearly identical)?"""
    tn = normalize_title(title)
    if not tn:
        return False
    if tn in index.by_title:
        return True
    return bool(index.similar_titles(tn, TITLE_SIMILARITY))


@dataclass
class AnswerScore:
    """The metrics of one answer. Counts rather than rates, so aggregates can be micro-averaged over books."""

    n_books: int = 0
    format_ok: bool = False
    grounded: int = 0
    hallucinated: int = 0
    misattributed: int = 0
    mood_checked: int = 0          # grounded books whose moods could be compared with the request
    mood_hits: int = 0
    rouge_l: float = 0.0
    latency_s: float | None = None
    titles: list[str] = field(default_factory=list)  # normalised, for the unique-title share
    judge_score: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AnswerScore":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def score_answer(text: str, reference: str, *, language: str, n_books: int, index: CatalogIndex,
                 book_moods: dict[int, list[str]], requested_moods: Iterable[str],
                 latency_s: float | None = None) -> AnswerScore:
    items = parse_books(text, language)
    wanted = set(requested_moods)
    s = AnswerScore(n_books=len(items), latency_s=latency_s, rouge_l=rouge_l(text, reference).f1,
                    titles=[normalize_title(i.title) for i in items])
    s.format_ok = len(items) == n_books and all(i.author and i.reason and i.effect for i in items)
    for item in items:
        m = index.match(item.title, item.author)
        if m.book_id is not None:
            s.grounded += 1
            moods = set(book_moods.get(m.book_id, ()))
            if wanted and moods:  # a book without tags, or a request without moods, says nothing about fit
                s.mood_checked += 1
                s.mood_hits += bool(moods & wanted)
        elif title_known(index, item.title):
            s.misattributed += 1
        else:
            s.hallucinated += 1
    return s


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (numpy's default), q in [0, 100]."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


# The aggregate figures, in the order the tab and the CLI show them; True = higher is better.
METRICS: dict[str, bool] = {
    "format_compliance": True, "grounding_rate": True, "hallucination_rate": False, "mood_fit": True,
    "distinct_1": True, "distinct_2": True, "unique_title_share": True, "rouge_l": True,
    "judge_score": True, "latency_mean_s": False, "latency_p50_s": False, "latency_p95_s": False,
}


def aggregate(scores: Sequence[AnswerScore], outputs: Sequence[str] = ()) -> dict[str, float | int | None]:
    """Backend-level figures from per-answer scores (and the answers' text, for distinct-n)."""
    books = sum(s.n_books for s in scores)
    titles = [t for s in scores for t in s.titles if t]
    latencies = [s.latency_s for s in scores if s.latency_s is not None]
    judged = [s.judge_score for s in scores if s.judge_score is not None]
    return {
        "answers": len(scores),
        "books": books,
        "format_compliance": _ratio(sum(s.format_ok for s in scores), len(scores)),
        "grounding_rate": _ratio(sum(s.grounded for s in scores), books),
        "hallucination_rate": _ratio(sum(s.hallucinated for s in scores), books),
        "misattribution_rate": _ratio(sum(s.misattributed for s in scores), books),
        "mood_fit": _ratio(sum(s.mood_hits for s in scores), sum(s.mood_checked for s in scores)),
        "distinct_1": distinct_n(outputs, 1),
        "distinct_2": distinct_n(outputs, 2),
        "unique_title_share": _ratio(len(set(titles)), len(titles)),
        "rouge_l": _ratio(sum(s.rouge_l for s in scores), len(scores)),
        "judge_score": _ratio(sum(judged), len(judged)),
        "judged": len(judged),
        "latency_mean_s": _ratio(sum(latencies), len(latencies)),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
    }
