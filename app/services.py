"""What the tabs share: the database, the local model with its adapters, the chat backends
(training/backends.py) and the recommendation pipeline on top of them (training/recommend.py: retrieval, the
prompt in each model's trained shape, grounding) — the tabs build no prompts themselves.

The base model is loaded once, on first use, and every finished training run on the same base is
attached as a named peft adapter, so a request to "run:3" and one to the base model share weights.
API baselines (GPT, Claude, an OpenAI-compatible URL such as a vLLM server) are offered beside them.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from sqlalchemy import select

from app.escape import markdown_text
from app.offered import custom_backend_labels, default_api_labels, require_offered
from app.settings import AppSettings
from datagen.grounding import normalize_title
from datagen.prompts import answer_format_system
from db.engine import Database
from db.models import Book, TrainingRun
from training.backends import (BASE_LABEL, KEY_ENVS, Backend, BackendError, BackendSpec,
                               attach_run_adapter, make_backend)
from training.config import DEFAULT_BASE_MODEL
from vendors.labels import OFFLINE_LABEL
from training.publish import reader_name, reader_run
from training.reader_request import RecommendRequest
from training.recommend import Recommendation, Recommender

NO_KEY_HELP = ("No {env} set: to add this column, `export {env}=...` in the shell that runs `moodshelf serve` "
               "and restart the app (keys are read from the environment only). The other columns still run.")


@dataclass
class BookCard:
    title: str
    author: str
    book: Book | None
    times: int = 1          # how often the answer named it: a repeated title is one card, flagged

    def markdown(self, language: str) -> str:
        """One card. Every field is escaped (app/escape.py): a model's answer, and a catalog CSV, are text to
        show, never markup."""
        repeated = ""
        if self.times > 1:
            repeated = (f"  🔁 *{self.times}번 반복됨*" if language == "ko" else f"  🔁 *named {self.times} times*")
        if self.book is None:
            tag = "카탈로그에 없음" if language == "ko" else "not in catalog"
            return f"- **{markdown_text(self.title)}** — {markdown_text(self.author or '?')}  ⚠️ *{tag}*{repeated}"
        b = self.book
        meta = ", ".join(markdown_text(x) for x in (b.author, b.translator and f"tr. {b.translator}", b.publisher,
                                                    b.year) if x)
        moods = " · ".join(markdown_text(m) for m in b.moods)
        return (f"- **{markdown_text(b.title)}** — {meta}  ✅{repeated}  \n  {markdown_text(b.description)}  \n"
                f"  *{moods}*")


def form_request(language, emotion, occupation, effects, situation, focus, free_text="") -> RecommendRequest:
    """The request form's values as a pipeline request (RecommendError, a ValueError, when it is empty)."""
    return RecommendRequest.from_fields(language, emotion, occupation, effects, situation, focus, free_text)


def cards_of(result: Recommendation) -> list[BookCard]:
    return distinct_cards(result.books)


def distinct_cards(books) -> list[BookCard]:
    """One card per book in the order named: a title written again (a looping answer) is counted once and
    flagged with how often it was named."""
    cards: dict[tuple, BookCard] = {}
    for b in books:
        key = ("id", b.book.id) if b.book is not None else ("title", normalize_title(b.title))
        if key in cards:
            cards[key].times += 1
        else:
            cards[key] = BookCard(b.title, b.author, b.book)
    return list(cards.values())


@dataclass
class Services:
    db: Database
    base_model: str = DEFAULT_BASE_MODEL
    settings: AppSettings = field(default_factory=AppSettings.from_env)
    _model: object = None
    _recommender: Recommender | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def recommender(self) -> Recommender:
        """The recommendation pipeline (training/recommend.py) on this app's backends."""
        if self._recommender is None:
            self._recommender = Recommender(self.db, backend_factory=self.backend, base_model=self.base_model)
        return self._recommender

    def index(self):
        return self.recommender.catalog_index()

    def finished_runs(self) -> list[TrainingRun]:
        with self.db.session() as s:
            return list(s.scalars(select(TrainingRun).where(
                TrainingRun.status.in_(("completed", "stopped")), TrainingRun.adapter_path.is_not(None))
                .order_by(TrainingRun.id.desc())))

    def backend_choices(self) -> list[str]:
        """The local backends: finished runs on the loaded base, newest first, then the base model."""
        runs = [BackendSpec(kind="local", adapter_run=r.id, run_name=r.name).label
                for r in self.finished_runs() if r.base_model == self.base_model]
        return runs + [BASE_LABEL]

    def reader_label(self, run: TrainingRun | None = None) -> str:
        """The backend the reader's Recommend tab opens with: the published run, else the best evaluated one,
        else the base model (training/publish.py) — never simply the newest run."""
        run = run or reader_run(self.db, self.base_model)
        return BackendSpec(kind="local", adapter_run=run.id, run_name=run.name).label if run else BASE_LABEL

    def recommend_choices(self) -> list[tuple[str, str]]:
        """(shown, backend) pairs of the Recommend dropdown: the reader's model first, under a plain name."""
        run = reader_run(self.db, self.base_model)
        reader = self.reader_label(run)
        return [(reader_name(run), reader)] + [(lb, lb) for lb in self.backend_choices() + self.api_choices()
                                               if lb != reader]

    def api_choices(self) -> list[str]:
        """API baselines: GPT and Claude (offered with or without a key: the column then says how to add
        one), the OpenAI-compatible server from OPENAI_COMPATIBLE_BASE_URL (e.g. vLLM) when set, and the
        backends the operator added on the admin side (app/offered.py)."""
        defaults = [OFFLINE_LABEL, *default_api_labels()]  # the offline teacher needs no key: always offered
        return defaults + [lb for lb in custom_backend_labels(self.db) if lb not in defaults]

    def offered_backends(self) -> list[str]:
        """Every backend a public tab may use; anything else is refused on the server (app/offered.py)."""
        return self.backend_choices() + self.api_choices()

    @staticmethod
    def has_key(label: str) -> bool:
        spec = BackendSpec.from_label(label)
        return spec.kind in ("local", "offline", "openai-compatible") or bool(os.environ.get(KEY_ENVS[spec.kind]))

    def backend(self, label: str, language: str = "en") -> Backend:
        """A chat backend for a dropdown label. BackendError says what is wrong (no key: which variable to
        export; an adapter of another base model: that it does not fit; a label the server does not offer:
        refused before anything is made, so no request leaves for a URL the page typed)."""
        require_offered([label], self.offered_backends())
        spec = BackendSpec.from_label(label)
        if spec.is_local:
            return make_backend(spec, local_model=self.model(), db=self.db)
        if spec.kind == "offline":
            return make_backend(spec)
        if spec.kind in KEY_ENVS and spec.kind != "openai-compatible" and not os.environ.get(KEY_ENVS[spec.kind]):
            raise BackendError(NO_KEY_HELP.format(env=KEY_ENVS[spec.kind]))
        return make_backend(spec, system_prompt=answer_format_system(language),
                            first_token_timeout_s=self.settings.first_token_timeout_s)

    def model(self):
        with self._lock:
            if self._model is None:
                from training.inference import LocalModel
                from training.threads import watch_training

                self._model = LocalModel.load(self.base_model)
                watch_training(self.db)  # generation gives a running training run its cores (training/threads.py)
            return self._model

    def release_model(self) -> None:
        """Free the local chat model (a training run is about to need the memory); reloaded on next use."""
        with self._lock:
            if self._model is not None:
                self._model.release()
                self._model = None

    def adapter_for(self, label: str) -> str | None:
        spec = BackendSpec.from_label(label)
        if spec.adapter_run is None:
            return None
        with self.db.session() as s:
            run = s.get(TrainingRun, spec.adapter_run)
        if run is not None and run.base_model != self.base_model:  # refused before loading any weights
            raise ValueError(f"Run #{run.id} was trained on {run.base_model}, but the loaded base model is "
                             f"{self.base_model}: its adapter does not fit.")
        try:
            return attach_run_adapter(self.model(), self.db, spec.adapter_run)
        except BackendError as e:
            raise ValueError(str(e)) from None

    def book_cards(self, answer: str, language: str) -> list[BookCard]:
        return distinct_cards(self.recommender.ground(answer, language))
