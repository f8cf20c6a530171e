"""One request on 2–3 columns for the Compare and Arena tabs: each column prepared by the recommendation
pipeline (training/recommend.py: its backend, and the prompt in the shape that model was trained on),
answers streamed in parallel, each column's text and figures yielded as they change.

A column whose backend cannot be made (no key, an adapter of another base) or fails mid-stream shows its
error and the others keep going. Updates are throttled: a browser cannot usefully redraw faster.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from app.answer_view import result_record, stats_line
from app.services import Services, cards_of
from training.backends import BackendError
from training.recommend import Prepared, RecommendRequest

MIN_UPDATE_S = 0.08


@dataclass
class ColumnsState:
    labels: list[str]
    texts: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)   # filled when every column has finished
    prompt: str = ""                                      # the request as a plain prompt (stored with it)
    done: bool = False


def run_columns(services: Services, labels: list[str], request: RecommendRequest, *,
                max_new_tokens: int = 400, waiting_line: str = "*generating…*") -> Iterator[ColumnsState]:
    n = len(labels)
    state = ColumnsState(labels=labels, texts=[""] * n, lines=[waiting_line] * n)
    rec = services.recommender
    prepared: list[Prepared | None] = []
    errors: list[str | None] = [None] * n
    for i, label in enumerate(labels):
        try:
            prepared.append(rec.prepare(request, label))
        except (BackendError, ValueError) as e:
            prepared.append(None)
            errors[i] = str(e)
            state.lines[i] = f"⚠️ {e}"
    state.prompt = request.prompt()
    yield state
    results = [None] * n
    last = 0.0
    for up in rec.stream_many(prepared, max_new_tokens=max_new_tokens):
        i = up.column
        state.texts[i] += up.delta
        if up.result is not None:
            results[i] = up.result
            if up.result.error:
                errors[i] = up.result.error
                state.lines[i] = f"⚠️ {up.result.error}"
            else:
                state.lines[i] = stats_line(up.result.usage, cards_of(up.result))
        now = time.perf_counter()
        if up.result is not None or now - last >= MIN_UPDATE_S:
            last = now
            yield state
    for i, label in enumerate(labels):
        r = results[i]
        record = result_record(label, state.texts[i], r.usage if r else None, cards_of(r) if r else [], errors[i])
        if prepared[i] is not None:
            # What the column's model was given: its prompt shape and the candidates offered.
            record.update(shape=prepared[i].shape, candidates=[b.title for b in prepared[i].candidates])
        state.results.append(record)
    state.done = True
    yield state
