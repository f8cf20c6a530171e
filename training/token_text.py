"""What each token of a tokenizer writes, computed once per tokenizer, for decoders that reason about text.

    vocab = token_vocabulary(tokenizer)      # cached per tokenizer object: ~0.2 s for SmolLM2's 49,152 tokens
    vocab.texts[198]                         # '\\n'
    vocab.starts_digit[33]                   # True: '1' at the start of a line begins a list number

Constrained decoding (training/constrained.py) needs, at every step, the set of tokens that would start a
line with a digit or end a line. Computing that from the strings per step would be O(vocab) Python work, so
the per-token facts are computed here once, as numpy arrays that become torch masks.

A byte-level BPE token (SmolLM2, Qwen, GPT-2) may hold part of a UTF-8 character (one byte of a Hangul
syllable): its text has U+FFFD where the partial bytes are. That is enough for what we ask of it (line
breaks, digits and whitespace are whole ASCII characters, never split across tokens).
"""
from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

# The line breaks str.splitlines() knows: parse_books (datagen/validation.py) splits answers with it.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
_BREAK = re.compile(f"[{LINE_BREAKS}]")


def split_lines(text: str) -> list[str]:
    """The pieces of `text` between line breaks ("a\\nb" -> ["a", "b"]; "\\n" -> ["", ""])."""
    return _BREAK.split(text)


def advance_lines(text: str, line_has_text: bool) -> tuple[int, int, bool]:
    """Feed `text` to a line counter: (non-blank lines it ended, line breaks in it, whether the line now open
    has text)."""
    ended = breaks = 0
    for i, part in enumerate(split_lines(text)):
        if i:
            ended += line_has_text
            breaks += 1
            line_has_text = False
        if part.strip():
            line_has_text = True
    return ended, breaks, line_has_text


def opens_with_digit(text: str) -> bool:
    # parse_books reads a line as a list item when it matches ^\s*\d+[.)]; \d is str.isdecimal().
    head = text.lstrip()
    return bool(head) and head[0].isdecimal()


@lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, inverted (what byte-level BPE token strings are spelled in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _texts_byte_level(tokenizer, size: int) -> list[str] | None:
    """Per-token text straight from the byte-level BPE spellings (fast, exact bytes); None if not byte-level."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or type(backend.decoder).__name__ != "ByteLevel":
        return None
    # Spelling character -> the byte it stands for, as a latin-1 character: str.translate does the loop in C.
    to_latin1 = str.maketrans({c: chr(b) for c, b in _byte_decoder().items()})
    added = {i: t.content for i, t in getattr(tokenizer, "added_tokens_decoder", {}).items()}
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    try:
        return [added[i] if i in added else
                "" if piece is None else
                piece.translate(to_latin1).encode("latin-1").decode("utf-8", errors="replace")
                for i, piece in enumerate(pieces)]
    except UnicodeEncodeError:  # a piece not spelled in the byte alphabet: not plain byte-level BPE after all
        return None


def _texts_decoded(tokenizer, size: int) -> list[str]:
    """Per-token text by decoding each token after an anchor token, so decoders that strip a leading space
    from the first token (SentencePiece's '▁') keep it; works for any tokenizer, ~1.5 s for 50k tokens."""
    anchor = tokenizer.encode("a", add_special_tokens=False)
    prefix = tokenizer.decode(anchor, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    decoded = tokenizer.batch_decode([anchor + [i] for i in range(size)], skip_special_tokens=False,
                                     clean_up_tokenization_spaces=False)
    return [d[len(prefix):] if d.startswith(prefix) else d for d in decoded]


@dataclass
class TokenVocabulary:
    """Per-token text and the line facts constrained decoding asks of every token, as arrays over token ids."""

    texts: list[str]
    starts_digit: np.ndarray = field(init=False)      # first line of the token, stripped, begins with a digit
    digit_after_break: np.ndarray = field(init=False)  # a line inside the token begins with a digit ("\n2")
    has_break: np.ndarray = field(init=False)
    has_text: np.ndarray = field(init=False)           # something besides whitespace
    by_text: dict[str, list[int]] = field(init=False)
    fingerprint: int = field(init=False)               # equal for two tokenizer objects of one vocabulary
    _masks: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        n = len(self.texts)
        self.starts_digit = np.zeros(n, dtype=bool)
        self.digit_after_break = np.zeros(n, dtype=bool)
        self.has_break = np.zeros(n, dtype=bool)
        self.has_text = np.array([bool(t.strip()) for t in self.texts], dtype=bool)
        self.by_text = {}
        for i, t in enumerate(self.texts):
            self.by_text.setdefault(t, []).append(i)
            if _BREAK.search(t) is None:
                self.starts_digit[i] = opens_with_digit(t)
                continue
            lines = split_lines(t)
            self.has_break[i] = True
            self.starts_digit[i] = opens_with_digit(lines[0])
            self.digit_after_break[i] = any(opens_with_digit(p) for p in lines[1:])
        self.fingerprint = hash(tuple(self.texts))

    def __len__(self) -> int:
        return len(self.texts)

    def ids_spelling_prefix_of(self, s: str) -> list[int]:
        """Tokens whose text is a non-empty prefix of `s` (the tokens that can write the next part of s)."""
        return [i for k in range(1, len(s) + 1) for i in self.by_text.get(s[:k], ())]

    def cached(self, key, make):
        """A mask or index tensor built once per key (kind, size, device): per-step work stays O(1) Python."""
        value = self._masks.get(key)
        if value is None:
            value = self._masks[key] = make()
        return value


_BY_TOKENIZER: "weakref.WeakKeyDictionary[object, TokenVocabulary]" = weakref.WeakKeyDictionary()


def token_vocabulary(tokenizer) -> TokenVocabulary:
    """The TokenVocabulary of `tokenizer`, computed on first use and kept as long as the tokenizer lives."""
    vocab = _BY_TOKENIZER.get(tokenizer)
    if vocab is None:
        size = len(tokenizer)
        texts = _texts_byte_level(tokenizer, size) or _texts_decoded(tokenizer, size)
        vocab = _BY_TOKENIZER[tokenizer] = TokenVocabulary(texts)
    return vocab
