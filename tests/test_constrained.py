"""Catalog-constrained decoding (training/constrained.py) on the tiny random model and SmolLM2's real tokenizer:
a model that writes noise still names only catalog books, each once, N of them, then stops; per row in a batch."""
from __future__ import annotations

import logging

import pytest
import torch
from transformers import AutoModelForCausalLM, LogitsProcessor

from datagen.catalog import catalog_index
from datagen.validation import parse_books
from training.base_model import load_tokenizer, stop_token_ids
from training.constrained import ConstrainedLogitsProcessor, RowConstraint, TitleTrie, catalog_entries
from training.token_text import _texts_decoded, token_vocabulary

PROMPTS = {"en": "Recommend 3 books for a tired nurse looking for calm.",
           "ko": "불안한 직장인에게 위로와 안정을 주는 책 3권을 추천해줘."}


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    tok = load_tokenizer(tiny_model_dir)
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="module")
def model(tiny_model_dir):
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()


@pytest.fixture
def catalog(catalog_db, tok):
    """(index for grounding, {language: trie}, {book id: line}) over the built-in catalog."""
    tries = {lang: TitleTrie.build(tok, catalog_entries(catalog_db, lang)) for lang in ("en", "ko")}
    lines = dict(catalog_entries(catalog_db))
    return catalog_index(catalog_db), tries, lines


class Bias(LogitsProcessor):
    """What a model 'wants': adds a constant to some tokens' logits before the constraint sees them."""

    def __init__(self, deltas: dict[int, float]):
        self.deltas = deltas

    def __call__(self, input_ids, scores):
        for i, d in self.deltas.items():
            scores[:, i] += d
        return scores


def generate(model, tok, prompts: list[str], rows: list, *, bias: dict[int, float] | None = None,
             max_new_tokens: int = 160, sample_seed: int | None = None) -> list[str]:
    chats = [tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
             for p in prompts]
    inputs = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    width = inputs["input_ids"].shape[1]
    constrained = ConstrainedLogitsProcessor(rows, width) if rows else None
    processors = ([Bias(bias)] if bias else []) + ([constrained] if constrained else [])
    kw = dict(do_sample=False)
    if sample_seed is not None:
        torch.manual_seed(sample_seed)
        kw = dict(do_sample=True, top_k=0, top_p=1.0, temperature=1.0)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, eos_token_id=stop_token_ids(tok),
                             pad_token_id=tok.pad_token_id, logits_processor=processors, **kw)
    if constrained:
        constrained.finish(out)  # the last token never reaches a processor
    return [tok.decode(row[width:], skip_special_tokens=True) for row in out]


def grounded_ids(text: str, language: str, index) -> list[int | None]:
    return [index.match(b.title, b.author).book_id for b in parse_books(text, language)]


def test_random_model_names_only_catalog_books_never_twice(model, tok, catalog):
    index, tries, _ = catalog
    newline = tok.encode("\n", add_special_tokens=False)[0]
    for seed, language in [(1, "en"), (2, "ko")]:
        row = RowConstraint(tries[language], tok, n_books=3, eos_token_id=stop_token_ids(tok))
        # Sampling from a random model is noise; a nudge towards line breaks makes it reach all three items.
        text = generate(model, tok, [PROMPTS[language]], [row], bias={newline: 9.0}, sample_seed=seed,
                        max_new_tokens=200)[0]
        ids = grounded_ids(text, language, index)
        assert ids == row.named_books and len(ids) == 3, text
        assert None not in ids and len(set(ids)) == 3, text
        assert text.startswith("1. ")


def test_eos_is_refused_until_the_nth_title_is_complete(model, tok, catalog):
    index, tries, lines = catalog
    eos = stop_token_ids(tok)
    row = RowConstraint(tries["en"], tok, n_books=3, eos_token_id=eos)
    # A model that wants to stop at once: EOS is refused in numbers, titles and before the third book.
    text = generate(model, tok, [PROMPTS["en"]], [row], bias={i: 50.0 for i in eos})[0]
    assert row.state == "ended" and not row.cut_short
    items = [f"{k}. {lines[b]}" for k, b in enumerate(row.named_books, 1)]
    assert [line for line in text.splitlines() if line.strip()] == items, text
    # The last book gets its fields' worth of lines like the others (here blank ones), then the answer ends.
    after_first = text.split(items[0], 1)[1].split(items[1], 1)[0]
    assert after_first.strip() == "" and text.endswith(items[-1] + after_first), text
    assert len(grounded_ids(text, "en", index)) == 3


def test_after_the_nth_book_fields_only_eos_is_allowed(model, tok, catalog):
    index, tries, _ = catalog
    eos = stop_token_ids(tok)
    newline = tok.encode("\n", add_special_tokens=False)[0]
    two = tok.encode("2", add_special_tokens=False)[0]
    row = RowConstraint(tries["en"], tok, n_books=2, eos_token_id=eos)
    # A model that never wants to stop and would love to start item 3: it cannot.
    text = generate(model, tok, [PROMPTS["en"]], [row], bias={**{i: -50.0 for i in eos}, newline: 6.0, two: 3.0},
                    max_new_tokens=200)[0]
    assert row.state == "ended", text  # ended by EOS although the model 'did not want' it
    books = parse_books(text, "en")
    assert len(books) == 2 and [index.match(b.title, b.author).book_id for b in books] == row.named_books
    after_second = text.split("\n2. ", 1)[1].split("\n")[1:]
    assert len([line for line in after_second if line.strip()]) <= 2  # its two field lines, nothing after


def test_batch_rows_follow_their_own_constraints_and_a_free_row_is_untouched(model, tok, catalog):
    index, tries, _ = catalog
    candidates = [b for b, _ in catalog_entries_of(tries["ko"])][:5]
    row = RowConstraint(tries["ko"].restrict(candidates), tok, n_books=3, eos_token_id=stop_token_ids(tok))
    prompts = [PROMPTS["ko"], PROMPTS["en"]]
    constrained = generate(model, tok, prompts, [row, None])
    free = generate(model, tok, prompts, [])
    assert constrained[1] == free[1]  # the None row decodes exactly as without the processor
    ids = grounded_ids(constrained[0], "ko", index)
    assert ids == row.named_books and len(ids) == 3 and set(ids) <= set(candidates), constrained[0]
    assert constrained[0] != free[0]


def catalog_entries_of(trie: TitleTrie) -> list[tuple[int, str]]:
    return [(int(b), line) for b, line in zip(trie.book_ids, trie.lines)]


def test_restricted_trie_yields_only_candidates_and_a_short_list_when_too_few(model, tok, catalog):
    index, tries, _ = catalog
    eos = stop_token_ids(tok)
    candidates = [b for b, _ in catalog_entries_of(tries["en"])][40:42]
    small = tries["en"].restrict(candidates + [999_999])  # an unknown id is ignored
    assert len(small) == 2 and small.book_count == 2
    row = RowConstraint(small, tok, n_books=3, eos_token_id=eos)
    text = generate(model, tok, [PROMPTS["en"]], [row], max_new_tokens=300)[0]
    assert sorted(row.named_books) == sorted(candidates) and row.n_books == 2
    assert sorted(grounded_ids(text, "en", index)) == sorted(candidates)
    assert row.state in ("ended", "done") and not row.cut_short  # two books, then the end: no hang


# -- the state machine, driven token by token (no model) -------------------------------------------------------


def drive(row: RowConstraint, tok, text: str, vocab_size: int, generated: list[int] | None = None) -> list[int]:
    """Feed `text`'s tokens one by one after `generated`, asserting each was allowed when it was chosen."""
    generated = list(generated or [])
    for t in tok.encode(text, add_special_tokens=False):
        scores = row(torch.tensor(generated, dtype=torch.long), torch.zeros(vocab_size))
        assert torch.isfinite(scores[t]), f"{tok.decode([t])!r} refused after {tok.decode(generated)!r}"
        generated.append(t)
    row.observe(generated)
    return generated


def allowed(row: RowConstraint, generated: list[int], vocab_size: int) -> set[int]:
    scores = row(torch.tensor(generated, dtype=torch.long), torch.zeros(vocab_size))
    return set(torch.nonzero(torch.isfinite(scores)).flatten().tolist())


def test_prefix_titles_dashes_in_titles_and_list_numbers(tok):
    trie = TitleTrie.build(tok, [(1, "Dune - Frank Herbert"), (2, "Dune Messiah - Frank Herbert"),
                                 (3, "Mrs Dalloway - Woolf - Virginia Woolf"), (4, "불편한 편의점 - 김호연")])
    V = len(tok)
    eos = stop_token_ids(tok)
    row = RowConstraint(trie, tok, n_books=4, eos_token_id=eos)
    g = drive(row, tok, "1. Dune - Frank Herbert\n - Why this book: calm.\n - How it may help: sleep.\n", V)
    assert row.named_books == [1]
    # after two field lines the next line must be "2." (as "2" then "."), never EOS or another number
    assert allowed(row, g, V) == {tok.convert_tokens_to_ids("2")}
    g = drive(row, tok, "2. Dune", V, g)
    nxt = allowed(row, g, V)
    assert tok.encode(" Messiah", add_special_tokens=False)[0] in nxt
    assert tok.encode(" -", add_special_tokens=False)[0] not in nxt  # "Dune - Frank Herbert" was named
    assert not nxt & set(eos)  # no EOS mid-title
    g = drive(row, tok, " Messiah - Frank Herbert\n - a\n\n - b\n3. Mrs Dalloway - Woolf - Virginia Woolf\n"
                        "4. 불편한 편의점 - 김호연\n", V, g)
    text = tok.decode(g)
    assert row.named_books == [1, 2, 3, 4] and [b.title for b in parse_books(text, "en")][2] == "Mrs Dalloway - Woolf"
    # the list is complete: free text, no digit may open a line, EOS once the last book has its field lines
    nxt = allowed(row, g, V)
    assert not nxt & set(eos) and tok.convert_tokens_to_ids("5") not in nxt and tok.convert_tokens_to_ids("1") not in nxt
    g = drive(row, tok, " - x\n", V, g)
    assert not allowed(row, g, V) & set(eos)
    g = drive(row, tok, " - y", V, g)
    assert set(eos) <= allowed(row, g, V)  # the answer may end on its last field line
    g = drive(row, tok, "\n", V, g)
    assert allowed(row, g, V) == set(eos) and row.done


def test_allowed_tokens_survive_an_earlier_processor_that_banned_them_all(tok):
    trie = TitleTrie.build(tok, [(1, "Dune - Frank Herbert"), (2, "Emma - Jane Austen")])
    row = RowConstraint(trie, tok, n_books=1, eos_token_id=stop_token_ids(tok))
    scores = row(torch.tensor([], dtype=torch.long), torch.full((len(tok),), float("-inf")))
    assert set(torch.nonzero(torch.isfinite(scores)).flatten().tolist()) == {tok.convert_tokens_to_ids("1")}


def test_bfloat16_logits_take_the_torch_path_to_the_same_mask(tok):
    """CPU float32 logits are masked through numpy; others (bf16, GPU) with torch ops: both must agree."""
    trie = TitleTrie.build(tok, [(1, "Dune - Frank Herbert"), (2, "Emma - Jane Austen")])
    text = "1. Dune - Frank Herbert\n - a\n - b\n2."
    for dtype in (torch.float32, torch.bfloat16):
        row = RowConstraint(trie, tok, n_books=2, eos_token_id=stop_token_ids(tok))
        ids, seen = tok.encode(text, add_special_tokens=False), []
        for i in range(len(ids) + 1):
            scores = row(torch.tensor(ids[:i], dtype=torch.long), torch.zeros(len(tok), dtype=dtype))
            seen.append(frozenset(torch.nonzero(torch.isfinite(scores.float())).flatten().tolist()))
        if dtype is torch.float32:
            expected = seen
    assert seen == expected and expected[-1] == {tok.encode(" Emma", add_special_tokens=False)[0]}


def test_a_line_shared_by_two_books_is_named_once(tok):
    trie = TitleTrie.build(tok, [(1, "Dune - Frank Herbert"), (2, "Dune - Frank Herbert"), (3, "Emma - Jane Austen")])
    row = RowConstraint(trie, tok, n_books=3, eos_token_id=stop_token_ids(tok))
    g = drive(row, tok, "1. Dune - Frank Herbert\n - a\n - b\n2.", len(tok))
    assert row.named_books == [1] and row.n_books == 3
    assert allowed(row, g, len(tok)) == {tok.encode(" Emma", add_special_tokens=False)[0]}
    g = drive(row, tok, " Emma - Jane Austen\n - a\n - b", len(tok), g)
    assert row.named_books == [1, 3] and stop_token_ids(tok)[0] in allowed(row, g, len(tok))  # nothing left
    g = drive(row, tok, "\n", len(tok), g)
    assert row.done  # two of three books: the list ends there, no third number


def test_korean_titles_are_written_whole_through_byte_tokens(tok):
    entries = [(1, "불편한 편의점 - 김호연"), (2, "불편한 편의점 2 - 김호연"), (3, "달러구트 꿈 백화점 - 이미예")]
    trie = TitleTrie.build(tok, entries)
    assert len(trie) == 3
    for book_id, line in entries:  # every byte-level path through split Hangul syllables is reachable
        row = RowConstraint(trie, tok, n_books=1, eos_token_id=stop_token_ids(tok))
        drive(row, tok, f"1. {line}\n", len(tok))
        assert row.named_books == [book_id]
    row = RowConstraint(trie, tok, n_books=1, eos_token_id=stop_token_ids(tok))
    with pytest.raises(AssertionError, match="refused"):
        drive(row, tok, "1. 불편한 편의점 3 - 김호연\n", len(tok))


def test_untokenizable_entries_are_skipped_with_a_warning(tok, caplog):
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    ascii_chars = [chr(c) for c in range(32, 127)] + ["\n"]
    vocab = {"<unk>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(ascii_chars)}}
    char_tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    char_tok.decoder = decoders.Fuse()
    english_only = PreTrainedTokenizerFast(tokenizer_object=char_tok, unk_token="<unk>", eos_token="</s>")
    with caplog.at_level(logging.WARNING, logger="training.title_trie"):
        trie = TitleTrie.build(english_only, [(1, "Dune - Frank Herbert"), (2, "불편한 편의점 - 김호연"),
                                              (3, "Two\nLines - X")])
        real = TitleTrie.build(tok, [(4, "Dune - Frank Herbert"), (5, "Evil <|im_end|> - Y")])
    assert trie.book_count == 1 and list(trie.book_ids) == [1]
    assert real.book_count == 1 and list(real.book_ids) == [4]
    skipped = " ".join(r.getMessage() for r in caplog.records)
    assert "book 2" in skipped and "book 3" in skipped and "book 5" in skipped
    row = RowConstraint(trie, english_only, n_books=2, eos_token_id=1)
    drive(row, english_only, "1. Dune - Frank Herbert\n", len(english_only))
    assert row.named_books == [1] and row.n_books == 1  # one book left in the trie: a one-book list


def test_empty_trie_allows_only_eos_and_a_foreign_tokenizer_is_refused(tok):
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    row = RowConstraint(TitleTrie.build(tok, []), tok, n_books=3, eos_token_id=stop_token_ids(tok))
    assert allowed(row, [], len(tok)) == set(stop_token_ids(tok)) and row.done
    small = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.BPE(vocab={"<unk>": 0, "a": 1}, merges=[],
                                                                          unk_token="<unk>")), unk_token="<unk>")
    with pytest.raises(ValueError, match="another tokenizer"):
        RowConstraint(TitleTrie.build(tok, [(1, "Dune - Frank Herbert")]), small, n_books=1, eos_token_id=0)


def test_array_trie_counts_and_ends_match_a_plain_dict_trie():
    """The numpy build (sorted entries, longest common prefixes) against the obvious definition, on random
    token sequences with shared prefixes, duplicates and one sequence a prefix of another."""
    import random

    from training.token_text import TokenVocabulary

    vocab, rng = TokenVocabulary([str(i) for i in range(10)]), random.Random(0)
    for _ in range(200):
        seqs = [[rng.randint(0, 4) for _ in range(rng.randint(1, 6))] for _ in range(rng.randint(0, 30))]
        if seqs:
            seqs += [list(seqs[0]), seqs[-1][:-1] or [9]]
        trie = TitleTrie(vocab, [str(q) for q in seqs], list(range(len(seqs))), seqs)
        counts, ends = {}, {}

        def walk(node, path):
            counts[path] = int(trie.node_count[node])
            if trie.terminal_entries(node):
                ends[path] = sorted(trie.terminal_entries(node))
            start, end = trie.children(node)
            assert list(trie.child_token[start:end]) == sorted(set(trie.child_token[start:end]))
            for j in range(start, end):
                walk(int(trie.child_node[j]), path + (int(trie.child_token[j]),))

        walk(0, ())
        want_counts, want_ends = {(): len(seqs)}, {}
        for i, q in enumerate(seqs):
            for d in range(1, len(q) + 1):
                want_counts[tuple(q[:d])] = want_counts.get(tuple(q[:d]), 0) + 1
            want_ends.setdefault(tuple(q), []).append(i)
        assert counts == want_counts and ends == want_ends, seqs
        assert all(trie.tokens(i) == q for i, q in enumerate(seqs))


def test_byte_level_token_texts_match_the_tokenizers_own_decoding(tok):
    texts = token_vocabulary(tok).texts
    assert texts == _texts_decoded(tok, len(tok))
    assert texts[tok.encode("\n", add_special_tokens=False)[0]] == "\n"


def test_a_line_break_that_is_a_plain_added_token_keeps_the_titles(tiny_model_dir, caplog):
    """Gemma's tokenizer has "\n" as an added (not special) token: every title line ends with it. Such titles
    stay in the trie; a title that needs a special token is skipped with a warning."""
    from tokenizers import AddedToken

    tok = load_tokenizer(tiny_model_dir)
    tok.add_tokens([AddedToken("\n", special=False, normalized=False)])
    tok.add_special_tokens({"additional_special_tokens": ["<mark>"]})
    newline = tok.convert_tokens_to_ids("\n")
    assert newline in tok.added_tokens_decoder and tok.encode("Emma\n", add_special_tokens=False)[-1] == newline
    with caplog.at_level(logging.WARNING, logger="training.title_trie"):
        trie = TitleTrie.build(tok, [(1, "Dune - Frank Herbert"), (2, "채식주의자 - 한강"), (3, "Odd <mark> - Someone")])
    assert sorted(int(b) for b in trie.book_ids) == [1, 2]
    assert "skips book 3" in caplog.text
