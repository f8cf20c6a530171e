"""What the tabs share: the database, the catalog index, the local model with its adapters, and the chat
backends (training/backends.py) that answer a request.

The base model is loaded once, on first use, and every finished training run on the same base is
attached as a named peft adapter, so a request to "run #3" and one to the base model share weights.
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
from datagen.catalog import catalog_index
from datagen.grid import EFFECTS, Request, adnominal
from datagen.catalog import books_for_moods
from datagen.prompts import answer_format_system, input_for, instruction_for, retrieval_input, student_prompt
from datagen.validation import parse_books
from db.engine import Database
from db.models import Book, TrainingRun
from training.backends import (BASE_LABEL, KEY_ENVS, Backend, BackendError, BackendSpec,
                               attach_run_adapter, make_backend)
from training.config import DEFAULT_BASE_MODEL

NO_KEY_HELP = ("No {env} set: to add this column, `export {env}=...` in the shell that runs `moodshelf serve` "
               "and restart the app (keys are read from the environment only). The other columns still run.")


@dataclass
class BookCard:
    title: str
    author: str
    book: Book | None

    def markdown(self, language: str) -> str:
        """One card. Every field is escaped (app/escape.py): a model's answer, and a catalog CSV, are text to
        show, never markup."""
        if self.book is None:
            tag = "카탈로그에 없음" if language == "ko" else "not in catalog"
            return f"- **{markdown_text(self.title)}** — {markdown_text(self.author or '?')}  ⚠️ *{tag}*"
        b = self.book
        meta = ", ".join(markdown_text(x) for x in (b.author, b.translator and f"tr. {b.translator}", b.publisher,
                                                    b.year) if x)
        moods = " · ".join(markdown_text(m) for m in b.moods)
        return f"- **{markdown_text(b.title)}** — {meta}  ✅  \n  {markdown_text(b.description)}  \n  *{moods}*"


def build_request(language: str, emotion: str, occupation: str, effects: list[str] | str, situation: str,
                  focus: str, free_text: str = "", candidates: list[Book] | None = None) -> tuple[str, dict]:
    """Turn the form into the student's prompt (the same format it was trained on). With candidates
    (retrieval mode), they are listed in the input exactly as the generator wrote them into samples."""
    if isinstance(effects, str):
        effects = [e.strip() for e in effects.split(",") if e.strip()]
    fields = {"emotion": (emotion or "").strip(), "occupation": (occupation or "").strip(),
              "effects": [e.strip() for e in effects or [] if e.strip()], "situation": (situation or "").strip(),
              "focus": (focus or "").strip(), "free_text": (free_text or "").strip(), "language": language}
    if not any([fields["emotion"], fields["occupation"], fields["effects"], fields["situation"], fields["focus"],
                fields["free_text"]]):
        raise ValueError("The request is empty: pick at least an emotion or an effect, or write what you need."
                         if language == "en" else "요청이 비어 있습니다: 감정이나 효과를 고르거나 원하는 것을 적어 주세요.")
    ko = language == "ko"
    emotion = fields["emotion"] or ("평온함" if ko else "calm")
    req = Request(language=language, emotion=emotion, emotion_adj=adnominal(emotion, language),
                  occupation=fields["occupation"] or ("독자" if ko else "reader"),
                  effects=tuple(fields["effects"] or (["위로"] if ko else ["comfort"])),
                  situation=fields["situation"] or ("여유 시간" if ko else "free time"),
                  focus=fields["focus"] or ("가볍게 읽을 수 있음" if ko else "light and easy"))
    input_text = input_for(req)
    if candidates:
        input_text = retrieval_input(input_text, candidates, language)
    prompt = student_prompt(instruction_for(req), input_text)
    if fields["free_text"]:
        prompt += ("\n메모: " if ko else "\nNote: ") + fields["free_text"]
    fields["moods"] = [m for e in req.effects for m in EFFECTS[language].get(e, [])]
    return prompt, fields


@dataclass
class Services:
    db: Database
    base_model: str = DEFAULT_BASE_MODEL
    settings: AppSettings = field(default_factory=AppSettings.from_env)
    _model: object = None
    _index: object = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def index(self):
        if self._index is None:
            self._index = catalog_index(self.db)
        return self._index

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

    def api_choices(self) -> list[str]:
        """API baselines: GPT and Claude (offered with or without a key: the column then says how to add
        one), the OpenAI-compatible server from OPENAI_COMPATIBLE_BASE_URL (e.g. vLLM) when set, and the
        backends the operator added on the admin side (app/offered.py)."""
        defaults = default_api_labels()
        return defaults + [lb for lb in custom_backend_labels(self.db) if lb not in defaults]

    def offered_backends(self) -> list[str]:
        """Every backend a public tab may use; anything else is refused on the server (app/offered.py)."""
        return self.backend_choices() + self.api_choices()

    @staticmethod
    def has_key(label: str) -> bool:
        spec = BackendSpec.from_label(label)
        return spec.kind in ("local", "openai_compatible") or bool(os.environ.get(KEY_ENVS[spec.kind]))

    def backend(self, label: str, language: str = "en") -> Backend:
        """A chat backend for a dropdown label. BackendError says what is wrong (no key: which variable to
        export; an adapter of another base model: that it does not fit; a label the server does not offer:
        refused before anything is made, so no request leaves for a URL the page typed)."""
        require_offered([label], self.offered_backends())
        spec = BackendSpec.from_label(label)
        if spec.is_local:
            return make_backend(spec, local_model=self.model(), db=self.db)
        if spec.kind in KEY_ENVS and spec.kind != "openai_compatible" and not os.environ.get(KEY_ENVS[spec.kind]):
            raise BackendError(NO_KEY_HELP.format(env=KEY_ENVS[spec.kind]))
        return make_backend(spec, system_prompt=answer_format_system(language),
                            first_token_timeout_s=self.settings.first_token_timeout_s)

    def model(self):
        with self._lock:
            if self._model is None:
                from training.inference import LocalModel

                self._model = LocalModel.load(self.base_model)
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

    def request_prompt(self, language, emotion, occupation, effects, situation, focus, free_text="",
                       retrieval: bool = False, k: int = 8) -> tuple[str, dict]:
        prompt, fields = build_request(language, emotion, occupation, effects, situation, focus, free_text)
        if retrieval and fields["moods"]:
            # Same retrieval as generation: best mood overlap first (stable order), the top k.
            candidates = books_for_moods(self.db, fields["moods"], language)[:k]
            prompt, fields = build_request(language, emotion, occupation, effects, situation, focus, free_text,
                                           candidates=candidates)
            fields["candidates"] = [b.id for b in candidates]
        return prompt, fields

    def book_cards(self, answer: str, language: str) -> list[BookCard]:
        items = parse_books(answer, language)
        index = self.index()
        cards = []
        with self.db.session() as s:
            for it in items:
                m = index.match(it.title, it.author)
                cards.append(BookCard(it.title, it.author, s.get(Book, m.book_id) if m.book_id else None))
        return cards
