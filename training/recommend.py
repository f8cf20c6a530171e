"""One recommendation pipeline for the Recommend, Compare and Arena tabs, the `moodshelf recommend` CLI and
evaluation: a request in, a streamed answer with grounded book cards out.

    rec = Recommender(db)                                          # the CLI; the app passes its own backends
    request = RecommendRequest.from_fields("en", emotion="anxious", effects=["comfort"], free_text="short poems")
    prepared = rec.prepare(request, "run:3")                      # may raise RecommendError / BackendError
    for item in rec.stream(prepared):
        if isinstance(item, str): print(item, end="")             # text deltas as they come
        else: result = item                                         # then one Recommendation

request fields -> validation -> retrieval (datagen/retrieval.py) -> the prompt in the shape the model was
trained on -> generation (training/backends.py) -> the answer parsed into books (datagen/validation.parse_books)
and grounded against the catalog (datagen/grounding.py) -> Recommendation: text, books with their catalog
Book or None, the candidates offered, usage, notices.

The request and its prompt shapes (plain, candidates, teacher) are in training/reader_request.py.
Local backends decode under a catalog constraint by default (`constrained=True`; training/constrained.py): while
the model writes a list item's title and author it can only write a catalog entry — one of the request's
candidates for runs trained with them, else any book of the request's language — each book once, N books. The
title trie of a language is built once per model tokenizer and catalog version; a request's candidates restrict
it. API backends are never constrained (their decoding is not ours); `constrained=False` lets evaluation measure
the difference.
"""
from __future__ import annotations

import inspect
import logging
import random
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from sqlalchemy import select

from datagen.catalog import catalog_index
from datagen.prompts import input_for, instruction_for
from datagen.retrieval import Retriever, catalog_version
from datagen.validation import parse_books
from db.engine import Database
from db.models import Book, TrainingRun
from training.backends import Backend, BackendError, BackendSpec, OfflineTeacherBackend, Usage, make_backend
from training.reader_request import DEFAULT_K, RecommendError, RecommendRequest, messages_for, shape_for

log = logging.getLogger(__name__)


# -- results ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CatalogConstraint:
    """What catalog-constrained decoding may write in one answer: the books (None: every book of the
    language's catalog) and how many."""

    language: str
    book_ids: tuple[int, ...] | None
    n_books: int


@dataclass
class RecommendedBook:
    title: str
    author: str
    reason: str
    effect: str
    book: Book | None        # the catalog book it was grounded to, None: not in the catalog
    offered: bool = False    # among the candidates the model was given

    @property
    def grounded(self) -> bool:
        return self.book is not None


@dataclass
class Prepared:
    """A request made ready for one backend: its prompt, candidates and the backend that will answer."""

    request: RecommendRequest
    label: str
    shape: str
    messages: list[dict]
    candidates: list[Book]
    n_books: int
    backend: Backend | None
    notices: list[str] = field(default_factory=list)
    constraint: CatalogConstraint | None = None
    row: object | None = None    # the answer's RowConstraint while it is decoded under one

    @property
    def constrained(self) -> bool:
        return self.row is not None

    @property
    def prompt(self) -> str:
        """The user turn (what a comparison stores)."""
        return next((m["content"] for m in self.messages if m["role"] == "user"), "")


@dataclass
class Recommendation:
    label: str
    shape: str
    text: str
    books: list[RecommendedBook]
    candidates: list[Book]
    usage: Usage
    n_books: int
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    constrained: bool = False   # decoded under the catalog constraint

    @property
    def grounded(self) -> int:
        return sum(1 for b in self.books if b.grounded)


@dataclass(frozen=True)
class ColumnUpdate:
    """One step of several answers streamed side by side: a text delta of a column, or its final result."""

    column: int
    delta: str = ""
    result: Recommendation | None = None
    tick: bool = False    # nothing arrived for tick_s (column -1): time to say how long columns have waited


# -- the pipeline -----------------------------------------------------------------------------------------------
class Recommender:
    """The pipeline, shared by every caller of one process (thread-safe; indexes built once per catalog).

    backend_factory(label) makes the chat backend of a label; the app passes its own (which checks keys and
    which backends a public page may use); the default makes them here, loading local models on first use.
    """

    def __init__(self, db: Database, *, backend_factory: Callable[[str], Backend] | None = None,
                 base_model: str | None = None, k: int = DEFAULT_K, seed: int = 0):
        self.db, self.k, self.seed = db, k, seed
        self.base_model = base_model
        self.backend_factory = backend_factory or self._make_backend
        self.retriever = Retriever.for_db(db)
        self._local: dict[str, object] = {}
        self._index: tuple[tuple, object] | None = None
        self._tries: dict[tuple[int, str], tuple[tuple, object]] = {}
        self._model_lock = threading.Lock()   # loading a model takes seconds: grounding must not wait for it
        self._index_lock = threading.Lock()
        self._trie_lock = threading.Lock()

    # -- backends ------------------------------------------------------------------------------------------------
    def local_model(self, base_model: str):
        with self._model_lock:
            if base_model not in self._local:
                from training.inference import LocalModel

                self._local[base_model] = LocalModel.load(base_model)
            return self._local[base_model]

    def _make_backend(self, label: str) -> Backend:
        """Default backends: a run's adapter on its own base model; the base model is `base_model`
        (default: the demo's)."""
        from training.config import DEFAULT_BASE_MODEL

        spec = BackendSpec.from_label(label)
        if not spec.is_local:
            return make_backend(spec)
        base = self.base_model or DEFAULT_BASE_MODEL
        if spec.adapter_run is not None:
            with self.db.session() as s:
                run = s.get(TrainingRun, spec.adapter_run)
            if run is None:
                raise BackendError(f"Run #{spec.adapter_run} does not exist (see `moodshelf runs`).")
            base = run.base_model
        return make_backend(spec, local_model=self.local_model(base), db=self.db)

    # -- steps ---------------------------------------------------------------------------------------------------
    def prepare(self, request: RecommendRequest, label: str, *, constrained: bool = True,
                temperature: float | None = None) -> Prepared:
        """Everything before generation: the prompt shape of the backend, retrieval when the shape uses
        candidates, the prompt, the backend, and for local backends (unless constrained=False) the catalog
        constraint of this answer. `temperature` > 0 samples the answer (None or 0: the backend's default,
        greedy for a local model). Raises RecommendError or BackendError (one line each)."""
        spec = BackendSpec.from_label(label)
        shape = shape_for(self.db, spec)
        grid_request = request.grid_request()
        candidates: list[Book] = []
        notices: list[str] = []
        n_books = request.n_books
        if shape != "plain":
            found = self.retriever.retrieve(grid_request, k=max(self.k, n_books), seed=self.seed)
            candidates = found.books
            if not candidates:
                raise RecommendError(_no_books(request.language))
            if len(candidates) < n_books:
                n_books = len(candidates)
                notices.append(_few_books(request.language, len(candidates)))
        messages = messages_for(shape, instruction_for(grid_request, n_books), input_for(grid_request), candidates,
                                request.language, n_books)
        backend = self.backend_factory(label)
        backend.temperature = temperature if temperature else None
        if isinstance(backend, OfflineTeacherBackend):  # it answers the request itself, as it wrote samples
            from datagen.providers.base import TeacherTask

            # Sampling, for the template teacher, is a fresh seed for its tie-breaking jitter.
            seed = random.randrange(2**31) if temperature else self.seed
            backend.task = TeacherTask(index=0, request=grid_request, candidates=candidates, n_books=n_books,
                                       instruction=instruction_for(grid_request, n_books),
                                       input_text=input_for(grid_request), seed=seed, messages=messages)
        model = getattr(backend, "local_model", None)
        if spec.is_local and model is not None:
            from training.presets import language_notice

            if note := language_notice(getattr(model, "base_model", ""), request.language):
                notices.append(note)
        constraint = row = None
        if constrained and spec.is_local:
            constraint = CatalogConstraint(request.language, tuple(b.id for b in candidates) or None, n_books)
            row = self._constraint_row(backend, constraint, notices)
        return Prepared(request, label, shape, messages, candidates, n_books, backend, notices, constraint, row)

    def _constraint_row(self, backend: Backend, constraint: CatalogConstraint, notices: list[str]):
        """The RowConstraint of one answer, handed to the local backend (one per answer: it keeps state)."""
        from training.base_model import stop_token_ids
        from training.constrained import RowConstraint

        model = getattr(backend, "local_model", None)
        if model is None or "row_processor" not in inspect.signature(model.stream).parameters:
            raise RecommendError("Catalog-constrained decoding is not available for this backend: turn it off.")
        full = self.title_trie(model.tokenizer, constraint.language)
        trie = full.restrict(constraint.book_ids) if constraint.book_ids is not None else full
        if trie.book_count == 0:
            from datagen.catalog import count_books

            if full.book_count == 0 and count_books(self.db).get(constraint.language, 0) > 0:
                # The books are there; this tokenizer can write none of them (each was logged when skipped).
                raise RecommendError(_untokenizable(constraint.language))
            raise RecommendError(_no_books(constraint.language))
        if trie.book_count < constraint.n_books:
            # Every book the model could name is in the trie; with fewer than N the list is shorter, never a hang.
            notices.append(_few_books(constraint.language, trie.book_count))
        row = RowConstraint(trie, model.tokenizer, n_books=constraint.n_books,
                            eos_token_id=stop_token_ids(model.tokenizer))
        backend.constraint = row
        return row

    def title_trie(self, tokenizer, language: str):
        """The title trie of a language's catalog for one tokenizer, rebuilt when the catalog changes (seconds
        at 100,000 books, bench/bench_constrained.py; built under a lock so concurrent requests build it once)."""
        from training.title_trie import TitleTrie, catalog_entries

        version = catalog_version(self.db)
        key = (id(tokenizer), language)
        with self._trie_lock:
            cached = self._tries.get(key)
            if cached is None or cached[0] != version:
                trie = TitleTrie.build(tokenizer, catalog_entries(self.db, language))
                log.info("title trie for %s: %d books", language, trie.book_count)
                self._tries[key] = cached = (version, trie)
            return cached[1]

    def stream(self, prepared: Prepared, *, max_new_tokens: int = 400) -> Iterator[str | Recommendation]:
        """Text deltas as the model writes them, then the Recommendation (a failure mid-answer ends it with
        `error` set, keeping the text that came)."""
        text, error = "", None
        try:
            for delta in prepared.backend.stream(prepared.messages, max_new_tokens=max_new_tokens):
                text += delta
                yield delta
        except BackendError as e:
            error = str(e)
        yield self.finish(prepared, text, error)

    def recommend(self, prepared: Prepared, *, max_new_tokens: int = 400) -> Recommendation:
        """The whole answer at once."""
        result = None
        for result in self.stream(prepared, max_new_tokens=max_new_tokens):
            pass
        return result

    def stream_many(self, prepared: Sequence[Prepared | None], *, max_new_tokens: int = 400,
                    tick_s: float | None = None) -> Iterator[ColumnUpdate]:
        """Several prepared requests answered side by side (Compare, Arena): API columns concurrently,
        local columns in turn on the shared model (training/columns.py); each ends with its result. With
        tick_s, a tick update comes whenever nothing else has for tick_s seconds."""
        from training.columns import stream_columns

        texts = ["" for _ in prepared]
        backends = [p.backend if p is not None else None for p in prepared]
        messages = [p.messages if p is not None else [] for p in prepared]
        for ev in stream_columns(backends, [], column_messages=messages, max_new_tokens=max_new_tokens,
                                 tick_s=tick_s):
            if ev.tick:
                yield ColumnUpdate(-1, tick=True)
                continue
            texts[ev.column] += ev.delta
            if ev.delta:
                yield ColumnUpdate(ev.column, ev.delta)
            if ev.done:
                yield ColumnUpdate(ev.column, result=self.finish(prepared[ev.column], texts[ev.column], ev.error))

    def finish(self, prepared: Prepared, text: str, error: str | None = None) -> Recommendation:
        backend = prepared.backend
        return Recommendation(prepared.label, prepared.shape, text,
                              self.ground(text, prepared.request.language, prepared.candidates),
                              prepared.candidates, backend.usage if backend is not None else Usage(),
                              prepared.n_books, list(prepared.notices), error, prepared.constrained)

    def ground(self, text: str, language: str, candidates: Sequence[Book] = ()) -> list[RecommendedBook]:
        """The answer's numbered books, each matched against the catalog."""
        index = self.catalog_index()
        offered = {b.id for b in candidates}
        items = parse_books(text, language)
        matches = [index.match(it.title, it.author) for it in items]
        ids = [m.book_id for m in matches if m.book_id is not None]
        with self.db.session() as s:
            books = {b.id: b for b in s.scalars(select(Book).where(Book.id.in_(ids)))} if ids else {}
            s.expunge_all()
        return [RecommendedBook(it.title, it.author, it.reason, it.effect, books.get(m.book_id),
                                m.book_id in offered) for it, m in zip(items, matches)]

    def catalog_index(self):
        """The grounding index of the catalog (datagen/grounding.py), rebuilt when the catalog changes."""
        version = catalog_version(self.db)
        with self._index_lock:
            if self._index is None or self._index[0] != version:
                self._index = (version, catalog_index(self.db))
            return self._index[1]


def _no_books(language: str) -> str:
    if language == "ko":
        return "카탈로그에 한국어 책이 없습니다: 책을 가져온 뒤 다시 시도하세요 (moodshelf catalog import FILE.csv)."
    return "The catalog has no English books: import some first (moodshelf catalog import FILE.csv)."


def _untokenizable(language: str) -> str:
    if language == "ko":
        return ("이 모델의 토크나이저로는 카탈로그의 한국어 책 제목을 하나도 쓸 수 없습니다: 카탈로그 제한 디코딩을 끄고 "
                "다시 시도하세요.")
    return ("This model's tokenizer cannot write any English title of the catalog: turn catalog-constrained "
            "decoding off for it.")


def _few_books(language: str, n: int) -> str:
    if language == "ko":
        return f"카탈로그에 이 요청에 맞는 한국어 책이 {n}권뿐이라 {n}권을 추천합니다."
    return f"The catalog has only {n} English book(s) for this request, so {n} are recommended."


__all__ = ["CatalogConstraint", "ColumnUpdate", "Prepared", "RecommendedBook", "Recommendation", "Recommender"]
