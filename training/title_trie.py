"""The catalog as a token trie: every book line "Title - Author" the way a model writes it after "1.".

    trie = TitleTrie.build(tokenizer, catalog_entries(db, language="ko"))   # 100,000 books: a few seconds
    small = trie.restrict([12, 40, 77])                                     # a request's candidates

Used by the constrained decoder (training/constrained.py), which walks it one generated token at a time.
The trie is arrays, built with numpy from the sorted entries (no dict per node): 100,000 Korean and English
books are ~900,000 nodes, which dicts would keep in ~5x the memory (bench/bench_constrained.py).
"""
from __future__ import annotations

import bisect
import logging
import re
from itertools import chain
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select

from db.engine import Database
from db.models import Book
from training.token_text import LINE_BREAKS, TokenVocabulary, token_vocabulary

log = logging.getLogger(__name__)

NUMBER_CONTEXT = "1."  # entries are tokenized after a list number, as the model meets them
_BREAK = re.compile(f"[{LINE_BREAKS}]")


class TitleTrie:
    """Token trie over catalog entries as the model writes them after a list number.

    Node 0 is the root; the edges of node n are child_token[s:e] / child_node[s:e] with s, e = children(n),
    sorted by token; node_count[n] is how many entries pass through n; node_entry[n] the entry ending at n.
    """

    def __init__(self, vocab: TokenVocabulary, lines: list[str], book_ids: Sequence[int],
                 sequences: Sequence[Sequence[int]]):
        self.vocab = vocab
        self.lines = list(lines)
        self.book_ids = np.asarray(book_ids, dtype=np.int64)
        self.entries_of: dict[int, list[int]] = {}
        for i, b in enumerate(self.book_ids.tolist()):
            self.entries_of.setdefault(b, []).append(i)
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        self._offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self._offsets[1:])
        self._flat = np.fromiter(chain.from_iterable(sequences), dtype=np.int64, count=int(self._offsets[-1]))
        self._build_nodes(lengths)

    # -- construction -----------------------------------------------------------------------------------------

    @classmethod
    def build(cls, tokenizer, entries: Iterable[tuple[int, str]]) -> "TitleTrie":
        """A trie of (book_id, "Title - Author") entries. An entry the tokenizer cannot write faithfully
        (decoding its tokens gives other text, unknown or special tokens, a line break inside) is skipped with a
        logged warning."""
        vocab = token_vocabulary(tokenizer)
        ids, lines = [], []
        for book_id, line in entries:
            line = line.strip()
            if not line or _BREAK.search(line):
                log.warning("Constrained decoding skips book %s: its line %r is empty or spans lines.", book_id, line)
                continue
            ids.append(int(book_id))
            lines.append(line)
        if not lines:
            return cls(vocab, [], [], [])
        context = tokenizer.encode(NUMBER_CONTEXT, add_special_tokens=False)
        encoded = _encode(tokenizer, [f"{NUMBER_CONTEXT} {line}\n" for line in lines])
        sequences = [e[len(context):] for e in encoded]
        decoded = _decode(tokenizer, sequences)
        special = set(getattr(tokenizer, "all_special_ids", ()))
        # Added tokens only where they are special: Gemma's "\n" (and other whitespace runs) are added tokens too.
        special.update(i for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()
                       if getattr(t, "special", True))
        if tokenizer.unk_token_id is not None:
            special.add(tokenizer.unk_token_id)
        keep = []
        for i, (enc, seq, text) in enumerate(zip(encoded, sequences, decoded)):
            problem = None
            if enc[:len(context)] != context:
                problem = f"its first token merges with the list number {NUMBER_CONTEXT!r}"
            elif text != f" {lines[i]}\n":
                problem = f"the tokenizer writes it back as {text.strip()!r}"
            elif not special.isdisjoint(seq):
                problem = "it needs unknown or special tokens"
            if problem:
                log.warning("Constrained decoding skips book %s (%r): %s.", ids[i], lines[i], problem)
            else:
                keep.append(i)
        return cls(vocab, [lines[i] for i in keep], [ids[i] for i in keep], [sequences[i] for i in keep])

    def restrict(self, book_ids: Iterable[int]) -> "TitleTrie":
        """A small trie of these books only (a request's candidates); ids not in this trie are ignored."""
        picked = sorted({i for b in book_ids for i in self.entries_of.get(int(b), ())})
        return TitleTrie(self.vocab, [self.lines[i] for i in picked], [int(self.book_ids[i]) for i in picked],
                         [self.tokens(i) for i in picked])

    def _build_nodes(self, lengths: np.ndarray) -> None:
        """The trie of the sorted entries, in numpy. Sorted, entry r adds one node per token past its longest
        common prefix (lcp) with entry r-1; numbering those nodes in order gives a pre-order, so each parent
        precedes its children and a node's children are created in token order."""
        n = len(lengths)
        width = int(lengths.max()) if n else 0
        rows = np.repeat(np.arange(n), lengths)
        cols = np.arange(len(self._flat)) - np.repeat(self._offsets[:-1], lengths)
        padded = np.full((n, width), -1, dtype=np.int64)  # -1 after the end: a prefix sorts first
        padded[rows, cols] = self._flat
        order = np.lexsort(padded.T[::-1]) if n else np.zeros(0, dtype=np.int64)
        padded, lens = padded[order], lengths[order]
        lcp = np.zeros(n, dtype=np.int64)
        if n > 1:
            differ = padded[1:] != padded[:-1]
            first_difference = np.where(differ.any(axis=1), differ.argmax(axis=1), width)
            lcp[1:] = np.minimum(first_difference, lens[1:])
        new = lens - lcp                                    # nodes entry r adds
        base = 1 + np.cumsum(new) - new                    # id of its first new node
        n_nodes = 1 + int(new.sum())
        node_rank = np.repeat(np.arange(n), new)
        node_depth = np.arange(n_nodes - 1) - np.repeat(base - 1, new) + np.repeat(lcp, new)
        token = padded[node_rank, node_depth]
        parent = np.arange(n_nodes - 1, dtype=np.int64)     # node id - 1: the node above, added by the same entry
        # An entry's first new node hangs from its lcp-1 deep node, added by the last earlier entry whose own
        # new nodes start no deeper than that (a "previous smaller value" stack; one Python step per entry).
        first_parent = np.zeros(n, dtype=np.int64)
        stack: list[int] = []
        lcp_list, base_list = lcp.tolist(), base.tolist()
        for r in range(n):
            d = lcp_list[r]
            while stack and lcp_list[stack[-1]] >= d:
                stack.pop()
            if d > 0:  # entry 0 (lcp 0) or a later lcp-0 entry is always left on the stack
                j = stack[-1]
                first_parent[r] = base_list[j] + (d - 1 - lcp_list[j])
            stack.append(r)
        has_new = new > 0
        parent[base[has_new] - 1] = first_parent[has_new]
        # Where each entry ends: its last new node, or (a duplicate line) the previous entry's end.
        end_node = np.where(has_new, base + new - 1, 0)
        for r in np.flatnonzero(~has_new).tolist():
            end_node[r] = end_node[r - 1]
        # Entry counts: one per ending entry, summed up the tree deepest level first.
        count = np.bincount(end_node, minlength=n_nodes).astype(np.int64)
        depth = np.concatenate([[-1], node_depth])
        parent_of = np.concatenate([[0], parent])           # by node id
        for d in range(width - 1, -1, -1):
            at = np.flatnonzero(depth == d)
            np.add.at(count, parent_of[at], count[at])
        parents = parent_of[1:]
        children = np.argsort(parents, kind="stable") + 1   # stable: children stay in token order
        self.child_node = children.astype(np.int32)
        self.child_token = np.concatenate([[-1], token])[children]  # int64: it indexes the logits
        self.child_start = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(parents, minlength=n_nodes), out=self.child_start[1:])
        self.node_count = count.astype(np.int32)
        self.node_entry = np.full(n_nodes, -1, dtype=np.int32)
        self._more_entries: dict[int, list[int]] = {}  # two books with the very same line (rare)
        for r in np.flatnonzero(~has_new).tolist():
            self._more_entries.setdefault(int(end_node[r]), []).append(int(order[r]))
        self.node_entry[end_node[has_new]] = order[has_new]

    # -- lookups ----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of entries (lines) in the trie."""
        return len(self.lines)

    @property
    def book_count(self) -> int:
        return len(self.entries_of)

    @property
    def node_total(self) -> int:
        return len(self.node_count)

    @property
    def nbytes(self) -> int:
        """Memory of the arrays (nodes and entry tokens), without the lines' text."""
        arrays = (self.child_node, self.child_token, self.child_start, self.node_count, self.node_entry,
                  self._flat, self._offsets, self.book_ids)
        return sum(a.nbytes for a in arrays)

    def children(self, node: int) -> tuple[int, int]:
        """The edge range [start, end) of a node: child_token[start:end], child_node[start:end]."""
        return int(self.child_start[node]), int(self.child_start[node + 1])

    def edge(self, node: int, token: int) -> int:
        """Index of the edge from `node` by `token`, or -1."""
        start, end = self.children(node)
        j = bisect.bisect_left(self.child_token, token, start, end)
        return j if j < end and int(self.child_token[j]) == token else -1

    def terminal_entries(self, node: int) -> list[int]:
        """Entries whose line ends at `node` (usually none or one)."""
        first = int(self.node_entry[node])
        return [] if first < 0 else [first, *self._more_entries.get(node, ())]

    def path_edges(self, entry: int) -> list[tuple[int, int]]:
        """(parent node, edge index) along an entry's path from the root."""
        node, out = 0, []
        for tok in self.tokens(entry):
            j = self.edge(node, tok)
            out.append((node, j))
            node = int(self.child_node[j])
        return out

    def tokens(self, entry: int) -> list[int]:
        return self._flat[self._offsets[entry]:self._offsets[entry + 1]].tolist()


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # the Rust tokenizer itself: transformers' per-item wrapping costs ~10x more here
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # _fast: no character offsets
        return [e.ids for e in encode(texts, add_special_tokens=False)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _decode(tokenizer, sequences: list[list[int]]) -> list[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return backend.decode_batch(sequences, skip_special_tokens=False)
    return tokenizer.batch_decode(sequences, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def catalog_entries(db: Database, language: str | None = None) -> list[tuple[int, str]]:
    """(book id, "Title - Author") for every book of the catalog (or of one language), as an answer names it."""
    query = select(Book.id, Book.title, Book.author).order_by(Book.id)
    if language:
        query = query.where(Book.language == language)
    with db.session() as s:
        return [(book_id, f"{title} - {author}") for book_id, title, author in s.execute(query)]
