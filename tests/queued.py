"""An in-process teacher and chat client whose answers a test queues, for logic that needs no HTTP (the fake
servers in tests/fakes stay for the real SDK paths). As simonw/llm's mock model: queue, run, inspect.

    def test_something(queued_provider, catalog_db):
        queued_provider.queue(CallError("HTTP 500", retryable=True, http_status=500), {"books": [...]})
        run_job(catalog_db, create_job(catalog_db, JobConfig(provider="queued", count=3)))
        assert len(queued_provider.tasks) == 4

Each queued item answers one call, in order: a dict (the parsed answer), a str (raw text, parsed as a real
answer would be), a Completion, or an exception (raised). With the queue empty, the offline template teacher
answers, so a job can run to its target without a test writing every answer. `stream_chat` streams a queued
str word by word.
"""
from __future__ import annotations

import json
from collections import deque
from typing import ClassVar, Iterator

from datagen.providers.offline import OfflineCatalogProvider
from vendors.base import Completion, Usage, VendorClient, parse_answer


class QueuedProvider(VendorClient):
    name = "queued"
    label = "queued test teacher"
    default_model = "queued-model"
    can_chat = True
    is_api = True  # calls are logged and priced like an API teacher's (an unknown model: no price)

    answers: ClassVar[deque]
    tasks: ClassVar[list]

    @classmethod
    def queue(cls, *answers) -> None:
        cls.answers.extend(answers)

    def _next(self):
        return self.answers.popleft() if self.answers else None

    async def agenerate(self, task) -> Completion:
        self.tasks.append(task)
        item = self._next()
        if item is None:
            return await OfflineCatalogProvider().agenerate(task)
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, dict):
            return Completion(raw=json.dumps(item, ensure_ascii=False), parsed=item)
        if isinstance(item, str):
            parsed, error = parse_answer(item)
            return Completion(raw=item, parsed=parsed, parse_error=error)
        return item

    def stream_chat(self, messages: list[dict], *, max_tokens: int, usage: Usage) -> Iterator[str]:
        self.tasks.append(messages)
        item = self._next() or ""
        if isinstance(item, BaseException):
            raise item
        words = str(item).split(" ")
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        usage.prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        usage.completion_tokens = len(words)
        usage.finish_reason = "stop"


def queued_provider_class() -> type[QueuedProvider]:
    """A fresh subclass with its own queue and call log (one per test)."""
    return type("QueuedProvider", (QueuedProvider,), {"answers": deque(), "tasks": []})
