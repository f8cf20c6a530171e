"""Catalog-constrained decoding: a local model names only catalog books, each at most once, and N of them.

    trie = TitleTrie.build(tokenizer, catalog_entries(db, language="en"))      # once per catalog and tokenizer
    rows = [RowConstraint(trie.restrict(candidate_ids), tokenizer, n_books=3, eos_token_id=stop_token_ids(tokenizer)),
            None]                                                              # row 2 decodes freely
    processor = ConstrainedLogitsProcessor(rows, prompt_length=inputs["input_ids"].shape[1])  # left-padded batch
    out = model.generate(**inputs, logits_processor=[processor])
    processor.finish(out)              # the last token never reaches a processor: show it to the rows
    rows[0].named_books, rows[0].cut_short                                     # [book ids, in order], False

    python -m training.constrained --language ko "불안한 직장인에게 위로가 되는 책 3권을 추천해줘."   # base model, printed

The answer format is the samples' (datagen/prompts.format_book), one book per numbered line:

    1. Title - Author
     - Why this book: ...
     - How it may help: ...

Each answer is followed by one RowConstraint, a small state machine fed the answer's tokens one at a time:

- **list number** — the answer opens with "1." (`force_list_start`, the default: an untrained base model
  writes prose otherwise, see bench/results/constrained_cpu.txt). Later, a digit at the start of a line can only
  begin the next number "k." (parse_books reads any line starting with a number as a list item).
- **title mode** — right after "k." the model can write only a path of the trie: the tokenizer's own
  tokenization of " Title - Author\\n" of a catalog entry the answer has not named yet (the space is the one the
  tokenizer puts before a word, the newline ends the line, so an entry is never a prefix of another). Only
  canonical tokenizations are in the trie: a model trained on the format writes those.
- **fields** — the reason and the effect are free text. After `field_lines` non-blank lines (2: reason, effect),
  or 2·field_lines + 1 line breaks of any kind (a model stuck on blank lines), the next line must be the next
  number; until the N-th book, end-of-sequence is not allowed.
- **after the N-th book** — its fields are free, no line may start with a digit (no item N+1), end-of-sequence
  is allowed once the last of its `field_lines` lines has begun (the answer may end on it; a fine-tuned model
  that stopped after the last book's first line left it without its effect), and once they have ended it is
  the only choice. A trie with fewer unnamed books
  than N (few candidates, a tiny catalog) makes the list shorter, never a hang.

End-of-sequence is never allowed inside a number or a title. A book already named is excluded per answer
without touching the shared trie: each node counts the entries below it, the row subtracts its named ones.
"""
from __future__ import annotations

import argparse
import logging
from typing import Sequence

import numpy as np
import torch
from transformers import LogitsProcessor

from training.title_trie import TitleTrie, catalog_entries
from training.token_text import advance_lines, split_lines, token_vocabulary

__all__ = ["ConstrainedLogitsProcessor", "RowConstraint", "TitleTrie", "catalog_entries"]

log = logging.getLogger(__name__)
NEG_INF = float("-inf")


class RowConstraint:
    """The state of ONE answer being generated. Called once per generated token, in order.

    `generated` is the row's generated tokens so far (prompt excluded, no padding); the call updates the state
    with the tokens it has not seen and masks `scores` (1-D logits over the vocabulary) in place.
    """

    def __init__(self, trie: TitleTrie, tokenizer, *, n_books: int, eos_token_id: int | Sequence[int],
                 force_list_start: bool = True, field_lines: int = 2):
        vocab = token_vocabulary(tokenizer)
        if vocab.fingerprint != trie.vocab.fingerprint:
            raise ValueError("The title trie was built with another tokenizer than this model's.")
        if n_books < 1 or field_lines < 0:
            raise ValueError(f"n_books must be >= 1 and field_lines >= 0 (got {n_books}, {field_lines}).")
        self.trie, self.vocab = trie, vocab
        self.requested_books = n_books
        self.n_books = min(n_books, trie.book_count)  # fewer candidates than N: a shorter list, not a hang
        self.field_lines = field_lines
        eos = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.eos_ids = sorted({int(i) for i in eos})
        if not self.eos_ids:
            raise ValueError("RowConstraint needs at least one end-of-sequence token id.")
        self.named_books: list[int] = []
        self.off_track = False
        self._named_entries: set[int] = set()
        self._excluded: dict[int, dict[int, int]] = {}  # parent node -> {edge: named entries below it}
        self._available = len(trie)
        self._consumed = 0
        self._line_has_text = False
        self._item_lines = 0
        self._item_breaks = 0
        self._number_left = ""
        self._node = 0
        self._list_started = False
        self.state = "prelude"
        if self._list_complete:
            self.state = "done"
        elif force_list_start:
            self._start_number("")

    # -- what the engine reads --------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """Nothing but end-of-sequence can follow (or it has been generated)."""
        return self.state in ("done", "ended")

    @property
    def cut_short(self) -> bool:
        """If generation stopped here: the list has begun and lacks books, or a number or title is unfinished
        (max_new_tokens ran out). Read it after generation."""
        return self.state in ("number", "title") or (self._list_started and not self._list_complete)

    @property
    def _fields_over(self) -> bool:
        """At a line start: this book's fields have had their lines."""
        return not self._line_has_text and (self._item_lines >= self.field_lines
                                            or self._item_breaks >= 2 * self.field_lines + 1)

    @property
    def _fields_written(self) -> bool:
        """This book's field lines are all there, the one being written included: the answer may end here."""
        return (self._item_lines + int(self._line_has_text) >= self.field_lines
                or self._item_breaks >= 2 * self.field_lines + 1)

    @property
    def _list_complete(self) -> bool:
        return len(self.named_books) >= self.n_books or self._available <= 0

    # -- the step ---------------------------------------------------------------------------------------------

    def __call__(self, generated: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.observe(generated)
        return self._mask(scores)

    def observe(self, generated: torch.LongTensor | Sequence[int]) -> None:
        """Update the state with the tokens of `generated` not seen yet. generate() does not call processors
        after the last token, so call this with the final tokens before reading named_books or cut_short."""
        n = len(generated)
        if n < self._consumed:
            raise ValueError("A RowConstraint follows one answer: `generated` got shorter. Make one per answer.")
        new = generated[self._consumed:]
        for tok in new.tolist() if isinstance(new, torch.Tensor) else new:
            self._advance(int(tok))
        self._consumed = n

    def _advance(self, tok: int) -> None:
        if self.state == "ended" or self.off_track:
            return  # after EOS a finished row in a batch is fed padding
        if tok in self.eos_ids:
            self.state = "ended"
            return
        text = self.vocab.texts[tok] if tok < len(self.vocab) else ""
        if self.state == "number":
            if text and self._number_left.startswith(text):
                self._number_left = self._number_left[len(text):]
                if not self._number_left:
                    self.state, self._node = "title", 0
            else:
                self._lose_track(tok, "a list number")
        elif self.state == "title":
            j = self.trie.edge(self._node, tok)
            if j < 0 or self._remaining_below(self._node, j) <= 0:
                self._lose_track(tok, "a title")
                return
            self._node = int(self.trie.child_node[j])
            ends_here = [e for e in self.trie.terminal_entries(self._node) if e not in self._named_entries]
            if ends_here:
                # Books sharing this exact line go too: the answer would show the same line twice.
                self._name_book(int(self.trie.book_ids[ends_here[0]]), also=ends_here)
        elif self.state == "done":
            self._lose_track(tok, "the end of the list")
        elif tok >= len(self.vocab):  # a padding row of the model's embedding, beyond the tokenizer: no text
            return
        else:  # prelude or fields: free text, watched for line starts
            if self.vocab.starts_digit[tok] and not self._line_has_text:
                head = split_lines(text)[0].lstrip()
                marker = f"{len(self.named_books) + 1}."
                if marker.startswith(head) and not self._list_complete:
                    self._start_number(head)
                else:
                    self._lose_track(tok, "a line start")
                return
            if not self.vocab.has_break[tok]:
                self._line_has_text = self._line_has_text or bool(self.vocab.has_text[tok])
                return
            ended, breaks, self._line_has_text = advance_lines(text, self._line_has_text)
            if self.state == "fields":
                self._item_lines += ended
                self._item_breaks += breaks
                if self._list_complete and self._fields_over:
                    self.state = "done"

    def _start_number(self, written: str) -> None:
        self._list_started = True
        self._number_left = f"{len(self.named_books) + 1}."[len(written):]
        self.state = "number"
        if not self._number_left:
            self.state, self._node = "title", 0

    def _name_book(self, book_id: int, also: Sequence[int] = ()) -> None:
        self.named_books.append(book_id)
        for entry in [*self.trie.entries_of[book_id], *also]:
            if entry in self._named_entries:
                continue
            self._named_entries.add(entry)
            self._available -= 1
            for parent, edge in self.trie.path_edges(entry):
                below = self._excluded.setdefault(parent, {})
                below[edge] = below.get(edge, 0) + 1
        # The entry ended with its line break: the book's fields start on a fresh line.
        self.state, self._line_has_text, self._item_lines, self._item_breaks = "fields", False, 0, 0
        if self._list_complete and self._fields_over:
            self.state = "done"

    def _remaining_below(self, node: int, edge: int) -> int:
        child = int(self.trie.child_node[edge])
        return int(self.trie.node_count[child]) - self._excluded.get(node, {}).get(edge, 0)

    def _lose_track(self, tok: int, where: str) -> None:
        # Only when something overrode the mask (another processor left no allowed token, or the caller ignored
        # the returned scores). The rest of the answer is left unconstrained rather than failing the request.
        self.off_track = True
        log.warning("Constrained decoding lost track at %s (token %d %r); the rest of this answer is free.",
                    where, tok, self.vocab.texts[tok] if tok < len(self.vocab) else "?")

    # -- masks ------------------------------------------------------------------------------------------------

    def _mask(self, scores: torch.Tensor) -> torch.Tensor:
        state = self.state
        if state == "ended" or self.off_track:
            return scores
        if state == "done":
            return _keep_only(scores, self._cached_ids(("eos", tuple(self.eos_ids)), lambda: self.eos_ids, scores))
        if state == "number":
            return _keep_only(scores, self._number_ids(self._number_left, scores))
        if state == "title":
            return _keep_only(scores, self._title_ids(scores.device))
        complete = self._list_complete
        # The last book gets its field lines like the others (a fine-tuned model tended to stop after its
        # first line); then the answer may end.
        eos_allowed = state == "prelude" or (complete and self._fields_written)
        if not self._line_has_text:
            if state == "fields" and not complete and self._fields_over:
                return _keep_only(scores, self._number_ids(f"{len(self.named_books) + 1}.", scores))
            number = None if complete else len(self.named_books) + 1
            return _ban(scores, self._banned(True, number, eos_allowed, scores))
        return _ban(scores, self._banned(False, None, eos_allowed, scores))

    def _title_ids(self, device) -> torch.Tensor:
        start, end = self.trie.children(self._node)
        ids = self.trie.child_token[start:end]
        below = self._excluded.get(self._node)
        if below:
            keep = np.ones(end - start, dtype=bool)
            for edge, named in below.items():
                if int(self.trie.node_count[self.trie.child_node[edge]]) - named <= 0:
                    keep[edge - start] = False
            ids = ids[keep]
        return torch.from_numpy(np.ascontiguousarray(ids)).to(device)

    def _number_ids(self, left: str, scores: torch.Tensor) -> torch.Tensor:
        """Tokens that write the next part of a list number ("2." may come as "2" then ".")."""
        return self._cached_ids(("number", left), lambda: self.vocab.ids_spelling_prefix_of(left), scores)

    def _cached_ids(self, key, make_ids, scores: torch.Tensor) -> torch.Tensor:
        return self.vocab.cached(("ids", key, str(scores.device)),
                                 lambda: torch.tensor(sorted(make_ids()), dtype=torch.long, device=scores.device))

    def _banned(self, line_start: bool, number: int | None, eos_allowed: bool,
                scores: torch.Tensor) -> torch.Tensor:
        """Ids of the tokens banned in free text (a few: filling them is cheaper than masking the vocabulary).
        At a line start a digit may only begin list number `number` (None: no digit at all, the list is
        complete); mid-line only tokens hiding a numbered line are banned."""
        key = ("ban", line_start, number, eos_allowed, tuple(self.eos_ids), scores.shape[-1], str(scores.device))
        return self.vocab.cached(key, lambda: self._make_banned(line_start, number, eos_allowed, scores))

    def _make_banned(self, line_start: bool, number: int | None, eos_allowed: bool,
                     scores: torch.Tensor) -> torch.Tensor:
        v = self.vocab
        ban = np.zeros(scores.shape[-1], dtype=bool)
        n = min(len(v), len(ban))
        ban[:n] = v.digit_after_break[:n]  # "\n2" inside one token would open an item behind our back
        if line_start:
            ban[:n] |= v.starts_digit[:n]
            if number is not None:
                marker = f"{number}."
                for i in np.flatnonzero(v.starts_digit[:n]):
                    head = v.texts[i].lstrip()
                    if not v.has_break[i] and marker.startswith(head):
                        ban[i] = False
        if not eos_allowed:
            ban[[i for i in self.eos_ids if i < len(ban)]] = True
        return torch.from_numpy(np.flatnonzero(ban)).to(scores.device)


def _cpu_view(scores: torch.Tensor) -> np.ndarray | None:
    """The logits as a numpy array sharing their memory, for CPU float32 logits (what generate() passes).

    numpy works on the calling thread; torch splits a fill over the whole vocabulary across its intra-op threads
    and waits for all of them, which costs milliseconds per call when other processes hold the cores."""
    if scores.device.type == "cpu" and scores.dtype == torch.float32 and scores.is_contiguous():
        return scores.detach().numpy()
    return None


def _keep_only(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Set every logit but `ids` to -inf. If an earlier processor (no_repeat_ngram_size, bad words) banned all
    of them, they stay allowed at equal scores rather than all -inf (NaN when sampling)."""
    arr = _cpu_view(scores)
    if arr is not None:
        idx = ids.numpy()
        kept = arr[idx]
        if not np.isfinite(kept).any():
            kept[:] = 0.0
        arr.fill(NEG_INF)
        arr[idx] = kept
        return scores
    kept = scores[ids]
    kept = torch.where(torch.isfinite(kept).any(), kept, torch.zeros_like(kept))  # no host sync on a GPU
    scores.fill_(NEG_INF)
    scores[ids] = kept
    return scores


def _ban(scores: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    arr = _cpu_view(scores)
    if arr is not None:
        arr[ids.numpy()] = NEG_INF
        return scores
    return scores.index_fill_(-1, ids, NEG_INF)


class ConstrainedLogitsProcessor(LogitsProcessor):
    """Applies one RowConstraint (or None = free) per batch row; for plain
    `model.generate(..., logits_processor=[ConstrainedLogitsProcessor(rows, prompt_length)])`.

    Rows are left-padded prompts of width `prompt_length`, so row i has generated input_ids[i, prompt_length:].
    Greedy or sampling with one sequence per row (no beams, num_return_sequences=1).
    """

    def __init__(self, rows: list[RowConstraint | None], prompt_length: int):
        self.rows = list(rows)
        self.prompt_length = int(prompt_length)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[0] != len(self.rows):
            raise ValueError(f"ConstrainedLogitsProcessor has {len(self.rows)} rows but the batch has "
                             f"{input_ids.shape[0]} (beam search and num_return_sequences > 1 are not supported).")
        generated = input_ids[:, self.prompt_length:]
        if generated.device.type != "cpu":
            generated = generated.cpu()  # one device-to-host copy per step for every row's bookkeeping
        for i, row in enumerate(self.rows):
            if row is not None:
                out = row(generated[i], scores[i])
                if out.data_ptr() != scores[i].data_ptr():  # RowConstraint masks in place; another may not
                    scores[i] = out
        return scores

    def finish(self, sequences: torch.LongTensor) -> None:
        """Show every row the tokens generate() returned (the last one was never passed to a processor)."""
        generated = sequences[:, self.prompt_length:].cpu()
        for i, row in enumerate(self.rows):
            if row is not None:
                row.observe(generated[i])


def main(argv: list[str] | None = None) -> None:
    """Print the base model's constrained answer to a request (a quick look at what the processor does)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("request", help="the user's request, as typed")
    parser.add_argument("--language", choices=("ko", "en"), default="en", help="which catalog the titles come from")
    parser.add_argument("--n-books", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--base-model", default="smollm2-135m")
    parser.add_argument("--no-list-start", action="store_true", help="do not force the answer to open with '1.'")
    args = parser.parse_args(argv)

    from transformers import AutoModelForCausalLM

    from datagen.catalog import count_books, load_builtin_catalog
    from db.engine import open_db
    from training.base_model import load_tokenizer, resolve_base_model, stop_token_ids

    db = open_db()
    if not count_books(db):
        load_builtin_catalog(db)
    path = resolve_base_model(args.base_model)
    tok = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    trie = TitleTrie.build(tok, catalog_entries(db, args.language))
    row = RowConstraint(trie, tok, n_books=args.n_books, eos_token_id=stop_token_ids(tok),
                        force_list_start=not args.no_list_start)
    inputs = tok.apply_chat_template([{"role": "user", "content": args.request}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    width = inputs["input_ids"].shape[1]
    processor = ConstrainedLogitsProcessor([row], width)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=args.max_new_tokens, do_sample=False,
                             eos_token_id=stop_token_ids(tok), pad_token_id=tok.pad_token_id,
                             logits_processor=[processor])
    processor.finish(out)
    print(tok.decode(out[0, width:], skip_special_tokens=True))
    print(f"\n[named book ids: {row.named_books}; cut short: {row.cut_short}]")


if __name__ == "__main__":
    main()
