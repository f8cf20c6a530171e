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

Request sets (no reference answer; training/request_sets.py) add, per answer and aggregated:
- repeated_books     books named again within the same answer (same catalog book, or same title when not
                     grounded); lower is better
- right_language     share of answers in the requested language: for ko, at least half of the letters are
                     Hangul (titles and names may be Latin); for en, at least 90% are ASCII letters
- coverage           distinct grounded books over all answers / books in the catalog of the language(s)
- unique_titles      distinct titles over all answers (a count)
- ttft_p50_s         median time to the first token; tokens_per_s: median decode speed of one answer, tokens
                     after the first / seconds after the first; throughput_tokens_per_s: every answer's tokens /
                     the evaluation's wall time (what concurrent, batched generation raises)

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
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
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


def in_language(text: str, language: str) -> bool | None:
    """Is the answer written in the requested language? None for a language this cannot tell."""
    letters = [c for c in text if c.isalpha()]
    if language not in ("ko", "en"):
        return None
    if not letters:
        return False
    if language == "ko":
        # Half, not all: a Korean answer may name a book or an author in Latin letters.
        return sum(1 for c in letters if _HANGUL.match(c)) / len(letters) >= 0.5
    return sum(1 for c in letters if c.isascii()) / len(letters) >= 0.9


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
    rouge_l: float | None = 0.0    # None: no reference answer (request sets)
    latency_s: float | None = None
    titles: list[str] = field(default_factory=list)  # normalised, for the unique-title share
    judge_score: float | None = None
    repeated: int = 0              # books named again within this answer
    book_ids: list[int] = field(default_factory=list)  # grounded catalog ids, in order (coverage)
    right_language: bool | None = None
    ttft_s: float | None = None
    tokens: int | None = None
    tokens_per_s: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "AnswerScore":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def decode_speed(tokens: int | None, ttft_s: float | None, total_s: float | None) -> float | None:
    """Tokens after the first / seconds after the first: how fast one answer streams once it has begun."""
    if not tokens or tokens < 2 or ttft_s is None or total_s is None or total_s <= ttft_s:
        return None
    return (tokens - 1) / (total_s - ttft_s)


def score_answer(text: str, reference: str | None, *, language: str, n_books: int, index: CatalogIndex,
                 book_moods: dict[int, list[str]], requested_moods: Iterable[str],
                 latency_s: float | None = None, ttft_s: float | None = None,
                 tokens: int | None = None) -> AnswerScore:
    """The scores of one answer; reference None (a request set) leaves ROUGE-L undefined."""
    items = parse_books(text, language)
    wanted = set(requested_moods)
    s = AnswerScore(n_books=len(items), latency_s=latency_s,
                    rouge_l=rouge_l(text, reference).f1 if reference is not None else None,
                    titles=[normalize_title(i.title) for i in items], right_language=in_language(text, language),
                    ttft_s=ttft_s, tokens=tokens, tokens_per_s=decode_speed(tokens, ttft_s, latency_s))
    s.format_ok = len(items) == n_books and all(i.author and i.reason and i.effect for i in items)
    named: set = set()
    for item, title in zip(items, s.titles):
        m = index.match(item.title, item.author)
        key = m.book_id if m.book_id is not None else title
        s.repeated += key in named
        named.add(key)
        if m.book_id is not None:
            s.grounded += 1
            s.book_ids.append(m.book_id)
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


# The request-set figures (training/evals.request_set_table), in the table's order; True = higher is better.
REQUEST_METRICS: dict[str, bool] = {
    "format_compliance": True, "grounding_rate": True, "hallucination_rate": False, "repeated_books": False,
    "mood_fit": True, "coverage": True, "unique_titles": True, "right_language": True, "ttft_p50_s": False,
    "tokens_per_s": True,
}


def aggregate(scores: Sequence[AnswerScore], outputs: Sequence[str] = (), *, catalog_size: int | None = None,
              wall_s: float | None = None) -> dict[str, float | int | None]:
    """Backend-level figures from per-answer scores (and the answers' text, for distinct-n). catalog_size: books
    the answers could have named (coverage); wall_s: the evaluation's wall time (throughput)."""
    books = sum(s.n_books for s in scores)
    titles = [t for s in scores for t in s.titles if t]
    latencies = [s.latency_s for s in scores if s.latency_s is not None]
    judged = [s.judge_score for s in scores if s.judge_score is not None]
    rouges = [s.rouge_l for s in scores if s.rouge_l is not None]
    languages = [s.right_language for s in scores if s.right_language is not None]
    ttfts = [s.ttft_s for s in scores if s.ttft_s is not None]
    speeds = [s.tokens_per_s for s in scores if s.tokens_per_s is not None]
    tokens = sum(s.tokens or 0 for s in scores)
    distinct_books = {b for s in scores for b in s.book_ids}
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
        "rouge_l": _ratio(sum(rouges), len(rouges)),
        "judge_score": _ratio(sum(judged), len(judged)),
        "judged": len(judged),
        "latency_mean_s": _ratio(sum(latencies), len(latencies)),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "grounded_books": sum(s.grounded for s in scores),
        "hallucinated_books": sum(s.hallucinated for s in scores),
        "repeated_books": sum(s.repeated for s in scores),
        "answers_with_repeats": sum(1 for s in scores if s.repeated),
        "unique_titles": len(set(titles)),
        "coverage": _ratio(len(distinct_books), catalog_size or 0),
        "right_language": _ratio(sum(languages), len(languages)),
        "ttft_p50_s": percentile(ttfts, 50),
        "tokens_per_s": percentile(speeds, 50),
        "output_tokens": tokens,
        "throughput_tokens_per_s": _ratio(tokens, wall_s or 0) if tokens else None,
    }
