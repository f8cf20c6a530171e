"""One request on 2–3 columns for the Compare and Arena tabs: backends made from their labels, answers
streamed in parallel (training/columns.py), each column's text and figures yielded as they change.

A column whose backend cannot be made (no key, an adapter of another base) or fails mid-stream shows its
error and the others keep going. A column still waiting for its first token says for how long (and, for an
API backend, when it gives up). Updates are throttled: a browser cannot usefully redraw faster.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator

from app.answer_view import result_record, stats_line, waiting_line
from app.escape import html_text
from app.services import Services
from training.backends import Backend, BackendError
from training.columns import stream_columns

MIN_UPDATE_S = 0.08
TICK_S = 0.5   # how often a column that has not started says how long it has waited


@dataclass
class ColumnsState:
    labels: list[str]
    texts: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    results: list[dict] = field(default_factory=list)   # filled when every column has finished
    done: bool = False


def run_columns(services: Services, labels: list[str], prompt: str, language: str, *,
                max_new_tokens: int = 400, generating_line: str = "*generating…*") -> Iterator[ColumnsState]:
    n = len(labels)
    state = ColumnsState(labels=labels, texts=[""] * n, lines=[generating_line] * n)
    backends: list[Backend | None] = []
    errors: list[str | None] = [None] * n
    for i, label in enumerate(labels):
        try:
            backends.append(services.backend(label, language))
        except (BackendError, ValueError) as e:
            backends.append(None)
            errors[i] = str(e)
            state.lines[i] = f"⚠️ {html_text(e)}"
    yield state
    messages = [{"role": "user", "content": prompt}]
    last, t0 = 0.0, time.perf_counter()
    finished = [b is None for b in backends]
    for ev in stream_columns(backends, messages, max_new_tokens=max_new_tokens, tick_s=TICK_S):
        i = ev.column
        if ev.tick:
            waited = time.perf_counter() - t0
            for k, b in enumerate(backends):
                if not finished[k] and not state.texts[k] and waited >= 1.0:
                    state.lines[k] = waiting_line(b, waited, language)
            yield state
            continue
        if ev.delta:
            if not state.texts[i]:
                state.lines[i] = generating_line
            state.texts[i] += ev.delta
        if ev.done:
            finished[i] = True
            if ev.error:
                errors[i] = ev.error
                state.lines[i] = f"⚠️ {html_text(ev.error)}"  # a server's error text is not markup either
            else:
                state.lines[i] = stats_line(backends[i].usage, services.book_cards(state.texts[i], language),
                                            language)
        now = time.perf_counter()
        if ev.done or now - last >= MIN_UPDATE_S:
            last = now
            yield state
    for i, label in enumerate(labels):
        b = backends[i]
        cards = services.book_cards(state.texts[i], language) if state.texts[i] else []
        state.results.append(result_record(label, state.texts[i], b.usage if b else None, cards, errors[i]))
    state.done = True
    yield state
