"""The catalog as a token trie: every book line "Title - Author" the way a model writes it after "1.".

    trie = TitleTrie.build(tokenizer, catalog_entries(db, language="ko"))   # 100,000 books: a few seconds
    small = trie.restrict([12, 40, 77])                                     # a request's candidates

Used by the constrained decoder (training/constrained.py), which walks it one generated token at a time.
"""
from __future__ import annotations

import bisect
import logging
from array import array
from typing import Iterable, Sequence

import numpy as np
from sqlalchemy import select

from db.engine import Database
from db.models import Book
from training.token_text import LINE_BREAKS, TokenVocabulary, token_vocabulary

log = logging.getLogger(__name__)

NUMBER_CONTEXT = "1."  # entries are tokenized after a list number, as the model meets them


class TitleTrie:
    """Token trie over catalog entries as the model writes them after a list number.

    Stored as arrays (children of a node are contiguous and sorted by token), not a dict per node: 100,000
    Korean and English entries are ~2.5M nodes, which dicts would hold in a gigabyte.
    """

    def __init__(self, vocab: TokenVocabulary, lines: list[str], book_ids: Sequence[int],
                 sequences: Sequence[Sequence[int]]):
        self.vocab = vocab
        self.lines = lines
        self.book_ids = np.asarray(book_ids, dtype=np.int64)
        self._sequences = [tuple(s) for s in sequences]
        self.entries_of: dict[int, list[int]] = {}
        for i, b in enumerate(book_ids):
            self.entries_of.setdefault(int(b), []).append(i)
        self._build_nodes()

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
            if not line or any(c in LINE_BREAKS for c in line):
                log.warning("Constrained decoding skips book %s: its line %r is empty or spans lines.", book_id, line)
                continue
            ids.append(int(book_id))
            lines.append(line)
        context = tokenizer.encode(NUMBER_CONTEXT, add_special_tokens=False)
        if not lines:
            return cls(vocab, [], [], [])
        encoded = tokenizer([f"{NUMBER_CONTEXT} {line}\n" for line in lines], add_special_tokens=False)["input_ids"]
        sequences = [e[len(context):] for e in encoded]
        decoded = tokenizer.batch_decode(sequences, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        special = set(getattr(tokenizer, "all_special_ids", ()))
        special.update(getattr(tokenizer, "added_tokens_decoder", {}).keys())
        if tokenizer.unk_token_id is not None:
            special.add(tokenizer.unk_token_id)
        keep_ids, keep_lines, keep_seqs = [], [], []
        for book_id, line, enc, seq, text in zip(ids, lines, encoded, sequences, decoded):
            problem = None
            if enc[:len(context)] != context:
                problem = f"its first token merges with the list number {NUMBER_CONTEXT!r}"
            elif text != f" {line}\n":
                problem = f"the tokenizer writes it back as {text.strip()!r}"
            elif special.intersection(seq):
                problem = "it needs unknown or special tokens"
            if problem:
                log.warning("Constrained decoding skips book %s (%r): %s.", book_id, line, problem)
                continue
            keep_ids.append(book_id)
            keep_lines.append(line)
            keep_seqs.append(seq)
        return cls(vocab, keep_lines, keep_ids, keep_seqs)

    def restrict(self, book_ids: Iterable[int]) -> "TitleTrie":
        """A small trie of these books only (a request's candidates); ids not in this trie are ignored."""
        picked = sorted({i for b in book_ids for i in self.entries_of.get(int(b), ())})
        return TitleTrie(self.vocab, [self.lines[i] for i in picked], [int(self.book_ids[i]) for i in picked],
                         [self._sequences[i] for i in picked])

    def _build_nodes(self) -> None:
        """Sorted entries make a trie in one pass: each entry adds nodes below its longest common prefix with
        the previous entry, nodes are numbered in pre-order, and a node's subtree is a contiguous run of
        entries (so its entry count is where the run ends minus where it starts)."""
        order = sorted(range(len(self._sequences)), key=self._sequences.__getitem__)
        parent, token, first, count = array("q", [-1]), array("q", [-1]), array("q", [0]), array("q", [0])
        self._terminal: dict[int, list[int]] = {}
        path = [0]
        prev: tuple[int, ...] = ()
        for rank, i in enumerate(order):
            seq = self._sequences[i]
            common = 0
            limit = min(len(prev), len(seq))
            while common < limit and prev[common] == seq[common]:
                common += 1
            for node in path[common + 1:]:  # subtrees the sorted order has left for good
                count[node] = rank - first[node]
            del path[common + 1:]
            for tok in seq[common:]:
                node = len(parent)
                parent.append(path[-1])
                token.append(tok)
                first.append(rank)
                count.append(0)
                path.append(node)
            self._terminal.setdefault(path[-1], []).append(i)
            prev = seq
        for node in path[1:]:
            count[node] = len(order) - first[node]
        count[0] = len(order)
        n_nodes = len(parent)
        parents = np.frombuffer(parent, dtype=np.int64)[1:]
        # Stable sort by parent keeps each node's children in token order (pre-order created them that way).
        children = np.argsort(parents, kind="stable") + 1
        self.child_node = children.astype(np.int64)
        self.child_token = np.frombuffer(token, dtype=np.int64)[children].copy()
        self.child_start = np.zeros(n_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(parents, minlength=n_nodes), out=self.child_start[1:])
        self.node_count = np.frombuffer(count, dtype=np.int64).copy()

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

    def children(self, node: int) -> tuple[int, int]:
        """The edge range [start, end) of a node: child_token[start:end], child_node[start:end]."""
        return int(self.child_start[node]), int(self.child_start[node + 1])

    def edge(self, node: int, token: int) -> int:
        """Index of the edge from `node` by `token`, or -1."""
        start, end = self.children(node)
        j = bisect.bisect_left(self.child_token, token, start, end)
        return j if j < end and int(self.child_token[j]) == token else -1

    def terminal_entries(self, node: int) -> list[int]:
        return self._terminal.get(node, [])

    def path_edges(self, entry: int) -> list[tuple[int, int]]:
        """(parent node, edge index) along an entry's path from the root."""
        node, out = 0, []
        for tok in self._sequences[entry]:
            j = self.edge(node, tok)
            out.append((node, j))
            node = int(self.child_node[j])
        return out

    def tokens(self, entry: int) -> tuple[int, ...]:
        return self._sequences[entry]



def catalog_entries(db: Database, language: str | None = None) -> list[tuple[int, str]]:
    """(book id, "Title - Author") for every book of the catalog (or of one language), as an answer names it."""
    query = select(Book.id, Book.title, Book.author).order_by(Book.id)
    if language:
        query = query.where(Book.language == language)
    with db.session() as s:
        return [(book_id, f"{title} - {author}") for book_id, title, author in s.execute(query)]
