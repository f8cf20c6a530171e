"""Continuous batching: one worker thread decodes every local answer, requests for one model in one batch.

    engine = BatchEngine(model_for=lambda key: models[key], tokenizer=tok)
    row = Row(prompt_ids=[...], model_key=None, max_new_tokens=96, stop_ids={2})
    engine.submit(row)
    while (event := row.events.get())[0] == "text":   # ("text", delta)... then ("end", None) or ("error", e)
        print(event[1], end="")

Used by training/inference.LocalModel; callers never see this module.

Why our own decode loop rather than `generate`: generate() decodes a fixed batch from start to end, so a
request arriving a second after another waits for all of it. Here a request joins the running batch at the next
step (its prompt is prefilled alone, its KV cache left-padded to the batch's and stacked under it), and a row
that ends leaves at once. Every row has its own stop tokens, token budget, temperature and row processor
(catalog-constrained decoding, training/constrained.RowConstraint), and streams its own text.

Left padding: row i's cache holds pad columns (attention mask 0) on the left; its position ids count its real
tokens only, so the rotary positions are those of the row decoded alone (transformers' mask takes the query
offset from the cache length and padding from the 2-D mask). A request for another model (another adapter's
merged weights) waits until the running batch drains; a batch admits newcomers only while no request for
another model is waiting ahead of them, so models take turns in arrival order.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from training import threads

log = logging.getLogger(__name__)

TOP_P = 0.9
MAX_BATCH = 16  # rows decoded together; more cost more per step than a 2-core CPU gains
EMA = 0.2       # weight of the newest figure in the running step time and answer length


@dataclass
class StreamStats:
    ttft_s: float | None = None   # from the request to its first text, queue wait included
    total_s: float = 0.0
    tokens: int = 0               # generated tokens, the end token excluded
    prompt_tokens: int = 0
    truncated: bool = False       # the answer reached max_new_tokens without an end token: cut short
    queue_s: float = 0.0          # from the request to its prefill (waiting for the worker or another model)
    ahead: int = 0                # answers queued or being generated when it was asked
    batch_size: int = 0           # the most rows decoded beside it (itself included)
    # Live, updated by the worker after every step (what a waiting page shows):
    writing: bool = False         # prefilled: its tokens are being generated
    ahead_now: int = 0            # while queued: answers the worker generates before it starts
    wait_s: float | None = None   # while queued: estimated seconds until it starts (None: no figure yet)
    left_s: float | None = None   # while writing: estimated seconds until it ends
    estimate_is_bound: bool = False  # no answer has finished yet: the figures use token budgets (upper bounds)


class Utf8Text:
    """A row's text, decoded incrementally without ever emitting part of a character.

    A byte-level tokenizer spends several tokens on one Hangul syllable, and a partial one decodes as U+FFFD:
    text ending in U+FFFD is held back until the character completes; at the end, an incomplete character
    (the budget ran out inside it) is dropped rather than shown as '�'."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.sent = ""

    def delta(self, ids: list[int]) -> str:
        # The whole answer is decoded each time: a few hundred tokens cost microseconds next to a forward pass,
        # and decoders that join tokens with spaces (SentencePiece) stay right.
        text = self.tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd")
        if not text.startswith(self.sent):  # a decoder rewrote earlier text: send only what is new after it
            common = 0
            while common < min(len(text), len(self.sent)) and text[common] == self.sent[common]:
                common += 1
            self.sent = text[:common]
        new, self.sent = text[len(self.sent):], text
        return new


@dataclass(eq=False)
class Row:
    """One answer being generated: what the caller asked, and its state in the batch."""

    prompt_ids: list[int]
    model_key: str | None
    max_new_tokens: int
    stop_ids: set[int]
    temperature: float = 0.0
    row_processor: object | None = None
    stats: StreamStats = field(default_factory=StreamStats)
    events: "queue.Queue[tuple[str, object]]" = field(default_factory=queue.Queue)
    generated: list[int] = field(default_factory=list)
    cancelled: bool = False       # the caller stopped reading: drop the row at the next step
    done: bool = False            # its last event ("end" or "error") has been sent
    submitted: float = 0.0
    text: Utf8Text | None = None
    position: int = 0             # position id of the next input token (the row's real length so far)

    def ended_by(self, token: int) -> bool:
        if token in self.stop_ids:
            return True
        # A row processor may have its own end tokens (RowConstraint.eos_ids); once it is done, one ends the row.
        proc = self.row_processor
        return bool(proc is not None and getattr(proc, "done", False) and token in getattr(proc, "eos_ids", ()))


class _Batch:
    """The rows of one model decoding together, their KV cache and 2-D attention mask (B x cache length)."""

    def __init__(self, key, model, rows: list[Row], cache, mask: torch.Tensor):
        self.key, self.model, self.rows, self.cache, self.mask = key, model, rows, cache, mask

    @property
    def joinable(self) -> bool:
        # Stacking caches is only done for plain full-attention layers; a sliding-window cache (gemma 3) drops
        # old columns itself, so its batch takes newcomers only when it starts.
        from transformers.cache_utils import DynamicLayer

        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def keep(self, alive: list[int]) -> None:
        """Drop the rows not in `alive`, then the pad columns no remaining row needs."""
        if len(alive) < len(self.rows):
            index = torch.tensor(alive, dtype=torch.long, device=self.mask.device)
            self.cache.batch_select_indices(index)
            self.mask = self.mask[index]
            self.rows = [self.rows[i] for i in alive]
        if self.rows and self.joinable:
            unused = int((self.mask.sum(0) == 0).long().cumprod(0).sum())
            if unused:
                for layer in self.cache.layers:
                    layer.keys, layer.values = layer.keys[..., unused:, :], layer.values[..., unused:, :]
                self.mask = self.mask[:, unused:]

    def stack(self, other: "_Batch") -> None:
        """Put another batch's rows (same model, freshly prefilled) under these, left-padding the shorter cache."""
        width = max(self.mask.shape[1], other.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, other.cache.layers):
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)], dim=0)
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)], dim=0)
        self.mask = torch.cat([_pad_left(self.mask, width, dim=1), _pad_left(other.mask, width, dim=1)], dim=0)
        self.rows += other.rows


def _pad_left(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing <= 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class BatchEngine:
    """The single generation worker. `model_for(key)` returns the model for a row's model_key (called on the
    worker thread, so loading or merging one happens in turn with generation)."""

    def __init__(self, model_for: Callable[[str | None], object], tokenizer, *, max_batch: int = MAX_BATCH,
                 threads_now: Callable[[], int] = threads.generation_threads):
        self.model_for, self.tokenizer, self.max_batch = model_for, tokenizer, max_batch
        self.threads_now = threads_now
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._queue: deque[Row] = deque()
        self._active: list[Row] = []  # rows taken by the worker (some may have ended since)
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closing = False
        # What the estimates are made of: the time of one decode step, and how long answers turn out to be.
        self._step_s: float | None = None
        self._answer_tokens: float | None = None

    def waiting(self) -> int:
        """Answers asked for and not started yet."""
        with self._cond:
            return len(self._queue)

    def running(self) -> int:
        """Answers being generated now."""
        with self._cond:
            return sum(1 for r in self._active if not (r.done or r.cancelled))

    def submit(self, row: Row) -> None:
        row.text = Utf8Text(self.tokenizer)
        row.stats.prompt_tokens = len(row.prompt_ids)
        with self._cond:
            row.submitted = time.perf_counter()
            row.stats.ahead = len(self._queue) + sum(1 for r in self._active if not (r.done or r.cancelled))
            self._queue.append(row)
            self._estimate()
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="local-generation", daemon=True)
                self._worker.start()
            self._cond.notify()

    def close(self, timeout: float = 30.0) -> None:
        """Let the worker finish what it is generating, then stop it (a daemon thread still inside torch when
        the interpreter exits aborts the process). A later submit starts a new worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            worker = self._worker
        if worker is not None:
            worker.join(timeout)
        with self._cond:
            self._closing = False

    # -- the worker ---------------------------------------------------------------------------------------------

    def _work(self) -> None:
        batch: _Batch | None = None
        while True:
            with self._cond:
                self._queue = deque(r for r in self._queue if not r.cancelled)
                while batch is None and not self._queue:
                    if self._closing:
                        self._worker = None
                        return
                    self._cond.wait()
                newcomers = self._take(batch)
            try:
                threads.apply(self.threads_now())
                # Row processors mask the logits in place: they must run in inference mode as the logits were made.
                with torch.inference_mode():
                    if newcomers:
                        batch = self._admit(batch, newcomers)
                    if batch is not None:
                        batch = self._step(batch)
            except BaseException as e:  # noqa: BLE001 - a failed forward (out of memory, a bad model) ends its rows
                log.exception("Local generation failed")
                for row in (batch.rows if batch else []) + newcomers:
                    _finish(row, error=e)
                batch = None
            with self._cond:
                self._active = list(batch.rows) if batch else []
                self._estimate()

    def _estimate(self) -> None:
        """Tell every queued row how many answers come before it and about when it starts, and every writing row
        about when it ends (called under the lock after each step).

        A queued row starts when the running batch has drained and the models queued before its own have each
        had their turn (requests for one model are decoded together, so each model ahead costs one answer's time).
        An answer's length is the running average of finished answers; before one has finished, each row's token
        budget stands in and the figures are upper bounds."""
        step, typical = self._step_s, self._answer_tokens

        def left_tokens(row: Row) -> int:
            expected = typical if typical is not None else row.max_new_tokens
            return max(1, min(row.max_new_tokens, round(expected)) - len(row.generated))

        active = [r for r in self._active if not (r.done or r.cancelled)]
        drain = 0.0
        for r in active:  # taken by the worker: being written, or its model loading / its prompt prefilling
            r.stats.estimate_is_bound = typical is None
            r.stats.left_s = left_tokens(r) * step if step is not None else None
            drain = max(drain, r.stats.left_s or 0.0)
        models_ahead: list = []
        for j, r in enumerate(r for r in self._queue if not r.cancelled):
            if r.model_key not in models_ahead:
                models_ahead.append(r.model_key)
            turns = models_ahead.index(r.model_key)  # models whose turn comes before this row's
            r.stats.ahead_now = len(active) + j
            r.stats.estimate_is_bound = typical is None
            r.stats.wait_s = None if step is None else drain + turns * left_tokens(r) * step
    def _take(self, batch: _Batch | None) -> list[Row]:
        """Rows to start now: with no batch, the oldest request's model and every request queued for it;
        with one, the requests for its model queued before any request for another model."""
        if batch is None:
            key = self._queue[0].model_key
            take = [r for r in self._queue if r.model_key == key][: self.max_batch]
        elif not batch.joinable:
            return []
        else:
            take = []
            for r in self._queue:
                if r.model_key != batch.key or len(batch.rows) + len(take) >= self.max_batch:
                    break
                take.append(r)
        chosen = set(map(id, take))
        for r in take:  # its turn has come: nothing is ahead of it any more
            r.stats.ahead_now, r.stats.wait_s = 0, 0.0
        self._queue = deque(r for r in self._queue if id(r) not in chosen)
        self._active += take
        return take

    def _admit(self, batch: _Batch | None, rows: list[Row]) -> _Batch | None:
        """Prefill the newcomers' prompts, choose their first tokens, and stack them into the batch."""
        from transformers import DynamicCache

        key = rows[0].model_key
        try:
            model = self.model_for(key)
        except BaseException as e:  # noqa: BLE001 - the model cannot be had (released and not reloadable)
            for row in rows:
                _finish(row, error=e)
            return batch
        start = time.perf_counter()
        for row in rows:
            row.stats.queue_s = start - row.submitted
        device = _device(model)
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids):] = 1
            r.position = len(r.prompt_ids)
        ids, mask = ids.to(device), mask.to(device)
        cache = DynamicCache(config=model.config)
        out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    cache=cache, use_cache=True, logits_to_keep=1)
        fresh = _Batch(key, model, rows, cache, mask)
        if batch is None:
            batch = fresh
        else:
            batch.stack(fresh)
        for r in batch.rows:
            r.stats.batch_size = max(r.stats.batch_size, len(batch.rows))
            r.stats.writing = True
        logits = out.logits[:, -1].float()
        first = len(batch.rows) - len(rows)
        alive = list(range(first)) + [first + i for i, r in enumerate(rows) if self._advance(r, logits[i])]
        batch.keep(alive)
        return batch if batch.rows else None

    def _step(self, batch: _Batch) -> _Batch | None:
        alive = [i for i, r in enumerate(batch.rows) if not r.cancelled]
        batch.keep(alive)
        if not batch.rows:
            return None
        started = time.perf_counter()
        device = batch.mask.device
        ids = torch.tensor([[r.generated[-1]] for r in batch.rows], dtype=torch.long, device=device)
        positions = torch.tensor([[r.position] for r in batch.rows], dtype=torch.long, device=device)
        batch.mask = torch.cat([batch.mask, batch.mask.new_ones((len(batch.rows), 1))], dim=1)
        out = batch.model(input_ids=ids, attention_mask=batch.mask, position_ids=positions, cache=batch.cache,
                          use_cache=True)
        logits = out.logits[:, -1].float()
        for r in batch.rows:
            r.position += 1
            r.stats.batch_size = max(r.stats.batch_size, len(batch.rows))
        batch.keep([i for i, r in enumerate(batch.rows) if self._advance(r, logits[i])])
        took = time.perf_counter() - started
        self._step_s = took if self._step_s is None else (1 - EMA) * self._step_s + EMA * took
        return batch if batch.rows else None

    def _advance(self, row: Row, scores: torch.Tensor) -> bool:
        """Choose the row's next token, stream its text; False when the row has ended (it is then finished)."""
        try:
            if row.cancelled:
                return False
            scores = scores.cpu()
            if row.row_processor is not None:
                out = row.row_processor(torch.tensor(row.generated, dtype=torch.long), scores)
                scores = scores if out is None else out
            token = _choose(scores, row.temperature)
            row.generated.append(token)
            if row.ended_by(token):
                self._answered(len(row.generated))
                _finish(row)
                return False
            delta = row.text.delta(row.generated)
            if delta:
                row.events.put(("text", delta))
            if len(row.generated) >= row.max_new_tokens:
                row.stats.truncated = True  # the budget ran out before an end token: cut short
                self._answered(len(row.generated))
                _finish(row)
                return False
            return True
        except BaseException as e:  # noqa: BLE001 - one row's failure is its caller's, not the batch's
            _finish(row, error=e)
            return False


    def _answered(self, tokens: int) -> None:
        t = self._answer_tokens
        self._answer_tokens = float(tokens) if t is None else (1 - EMA) * t + EMA * tokens


def _choose(scores: torch.Tensor, temperature: float) -> int:
    if temperature <= 0:
        return int(scores.argmax())
    probs = torch.softmax(scores / temperature, dim=-1)
    sorted_probs, order = probs.sort(descending=True)
    # Nucleus: keep the smallest set of tokens whose probability reaches TOP_P (the first one always).
    outside = sorted_probs.cumsum(-1) - sorted_probs > TOP_P
    sorted_probs[outside] = 0.0
    return int(order[torch.multinomial(sorted_probs, 1)])


def _finish(row: Row, error: BaseException | None = None) -> None:
    """End a row once: show its processor the whole answer, count its tokens, close its stream."""
    if row.done:
        return
    row.done = True
    events = row.events
    if error is None and row.row_processor is not None and hasattr(row.row_processor, "observe"):
        try:  # the last token never reached the processor's __call__
            row.row_processor.observe(torch.tensor(row.generated, dtype=torch.long))
        except BaseException as e:  # noqa: BLE001
            error = e
    if error is None:
        tail = row.text.delta(row.generated) if row.text else ""
        if tail:
            events.put(("text", tail))
    ended = bool(row.generated) and row.generated[-1] in row.stop_ids | set(getattr(row.row_processor, "eos_ids", ()))
    row.stats.tokens = len(row.generated) - (1 if ended else 0)
    events.put(("error", error) if error is not None else ("end", None))


def _device(model) -> torch.device:
    return getattr(model, "device", None) or next(model.parameters()).device
