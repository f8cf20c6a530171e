"""One request on 2–3 columns for the Compare and Arena tabs: each column prepared by the recommendation
pipeline (training/recommend.py: its backend, and the prompt in the shape that model was trained on),
answers streamed in parallel, each column's text and figures yielded as they change.

A column whose backend cannot be made (no key, an adapter of another base) or fails mid-stream shows its
error and the others keep going. A column still waiting for its first token says where it is in the local
model's queue ("waiting: 2 ahead · about 40 s") or, for an API backend, how long it has waited and when it
gives up; a column being written says "writing… about 12 s left". Updates are throttled: a browser cannot usefully redraw faster.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from app.answer_view import cards_markdown, progress_line, result_record, stats_line, writing_line
from app.escape import html_text
from app.services import Services, cards_of
from training.backends import BackendError
from training.reader_request import RecommendRequest
from training.recommend import Prepared

MIN_UPDATE_S = 0.08
TICK_S = 0.5   # how often a column that has not started says how long it has waited


@dataclass
class ColumnsState:
    labels: list[str]
    texts: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)   # filled when every column has finished
    prompt: str = ""                                      # the request as a plain prompt (stored with it)
    done: bool = False


def run_columns(services: Services, labels: list[str], request: RecommendRequest, *,
                max_new_tokens: int = 400, generating_line: str = "*generating…*",
                constrained: bool = True, temperature: float | None = None) -> Iterator[ColumnsState]:
    n = len(labels)
    state = ColumnsState(labels=labels, texts=[""] * n, lines=[generating_line] * n)
    rec = services.recommender
    prepared: list[Prepared | None] = []
    errors: list[str | None] = [None] * n
    for i, label in enumerate(labels):
        try:
            prepared.append(rec.prepare(request, label, constrained=constrained, temperature=temperature))
        except (BackendError, ValueError) as e:
            prepared.append(None)
            errors[i] = str(e)
            state.lines[i] = f"⚠️ {html_text(e)}"
    state.prompt = request.prompt()
    yield state
    language = request.language
    results = [None] * n
    last, t0 = 0.0, time.perf_counter()
    finished = [p is None for p in prepared]
    for up in rec.stream_many(prepared, max_new_tokens=max_new_tokens, tick_s=TICK_S):
        if up.tick:
            waited = time.perf_counter() - t0
            for k, p in enumerate(prepared):
                if finished[k]:
                    continue
                # An API column's wait is worth a line after a second; a queue place at once.
                if state.texts[k] or waited >= 1.0 or p.backend.queue_stats() is not None:
                    state.lines[k] = progress_line(p.backend, bool(state.texts[k]), waited, language)
            yield state
            continue
        i = up.column
        if up.delta:
            if not state.texts[i]:
                state.lines[i] = writing_line(prepared[i].backend, language)
            state.texts[i] += up.delta
        if up.result is not None:
            finished[i] = True
            results[i] = up.result
            if up.result.error:
                errors[i] = up.result.error
                state.lines[i] = f"⚠️ {html_text(up.result.error)}"  # a server's error text is not markup either
            else:
                notes = "".join(f"\n\n*{html_text(n)}*" for n in up.result.notices)
                cards = cards_of(up.result)  # the same catalog cards as Recommend shows, under the figures
                state.lines[i] = (stats_line(up.result.usage, cards, language) + notes + "\n\n"
                                  + cards_markdown(cards, language))
        now = time.perf_counter()
        if up.result is not None or now - last >= MIN_UPDATE_S:
            last = now
            yield state
    for i, label in enumerate(labels):
        r = results[i]
        record = result_record(label, state.texts[i], r.usage if r else None, cards_of(r) if r else [], errors[i])
        if prepared[i] is not None:
            # What the column's model was given: its prompt shape and the candidates offered.
            record.update(shape=prepared[i].shape, candidates=[b.title for b in prepared[i].candidates],
                          constrained=prepared[i].constrained, temperature=temperature or 0.0)
        state.results.append(record)
    state.done = True
    yield state
