"""Each evaluation metric on fixed examples whose answers were worked out by hand."""
import pytest

from datagen.grounding import CatalogIndex
from training.metrics import (AnswerScore, aggregate, distinct_n, lcs_length, percentile, rouge_l, score_answer,
                              title_known, tokenize)

INDEX = CatalogIndex([(1, "Deep Work", "Cal Newport"), (2, "The Midnight Library", "Matt Haig"),
                      (3, "달러구트 꿈 백화점", "이미예")])
MOODS = {1: ["focus", "motivation"], 2: ["hope", "comfort"], 3: ["comfort", "healing"]}

THREE_BOOKS = """1. Deep Work - Cal Newport
 - Why this book: it shows how to work without distraction.
 - How it may help: a calmer, steadier day.
2. The Midnight Library - Stephen King
 - Why this book: a story about the lives we did not live.
 - How it may help: hope.
3. The Quiet Lantern - Nobody Real
 - Why this book: invented.
 - How it may help: none."""


def test_tokenize_keeps_latin_words_and_splits_hangul_into_syllables():
    assert tokenize("Hello, World! 안녕하세요 책을 2 books") == \
        ["hello", "world", "안", "녕", "하", "세", "요", "책", "을", "2", "books"]
    assert tokenize("ＡＢＣ") == ["abc"]  # NFKC folds full-width letters


def test_lcs_and_rouge_l_on_known_pairs():
    assert lcs_length("abcbdab", "bdcaba") == 4  # the textbook example (CLRS): "bcba"
    r = rouge_l("the cat sat on the mat", "the cat is on the mat")  # LCS "the cat on the mat" = 5 of 6 and 6
    assert r.precision == pytest.approx(5 / 6) and r.recall == pytest.approx(5 / 6) and r.f1 == pytest.approx(5 / 6)
    r = rouge_l("a b c d", "a c")  # LCS 2: P = 2/4, R = 2/2, F = 2·0.5·1/1.5
    assert (r.precision, r.recall) == (0.5, 1.0) and r.f1 == pytest.approx(2 / 3)
    assert rouge_l("책을 읽자", "책이 좋다").f1 == pytest.approx(0.25)  # syllables: only 책 in common, 1 of 4 each
    assert rouge_l("", "anything").f1 == 0.0
    assert rouge_l("same words here", "Same words, here!").f1 == 1.0


def test_distinct_n_counts_unique_ngrams_over_all_answers():
    assert distinct_n(["a b a", "b c"], 1) == pytest.approx(3 / 5)  # a b a b c
    assert distinct_n(["a b a", "b c"], 2) == 1.0                   # (a b) (b a) | (b c): n-grams never span answers
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)       # (a b) (b a) (a b)
    assert distinct_n(["single"], 2) is None


def test_percentile_interpolates_like_numpy():
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_title_known_accepts_catalog_titles_under_any_author_and_near_spellings():
    assert title_known(INDEX, "The Midnight Library")
    assert title_known(INDEX, "Deep Work: Rules for Focused Success")  # subtitle after ':'
    assert title_known(INDEX, "달러구트꿈백화점")                          # spacing
    assert not title_known(INDEX, "The Quiet Lantern")


def test_score_answer_tells_grounded_misattributed_and_invented_books_apart():
    s = score_answer(THREE_BOOKS, THREE_BOOKS, language="en", n_books=3, index=INDEX, book_moods=MOODS,
                     requested_moods=["comfort"], latency_s=2.0)
    assert s.n_books == 3 and s.format_ok
    assert (s.grounded, s.misattributed, s.hallucinated) == (1, 1, 1)
    assert (s.mood_checked, s.mood_hits) == (1, 0)  # Deep Work is focus/motivation, comfort was asked for
    assert s.rouge_l == 1.0 and s.latency_s == 2.0
    assert s.titles == ["deepwork", "themidnightlibrary", "thequietlantern"]


def test_format_compliance_needs_the_count_and_every_field():
    two = "1. Deep Work - Cal Newport\n - Why this book: a\n - How it may help: b\n" \
          "2. The Midnight Library - Matt Haig\n - Why this book: c\n - How it may help: d"
    kw = dict(reference="", language="en", index=INDEX, book_moods=MOODS, requested_moods=[])
    assert score_answer(two, n_books=2, **kw).format_ok
    assert not score_answer(two, n_books=3, **kw).format_ok                           # wrong count
    assert not score_answer(two.replace(" - How it may help: d", ""), n_books=2, **kw).format_ok  # no effect
    assert not score_answer(two.replace(" - Cal Newport", ""), n_books=2, **kw).format_ok         # no author
    assert not score_answer("I recommend reading more.", n_books=3, **kw).format_ok


def test_korean_answer_is_grounded_despite_spacing_and_role_suffix():
    text = "1. 달러구트꿈백화점 - 이미예 지음\n - 추천 이유: 따뜻한 이야기\n - 이 책이 도움이 될 수 있는 이유: 위로가 된다"
    s = score_answer(text, text, language="ko", n_books=1, index=INDEX, book_moods=MOODS,
                     requested_moods=["comfort", "calm"])
    assert s.format_ok and s.grounded == 1 and (s.mood_checked, s.mood_hits) == (1, 1)


def test_aggregate_micro_averages_over_books_and_answers():
    first = score_answer(THREE_BOOKS, "", language="en", n_books=3, index=INDEX, book_moods=MOODS,
                         requested_moods=["comfort"], latency_s=1.0)
    second_text = "1. The Midnight Library - Matt Haig\n - Why this book: second chances"  # no effect line
    second = score_answer(second_text, second_text, language="en", n_books=3, index=INDEX, book_moods=MOODS,
                          requested_moods=["comfort"], latency_s=3.0)
    second.judge_score = 4
    agg = aggregate([first, second], [THREE_BOOKS, second_text])
    assert agg["answers"] == 2 and agg["books"] == 4
    assert agg["format_compliance"] == 0.5
    assert agg["grounding_rate"] == 0.5           # Deep Work, The Midnight Library (Matt Haig) of 4 books
    assert agg["hallucination_rate"] == 0.25      # The Quiet Lantern
    assert agg["misattribution_rate"] == 0.25     # The Midnight Library by "Stephen King"
    assert agg["mood_fit"] == 0.5                 # of the two grounded books only the Haig is tagged comfort
    assert agg["unique_title_share"] == 0.75      # The Midnight Library twice among 4 titles
    assert agg["rouge_l"] == pytest.approx(0.5)   # 0 (empty reference) and 1 (identical)
    assert agg["judge_score"] == 4 and agg["judged"] == 1
    assert agg["latency_mean_s"] == 2.0 and agg["latency_p50_s"] == 2.0
    assert agg["latency_p95_s"] == pytest.approx(2.9)


def test_aggregate_of_answers_without_books_leaves_book_rates_undefined():
    agg = aggregate([AnswerScore(), AnswerScore()], ["", ""])
    assert agg["format_compliance"] == 0.0
    assert agg["grounding_rate"] is None and agg["mood_fit"] is None and agg["distinct_1"] is None


def test_answer_score_round_trips_through_a_dict():
    s = AnswerScore(n_books=2, format_ok=True, grounded=1, titles=["a", "b"], latency_s=0.5)
    assert AnswerScore.from_dict({**s.as_dict(), "unknown_key": 1}) == s


# -- request sets -----------------------------------------------------------------------------------------------
REPEATING = """1. Deep Work - Cal Newport
 - Why this book: focus.
 - How it may help: calm.
2. Deep Work - Cal Newport
 - Why this book: again.
 - How it may help: calm.
3. The Quiet Lantern - Nobody Real
 - Why this book: invented.
 - How it may help: none.
4. The Quiet Lantern - Nobody Real
 - Why this book: invented twice.
 - How it may help: none."""

KOREAN = """1. 달러구트 꿈 백화점 - 이미예
 - 추천 이유: 잠들기 전에 읽기 좋은 따뜻한 이야기입니다.
 - 이 책이 도움이 될 수 있는 이유: 마음이 편안해집니다."""


def test_repeated_books_within_an_answer_are_counted_grounded_or_not():
    s = score_answer(REPEATING, None, language="en", n_books=3, index=INDEX, book_moods=MOODS,
                     requested_moods=["focus"])
    assert s.n_books == 4 and not s.format_ok            # four items where three were asked for
    assert (s.grounded, s.hallucinated, s.repeated) == (2, 2, 2)
    assert s.book_ids == [1, 1] and s.rouge_l is None   # no reference: ROUGE-L undefined, not 0
    clean = score_answer(THREE_BOOKS, None, language="en", n_books=3, index=INDEX, book_moods=MOODS,
                         requested_moods=[])
    assert clean.repeated == 0 and clean.format_ok


def test_answer_language_is_told_by_hangul_share_for_ko_and_ascii_letters_for_en():
    from training.metrics import in_language

    assert in_language(KOREAN, "ko") is True and in_language(KOREAN, "en") is False
    assert in_language(THREE_BOOKS, "en") is True and in_language(THREE_BOOKS, "ko") is False
    # A Korean answer that names an English book is still Korean; an English one quoting a Korean title is English.
    assert in_language("1. Deep Work - Cal Newport\n - 추천 이유: 집중하는 법을 차근차근 알려 주는 책입니다.", "ko")
    assert in_language(THREE_BOOKS + "\n(달러구트)", "en")
    assert in_language("", "en") is False and in_language("1. 2. 3.", "ko") is False


def test_request_set_aggregate_counts_coverage_unique_titles_language_and_speed():
    a = score_answer(REPEATING, None, language="en", n_books=3, index=INDEX, book_moods=MOODS,
                     requested_moods=["focus"], latency_s=3.0, ttft_s=1.0, tokens=41)
    b = score_answer(KOREAN, None, language="ko", n_books=1, index=INDEX, book_moods=MOODS,
                     requested_moods=["comfort"], latency_s=2.0, ttft_s=0.5, tokens=16)
    assert a.tokens_per_s == pytest.approx(40 / 2.0) and b.tokens_per_s == pytest.approx(15 / 1.5)
    m = aggregate([a, b], [REPEATING, KOREAN], catalog_size=4, wall_s=4.0)
    assert m["format_compliance"] == 0.5                       # b has its one book, a four of three
    assert (m["grounded_books"], m["hallucinated_books"], m["repeated_books"]) == (3, 2, 2)
    assert m["answers_with_repeats"] == 1
    assert m["coverage"] == pytest.approx(2 / 4)                # Deep Work and 달러구트 of 4 catalog books
    assert m["unique_titles"] == 3                              # deepwork, thequietlantern, 달러구트꿈백화점
    assert m["right_language"] == 1.0
    assert m["mood_fit"] == 1.0                                 # Deep Work x2 for focus, 달러구트 for comfort
    assert m["ttft_p50_s"] == pytest.approx(0.75) and m["tokens_per_s"] == pytest.approx(15.0)
    assert m["throughput_tokens_per_s"] == pytest.approx(57 / 4.0)
    assert m["rouge_l"] is None
