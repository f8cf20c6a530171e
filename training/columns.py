"""Several backends answering one request at once: one thread per backend, their deltas merged into a
single stream of events in arrival order (what the Compare and Arena tabs render, column by column).

    backends = [make_backend(spec, local_model=lm, db=db) for spec in specs]
    for event in stream_columns(backends, messages, max_new_tokens=400):
        print(event.column, event.delta or ("<done>" if not event.error else event.error))

A failing backend ends its own column with an error event; the others keep streaming. API columns run
concurrently; local columns share one model, whose worker serves them in turn (training/inference.py).
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Iterator, Sequence

from vendors.base import redact
from training.backends import Backend, BackendError


@dataclass(frozen=True)
class ColumnEvent:
    column: int                # -1 for a tick
    delta: str = ""
    done: bool = False
    error: str | None = None   # set on the column's last event when it failed
    tick: bool = False         # nothing arrived for tick_s: a chance to show how long columns have waited


def stream_columns(backends: Sequence[Backend | None], messages: list[dict], *, max_new_tokens: int = 400,
                   column_messages: Sequence[list[dict]] | None = None,
                   tick_s: float | None = None) -> Iterator[ColumnEvent]:
    """Events from every backend as they come; each column ends with exactly one `done` event. A None
    backend (a column left empty) produces nothing. `column_messages` gives each column its own prompt
    (each model gets the shape it was trained on, training/recommend.py); else all get `messages`. With
    tick_s, a `tick` event comes whenever nothing else has for tick_s seconds (so a page can show a column
    still waiting for its first token)."""
    events: "queue.Queue[ColumnEvent]" = queue.Queue()

    def run(i: int, backend: Backend) -> None:
        try:
            prompt = column_messages[i] if column_messages is not None else messages
            for delta in backend.stream(prompt, max_new_tokens=max_new_tokens):
                events.put(ColumnEvent(i, delta))
            events.put(ColumnEvent(i, done=True))
        except BackendError as e:
            events.put(ColumnEvent(i, done=True, error=str(e)))
        except BaseException as e:  # noqa: BLE001 - a bug in one column must not hang the others
            events.put(ColumnEvent(i, done=True, error=redact(f"{type(e).__name__}: {e}")))

    live = [(i, b) for i, b in enumerate(backends) if b is not None]
    for i, b in live:
        threading.Thread(target=run, args=(i, b), name=f"column-{i}", daemon=True).start()
    remaining = len(live)
    while remaining:
        try:
            event = events.get(timeout=tick_s)
        except queue.Empty:
            yield ColumnEvent(-1, tick=True)
            continue
        if event.done:
            remaining -= 1
        yield event
