"""The provider interface: a request and its catalog candidates in, an answer in the seed format out."""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Sequence

from datagen.grid import Request
from db.models import Book


class ProviderError(RuntimeError):
    """A provider problem worded for the user (unknown model, missing key, unreachable server)."""


@dataclass
class Completion:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Provider(ABC):
    name: ClassVar[str]
    label: ClassVar[str]                 # what the UI shows, e.g. "offline template"
    default_model: ClassVar[str]
    key_env: ClassVar[str | None] = None  # e.g. "OPENAI_API_KEY"

    def __init__(self, model: str | None = None):
        self.model = model or self.default_model
        if self.key_env and not os.environ.get(self.key_env):
            raise ProviderError(
                f"No {self.key_env} set: export it (never commit it), or pick the offline provider."
            )

    @abstractmethod
    def complete(self, request: Request, instruction: str, input_text: str, candidates: Sequence[Book],
                 *, n_books: int, seed: int) -> Completion:
        """Write one answer for `request`, recommending `n_books` books (ideally among `candidates`)."""
