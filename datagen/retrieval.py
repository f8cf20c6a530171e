"""Catalog candidates for a request: lexical retrieval over the whole request, language-aware and deterministic.

    retriever = Retriever.for_db(db)                     # one per database, shared; rebuilt when the catalog changes
    books = retriever.candidates(request, k=8, seed=0)   # 8 Books of the request's language, shuffled
    found = retriever.retrieve(request, k=8, seed=0)     # the same, with each book's score and rank

Query: the whole request — emotion, occupation, the desired effects and the catalog mood tags they map to
(datagen/grid.py EFFECTS), situation, focus and the reader's free text — each field weighted by how much it
says about the book wanted. Documents: each book's title, genres, mood tags (with their names in the book's
language, datagen/vocabulary.py) and description.

Ranking: scikit-learn TF-IDF (HashingVectorizer + TfidfTransformer) over character n-grams within words, cosine
similarity, a book's words and its tags matched separately and mixed. Character n-grams match Korean without a
morphological analyser ("우주의" and "우주선" share "<우주") and English inflections ("poems" / "poetry"); common
Korean particles are cut off first ("시를" -> "시"). bench/bench_retrieval.py compares it with bm25s (word tokens,
plus character bigrams for Korean) and with the old mood-tag overlap on 8 hand-checked requests: precision of
the top 5 is 0.80 here, 0.60 for bm25s and 0.25 for mood overlap (bench/results/retrieval_cpu.txt, with the
caveat that the weights were set on those same requests). At 100,000 books per language: 10–20 s of CPU to
build, 13–19 ms a query (on a loaded machine); bm25s builds English faster (4 s) but ranks worse.

What is returned: the best matches plus a few that fit less well (a quarter of k, drawn from further down the
ranking), in a seeded shuffled order — a student trained on these must choose by fit, not by position. The
same request and seed always give the same candidates. A language with fewer than k books gives what it has.
"""
from __future__ import annotations

import functools
import hashlib
import random
import re
import threading
from dataclasses import dataclass
from typing import Iterable

from sqlalchemy import func, select

from datagen.grid import EFFECTS, Request
from datagen.vocabulary import genre_words, mood_name
from db.engine import Database
from db.models import Book

# How much each request field says about the book wanted (each field's vector is normalised first).
FIELD_WEIGHTS = {"effects": 1.0, "free_text": 2.0, "situation": 0.45, "focus": 0.3, "emotion": 0.35,
                 "occupation": 0.25}
# Character n-grams inside words (a word's start and end marked). Korean syllables carry more than Latin
# letters, so shorter grams; the ranges also bound the index's memory (bench/bench_retrieval.py).
NGRAMS = {"ko": (2, 3), "en": (3, 4)}
HASH_FEATURES = 2 ** 20   # n-grams are hashed: no vocabulary to build, and collisions are rare at this size
# Korean particles glued to a word's end ("시를", "우주의") are cut off: the particle is grammar, not topic.
_JOSA = sorted(("에서는", "에게서", "으로는", "이라는", "라는", "에서", "에게", "으로", "까지", "부터", "처럼", "이나",
                "과", "와", "은", "는", "이", "가", "을", "를", "의", "에", "로", "도", "만", "요"), key=len, reverse=True)
_JOSA_RE = re.compile(r"(?<=\w)(?:" + "|".join(_JOSA) + r")(?!\w)")
_WORD_RE = re.compile(r"\w+")
_GRAM_RE = {n: re.compile(r"(?=([\w<>]{%d}))" % n) for n in range(1, 7)}
# A book's words and its tags, matched separately and mixed (see LanguageIndex).
DOCUMENT_WEIGHTS = {"text": 0.6, "tags": 0.4}
LOWER_SHARE = 0.25     # a quarter of the candidates come from further down the ranking
KEEP_TOP_SHARE = 0.5   # half of the "good" candidates are always the very best matches
RANK_DEPTH = 6         # candidates are drawn from the top RANK_DEPTH × k of the ranking


def book_document(title: str, genres: Iterable[str], moods: Iterable[str], description: str,
                  language: str) -> tuple[str, str]:
    """What a book is matched on: its words (title and description) and its tags (genres and mood tags,
    each with its words in the book's language: poetry -> "시집 시", comfort -> "위로")."""
    genre_text = " ".join(genre_words(g, language) for g in genres)
    mood_text = " ".join(dict.fromkeys(w for m in moods for w in (m, mood_name(m, language))))
    return f"{title} | {description}", f"{genre_text} | {mood_text}"


def analyze(text: str, language: str) -> list[str]:
    """The features of a text: character n-grams within words ("<시>", "<우주", "우주>"), after dropping
    English stop words (they would match everything) and Korean particles ("시를" -> "시"). Regular
    expressions do the work (no per-character Python loop), so 100,000 books index in seconds."""
    text = text.lower()
    if language == "ko":
        text = _JOSA_RE.sub("", text)  # a constant replacement: re's fast path (a template calls Python per match)
    else:
        text = _english_stop_words().sub(" ", text)
    padded = "<" + "> <".join(_WORD_RE.findall(text)) + ">"
    lo, hi = NGRAMS.get(language, (3, 4))
    grams: list[str] = []
    for n in range(lo, hi + 1):
        grams += _GRAM_RE[n].findall(padded)
    return grams


@functools.lru_cache(maxsize=1)
def _english_stop_words() -> "re.Pattern":
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return re.compile(r"\b(?:" + "|".join(sorted(ENGLISH_STOP_WORDS, key=len, reverse=True)) + r")\b")


def request_fields(request: Request) -> dict[str, str]:
    """The request as weighted query fields; an effect brings the mood tags it maps to."""
    table = EFFECTS.get(request.language, {})
    moods = [m for e in request.effects for m in table.get(e, [])]
    effects = " ".join(dict.fromkeys([*request.effects, *moods, *(mood_name(m, request.language) for m in moods)]))
    return {"effects": effects, "free_text": request.free_text, "situation": request.situation,
            "focus": request.focus, "emotion": request.emotion, "occupation": request.occupation}


def catalog_version(db: Database) -> tuple:
    """Changes whenever a book is added or updated: (max id, latest updated_at), both read from an index, so
    checking costs well under a millisecond at 100,000 books (a count(*) would scan them). A deleted book
    (nothing in moodshelf deletes books) is skipped when candidates are loaded."""
    # Two scalar subqueries: SQLite answers each max() from its index only when it is alone in its SELECT.
    with db.session() as s:
        return tuple(s.execute(select(select(func.max(Book.id)).scalar_subquery(),
                                      select(func.max(Book.updated_at)).scalar_subquery())).one())


@dataclass(frozen=True)
class ScoredBook:
    book_id: int
    score: float      # cosine similarity to the request, 0..1
    rank: int         # 0 = best match in the language


@dataclass
class Retrieved:
    """The candidates of one request: catalog Books in the order to show them, with their scores."""

    books: list[Book]
    scored: list[ScoredBook]
    available: int    # books of the language (after exclusions) there were to choose from

    @property
    def scores(self) -> dict[int, float]:
        """book id -> score relative to the best candidate (1.0 = the best fit offered)."""
        top = max((c.score for c in self.scored), default=0.0) or 1.0
        return {c.book_id: c.score / top for c in self.scored}


@dataclass
class LanguageIndex:
    """One language's books as two TF-IDF matrices (rows L2-normalised): their words (title, description)
    and their tags (genres, moods). A request is matched against both and the cosines are mixed
    (DOCUMENT_WEIGHTS), so a short tag list ("시집 poetry") is not drowned by a long description."""

    language: str
    ids: "object"                       # numpy int64 array, one per row
    titles: list[str]
    rows_by_title: dict[str, list[int]]
    parts: dict[str, tuple]             # "text" / "tags" -> (hasher, query term weights, CSC matrix of the
                                        #   distinct texts, each book's row in it)

    @classmethod
    def build(cls, language: str, rows: list[tuple[int, str, list, list, str]]) -> "LanguageIndex":
        import numpy as np
        from scipy import sparse
        from sklearn.feature_extraction.text import HashingVectorizer
        from sklearn.preprocessing import normalize

        docs = [book_document(t, g or [], m or [], d or "", language) for _, t, g, m, d in rows]
        parts = {}
        for k, name in enumerate(DOCUMENT_WEIGHTS):
            hasher = HashingVectorizer(analyzer=functools.partial(analyze, language=language), n_features=HASH_FEATURES,
                                       alternate_sign=False, norm=None, dtype=np.float32)
            # Many books share a tag list: each distinct text is analysed and stored once, and a book's row
            # points at its text's row (a few thousand tag rows for 100,000 books).
            texts = [d[k] for d in docs]
            distinct = list(dict.fromkeys(texts))
            where = {t: i for i, t in enumerate(distinct)}
            row_of = np.array([where[t] for t in texts], dtype=np.int32)
            if not texts:
                parts[name] = (hasher, np.zeros(HASH_FEATURES, dtype=np.float32), None, row_of)
                continue
            counts = hasher.transform(distinct).tocsr()
            # TF-IDF as scikit-learn's TfidfTransformer(sublinear_tf=True) computes it, with each distinct text
            # counted as often as books carry it: idf = ln((1 + n) / (1 + df)) + 1, tf = 1 + ln(count).
            copies = np.bincount(row_of, minlength=len(distinct))
            df = np.bincount(counts.indices, weights=np.repeat(copies, np.diff(counts.indptr)), minlength=HASH_FEATURES)
            idf = (np.log((1 + len(texts)) / (1 + df)) + 1).astype(np.float32)
            counts.data = (1 + np.log(counts.data)) * idf[counts.indices]
            # A query feature's weight: its idf, and 0 for features that occur nowhere in this part, so request
            # words a part cannot contain ("읽고 싶어요" against genre tags) do not dilute its similarity.
            term_weights = np.where(df > 0, idf, 0).astype(np.float32)
            parts[name] = (hasher, term_weights, sparse.csc_matrix(normalize(counts)), row_of)
        rows_by_title: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            rows_by_title.setdefault(r[1], []).append(i)
        return cls(language, np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows], rows_by_title,
                   parts)

    def __len__(self) -> int:
        return len(self.titles)

    def scores(self, fields: dict[str, str]):
        """Similarity of every book to the weighted request, 0..1 (numpy array, one per row)."""
        import numpy as np

        total = np.zeros(len(self), dtype=np.float32)
        names = [n for n, text in fields.items() if text.strip() and FIELD_WEIGHTS.get(n)]
        if not names or not len(self):
            return total
        weights = np.array([FIELD_WEIGHTS[n] for n in names], dtype=np.float32)
        for part, share in DOCUMENT_WEIGHTS.items():
            hasher, term_weights, matrix, row_of = self.parts[part]
            if matrix is None:
                continue
            # TF-IDF of each request field (sublinear tf, as the books), each field normalised and weighted,
            # summed into one query vector, normalised: a cosine. Plain numpy on a few hundred features.
            counts = hasher.transform([fields[n] for n in names]).tocsr()
            data = (1 + np.log(counts.data)) * term_weights[counts.indices]
            rows = np.repeat(np.arange(len(names)), np.diff(counts.indptr))
            norms = np.sqrt(np.bincount(rows, weights=data * data, minlength=len(names)))
            scaled = data * (weights / np.where(norms > 0, norms, 1))[rows]
            cols, where = np.unique(counts.indices, return_inverse=True)
            vals = np.bincount(where, weights=scaled, minlength=len(cols))
            if not len(cols) or not vals.any():
                continue
            vals = (vals / np.linalg.norm(vals)).astype(np.float32)
            # Only the query's features are read (column slices of a CSC matrix): an inverted index.
            total += share * np.asarray(matrix[:, cols] @ vals).ravel()[row_of]
        return total


class Retriever:
    """Candidates for requests, from one index per language built on first use and rebuilt when the
    catalog changes (catalog_version). Safe to share between threads."""

    _shared: dict[str, "Retriever"] = {}
    _shared_lock = threading.Lock()

    def __init__(self, db: Database):
        self.db = db
        self._indexes: dict[str, tuple[tuple, LanguageIndex]] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_db(cls, db: Database) -> "Retriever":
        """The retriever of a database, shared by every caller in this process (the index is built once)."""
        with cls._shared_lock:
            r = cls._shared.get(db.url)
            if r is None or r.db is not db:
                r = cls._shared[db.url] = cls(db)
            return r

    def index(self, language: str) -> LanguageIndex:
        version = catalog_version(self.db)
        with self._lock:
            cached = self._indexes.get(language)
            if cached is None or cached[0] != version:
                with self.db.session() as s:
                    rows = [tuple(r) for r in s.execute(
                        select(Book.id, Book.title, Book.genres, Book.moods, Book.description)
                        .where(Book.language == language).order_by(Book.id))]
                cached = self._indexes[language] = (version, LanguageIndex.build(language, rows))
            return cached[1]

    def rank(self, request: Request, exclude_titles: Iterable[str] = (), limit: int | None = None
             ) -> tuple[list[ScoredBook], int]:
        """The best `limit` books of the request's language (all: None), best fit first, ties by lower id;
        and how many books there were to rank (excluded titles left out)."""
        import numpy as np

        idx = self.index(request.language)
        scores = idx.scores(request_fields(request))
        rows = [r for t in set(exclude_titles) for r in idx.rows_by_title.get(t, ())]
        keep = np.ones(len(idx), dtype=bool)
        keep[rows] = False
        candidates = np.flatnonzero(keep)
        if limit is not None and limit < len(candidates):
            # Only the top of the ranking is needed: a partial sort, then an exact sort of that part.
            top = np.argpartition(-scores[candidates], limit - 1)[:limit]
            threshold = scores[candidates[top]].min()
            candidates = candidates[scores[candidates] >= threshold]  # ties at the cut stay in, sorted by id below
        order = candidates[np.lexsort((idx.ids[candidates], -scores[candidates]))][:limit]
        ranked = [ScoredBook(int(idx.ids[i]), float(scores[i]), r) for r, i in enumerate(order)]
        return ranked, int(keep.sum())

    def retrieve(self, request: Request, k: int = 8, seed: int = 0, exclude_titles: Iterable[str] = ()) -> Retrieved:
        """k candidates (fewer when the language has fewer books): the best matches and a few further down,
        shuffled. `exclude_titles`: titles that may not be offered (a job's per-title cap)."""
        if k <= 0:
            raise ValueError(f"k must be > 0 (got {k})")
        ranked, available = self.rank(request, exclude_titles, limit=RANK_DEPTH * k)
        picked = select_candidates(ranked, k, _rng(request, seed))
        with self.db.session() as s:
            by_id = {b.id: b for b in s.scalars(select(Book).where(Book.id.in_([c.book_id for c in picked])))}
            s.expunge_all()
        picked = [c for c in picked if c.book_id in by_id]  # a book deleted since the index was built
        return Retrieved([by_id[c.book_id] for c in picked], picked, available)

    def candidates(self, request: Request, k: int = 8, seed: int = 0, exclude_titles: Iterable[str] = ()) -> list[Book]:
        return self.retrieve(request, k, seed, exclude_titles).books


def select_candidates(ranked: list[ScoredBook], k: int, rng: random.Random) -> list[ScoredBook]:
    """From a ranking: the top matches (half of them always the very best, the rest drawn from just below),
    a quarter of k from further down (fit less well), all shuffled. Fewer than k books: all of them."""
    if len(ranked) <= k:
        picked = list(ranked)
    else:
        n_lower = max(1, round(k * LOWER_SHARE)) if k >= 3 else 0
        n_top = k - n_lower
        n_fixed = max(1, round(n_top * KEEP_TOP_SHARE))
        pool_end = min(len(ranked), n_top + (n_top + 1) // 2)      # the good ones are drawn from here
        picked = ranked[:n_fixed] + rng.sample(ranked[n_fixed:pool_end], n_top - n_fixed)
        lower = ranked[pool_end:pool_end + 4 * k] or ranked[n_top:]
        picked += rng.sample(lower, min(n_lower, len(lower)))
        if len(picked) < k:  # a short ranking: top up from what is left, best first
            chosen = {c.book_id for c in picked}
            picked += [c for c in ranked if c.book_id not in chosen][:k - len(picked)]
    rng.shuffle(picked)
    return picked


def _rng(request: Request, seed: int) -> random.Random:
    # A digest of the request, not hash(): str hashes change from one Python process to the next.
    key = "\x1f".join([request.language, request.emotion, request.occupation, ",".join(request.effects),
                       request.situation, request.focus, request.free_text, str(seed)])
    return random.Random(int(hashlib.sha256(key.encode()).hexdigest()[:16], 16))

