"""The teacher task: what one generated sample asks a teacher (the request, its retrieved candidates, the
prompt messages and the answer schema). Teachers are vendor clients (vendors/base.py).

    task = TeacherTask(index=0, request=request, instruction=..., input_text=..., candidates=books, n_books=3,
                       seed=7, messages=messages, schema=schema)
    completion = await get_provider("openai").agenerate(task)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from datagen.grid import Request
from db.models import Book


@dataclass
class TeacherTask:
    index: int
    request: Request
    instruction: str
    input_text: str
    candidates: list[Book]
    n_books: int
    seed: int
    messages: list[dict] = field(default_factory=list)
    schema: dict = field(default_factory=dict)
    # book id -> retrieval score relative to the best candidate (datagen/retrieval.py); the offline teacher
    # weighs it into its choice. Empty when the candidates came from elsewhere.
    candidate_scores: dict[int, float] = field(default_factory=dict)

