"""An in-process teacher and chat client whose answers a test queues, for logic that needs no HTTP (the fake
servers in tests/fakes stay for the real SDK paths). As simonw/llm's mock model: queue, run, inspect.

    def test_something(queued_provider, catalog_db):
        queued_provider.queue(CallError("HTTP 500", retryable=True, http_status=500), {"books": [...]})
        run_job(catalog_db, create_job(catalog_db, JobConfig(provider="queued", count=3)))
        assert len(queued_provider.tasks) == 4

Each queued item answers one call, in order: a dict (the parsed answer), a str (raw text, parsed as a real
answer would be), a Completion, or an exception (raised). With the queue empty, the offline template teacher
answers, so a job can run to its target without a test writing every answer. `stream_chat` streams a queued
str word by word. Its batch API answers a batch at once, in memory (a failed call: an error line of the batch).
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
    can_batch = True
    is_api = True  # calls are logged and priced like an API teacher's (an unknown model: no price)

    answers: ClassVar[deque]
    tasks: ClassVar[list]
    batches: ClassVar[dict]

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

    async def batch_probe(self) -> None:
        pass

    async def batch_submit(self, requests) -> str:
        results: dict[str, Completion | str] = {}
        for custom_id, task in requests:
            try:
                results[custom_id] = await self.agenerate(task)
            except Exception as e:  # noqa: BLE001 - inside a batch a failed request is an error line
                results[custom_id] = str(e)
        batch_id = f"batch-{len(self.batches) + 1}"
        self.batches[batch_id] = results
        return batch_id

    async def batch_done(self, batch_id: str) -> bool:
        return True

    async def batch_results(self, batch_id: str) -> dict[str, Completion | str]:
        return self.batches[batch_id]

    def stream_chat(self, messages: list[dict], *, max_tokens: int, usage: Usage,
                    temperature: float | None = None) -> Iterator[str]:
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
    return type("QueuedProvider", (QueuedProvider,), {"answers": deque(), "tasks": [], "batches": {}})
