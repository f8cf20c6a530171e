"""What a reader asks, and the prompt shape each kind of model gets it in (training/recommend.py runs the rest).

    request = RecommendRequest.from_fields("en", emotion="anxious", effects=["comfort"], free_text="short poems")
    shape = shape_for(db, BackendSpec.from_label("run:3"))      # plain | candidates | teacher
    messages = messages_for(shape, instruction, input_text, candidates, "en", n_books=3)

Prompt shapes, chosen from the backend, never by the user:
    plain       the request only: the base model, and runs whose samples carried no candidates (runs from
                before this was recorded count as such: an adapter is never given what it was not trained on)
    candidates  the request + its "Candidate books:" block: runs trained on candidate-carrying samples
    teacher     API models (GPT, Claude, OpenAI-compatible servers): the answer-format system prompt, the
                request and the <candidates> block — what the teacher saw when it wrote the samples
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from datagen.grid import EFFECTS, Request, adnominal
from datagen.prompts import LABELS, api_chat_messages, input_for, instruction_for, student_messages
from datagen.retrieval import Retriever
from datagen.safety import crisis_notice
from db.engine import Database
from db.errors import UserError
from db.models import TrainingRun
from training.backends import BackendError, BackendSpec

DEFAULT_K = 8
DEFAULT_N_BOOKS = 3
SHAPES = ("plain", "candidates", "teacher")


class RecommendError(UserError, ValueError):
    """A request the pipeline cannot answer, worded for the reader (empty request, no books in the catalog)."""


# -- the request ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecommendRequest:
    """What a reader asks: the seed's five fields and their own words, in Korean or English."""

    language: str
    emotion: str = ""
    occupation: str = ""
    effects: tuple[str, ...] = ()
    situation: str = ""
    focus: str = ""
    free_text: str = ""
    n_books: int = DEFAULT_N_BOOKS

    @classmethod
    def from_fields(cls, language: str, emotion: str = "", occupation: str = "", effects: Sequence[str] | str = (),
                    situation: str = "", focus: str = "", free_text: str = "",
                    n_books: int = DEFAULT_N_BOOKS) -> "RecommendRequest":
        """Clean and check form or CLI values; RecommendError says what is wrong, in the request's language."""
        if language not in LABELS:
            raise RecommendError(f"Unsupported language '{language}': use ko or en.")
        if isinstance(effects, str):
            effects = effects.split(",")
        req = cls(language, (emotion or "").strip(), (occupation or "").strip(),
                  tuple(e.strip() for e in effects or () if e and e.strip()), (situation or "").strip(),
                  (focus or "").strip(), " ".join((free_text or "").split()), n_books)
        if not any([req.emotion, req.occupation, req.effects, req.situation, req.focus, req.free_text]):
            raise RecommendError(
                "요청이 비어 있습니다: 감정이나 효과를 고르거나 원하는 것을 적어 주세요." if language == "ko" else
                "The request is empty: pick at least an emotion or an effect, or write what you need.")
        if n_books <= 0:
            raise RecommendError(f"n_books must be > 0 (got {n_books}).")
        return req

    def grid_request(self) -> Request:
        """The request as a grid cell (datagen/grid.py), blank fields given neutral defaults."""
        ko = self.language == "ko"
        emotion = self.emotion or ("평온함" if ko else "calm")
        return Request(language=self.language, emotion=emotion, emotion_adj=adnominal(emotion, self.language),
                       occupation=self.occupation or ("독자" if ko else "reader"),
                       effects=self.effects or (("위로",) if ko else ("comfort",)),
                       situation=self.situation or ("여유 시간" if ko else "free time"),
                       focus=self.focus or ("가볍게 읽을 수 있음" if ko else "light and easy"), free_text=self.free_text)

    @property
    def moods(self) -> list[str]:
        return [m for e in self.effects for m in EFFECTS[self.language].get(e, [])]

    def prompt(self) -> str:
        """The request as a plain prompt (no candidates): what a comparison stores as its prompt."""
        grid_request = self.grid_request()
        return messages_for("plain", instruction_for(grid_request, self.n_books), input_for(grid_request), [],
                            self.language, self.n_books)[0]["content"]

    def crisis_notice(self) -> str | None:
        """The caring message with the crisis line when the request signals self-harm or suicidal thoughts
        (datagen/safety.py), shown before any books on every backend; None otherwise."""
        return crisis_notice(self.fields(), self.language)

    def fields(self) -> dict:
        """As stored with a comparison (comparisons.request)."""
        return {"language": self.language, "emotion": self.emotion, "occupation": self.occupation,
                "effects": list(self.effects), "situation": self.situation, "focus": self.focus,
                "free_text": self.free_text, "moods": self.moods}


# -- prompt shapes ----------------------------------------------------------------------------------------------
def messages_for(shape: str, instruction: str, input_text: str, candidates, language: str,
                 n_books: int) -> list[dict]:
    """The chat messages of one prompt shape (see the module docstring). `candidates`: Books or their
    "Title - Author" lines; ignored by the plain shape."""
    if shape == "plain":
        return student_messages(instruction, input_text, None, language)
    if shape == "candidates":
        return student_messages(instruction, input_text, candidates, language)
    if shape == "teacher":
        return api_chat_messages(instruction, input_text, candidates, n_books, language)
    raise ValueError(f"unknown prompt shape '{shape}' (one of {', '.join(SHAPES)})")


def sample_messages(sample, shape: str, retriever: Retriever | None = None, *, n_books: int = DEFAULT_N_BOOKS,
                    k: int = DEFAULT_K, seed: int = 0) -> list[dict]:
    """An eval sample's request in a model's prompt shape. The sample's own candidates are used when its
    input carries them (so the reference answer chose among the same books); otherwise they are retrieved
    for its request fields. A sample without request fields (imported text) gets the plain shape."""
    from datagen.prompts import split_candidates

    request_input, lines = split_candidates(sample.input or "")
    candidates: list = list(lines)
    if shape != "plain" and not candidates and retriever is not None and sample.emotion and sample.effect:
        effects = tuple(e.strip() for e in sample.effect.split(",") if e.strip())
        request = Request(sample.language, sample.emotion, adnominal(sample.emotion, sample.language),
                          sample.occupation or "", effects, sample.situation or "", sample.focus or "")
        candidates = retriever.candidates(request, k=k, seed=seed)
    if shape != "plain" and not candidates:
        shape = "plain"
    return messages_for(shape, sample.instruction, request_input, candidates, sample.language, n_books)


def run_takes_candidates(db: Database, run_id: int) -> bool:
    """Whether run N was trained on candidate-carrying samples (None, from older runs: no)."""
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
    if run is None:
        raise BackendError(f"Run #{run_id} does not exist (see `moodshelf runs`).")
    return bool(run.with_candidates)


def shape_for(db: Database, spec: BackendSpec) -> str:
    if not spec.is_local:
        return "teacher"
    if spec.adapter_run is None:
        return "plain"
    return "candidates" if run_takes_candidates(db, spec.adapter_run) else "plain"
