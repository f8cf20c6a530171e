from datagen.grounding import CatalogIndex
from datagen.validation import content_hash, parse_books, status_for, validate_output

SEED_OUTPUT = """1. 제대로 연습하는 법 : 어학부터 스포츠까지, 인지심리학이 제시하는 배움의 기술 - 아투로 E. 허낸데즈 지음 ; 방진이 옮김
 - 추천 이유: 불안한 마음을 다잡고 하루를 작게 나누어 연습하는 법을 알려 줍니다.
 - 이 책이 도움이 될 수 있는 이유: 통제할 수 있는 작은 일에 집중하게 해 안정감을 줍니다.
2. 불편한 편의점 - 김호연
 - 추천 이유: 서울역 노숙인이 편의점 야간 알바를 하며 사람들과 가까워지는 따뜻한 이야기입니다.
 - 이 책이 도움이 될 수 있는 이유: 잠들기 전 가볍게 읽으며 위로를 받을 수 있습니다.
3. 달러구트 꿈 백화점 - 이미예
 - 추천 이유: 잠들어야만 갈 수 있는 꿈 백화점의 이야기로 잠들기 전 읽기 좋습니다.
 - 이 책이 도움이 될 수 있는 이유: 상상 속 세계로 잠시 벗어나 마음이 편안해집니다."""

INDEX = CatalogIndex([(1, "제대로 연습하는 법", "아투로 E. 허낸데즈"), (2, "불편한 편의점", "김호연"),
                      (3, "달러구트 꿈 백화점", "이미예")])


def test_parses_the_users_seed_format():
    items = parse_books(SEED_OUTPUT, "ko")
    assert [i.title for i in items][1:] == ["불편한 편의점", "달러구트 꿈 백화점"]
    assert items[0].author.startswith("아투로 E. 허낸데즈")
    assert all(i.reason and i.effect for i in items)


def test_valid_grounded_answer_has_no_flags_and_is_approved_only_when_asked():
    v = validate_output(SEED_OUTPUT, language="ko", n_books=3, index=INDEX)
    assert v.flags == [] and v.grounded_count == 3
    assert status_for(v) == "pending"
    assert status_for(v, auto_approve=True) == "approved"


def test_wrong_count_missing_reason_repeat_and_language_are_flagged():
    two = "\n".join(SEED_OUTPUT.splitlines()[:6])
    assert "format:expected_3_books_got_2" in validate_output(two, language="ko", n_books=3, index=None).flags
    no_reason = SEED_OUTPUT.replace(" - 추천 이유: 서울역", " - 기타: 서울역")
    assert "format:book_2_no_reason" in validate_output(no_reason, language="ko", n_books=3, index=None).flags
    repeated = SEED_OUTPUT.replace("3. 달러구트 꿈 백화점 - 이미예", "3. 불편한 편의점 - 김호연")
    assert "repeated:title_within_answer" in validate_output(repeated, language="ko", n_books=3, index=None).flags
    flags = validate_output(SEED_OUTPUT, language="en", n_books=3, index=None).flags
    assert any(f.startswith("language:not_english") for f in flags)
    assert status_for(validate_output(two, language="ko", n_books=3, index=None)) == "rejected"


def test_ungrounded_book_needs_review_not_rejection():
    text = SEED_OUTPUT.replace("달러구트 꿈 백화점 - 이미예", "존재하지 않는 책 - 홍길동")
    v = validate_output(text, language="ko", n_books=3, index=INDEX)
    assert v.grounded_count == 2 and "ungrounded:존재하지 않는 책" in v.flags
    assert status_for(v, auto_approve=True) == "needs_review"


def test_content_hash_ignores_whitespace_only_changes():
    assert content_hash("a  b", "c", "d") == content_hash("a b", "c ", "d")
    assert content_hash("a", "b", "c") != content_hash("a", "b", "d")


LOOPING = """1. The Midnight Library - Matt Haig
- Why this book: a second chance
2. Why this book: the list starts to loop
3. �
4. The Midnight Library - Matt Haig
- How it may help: calm
5. ...
"""


def test_only_numbered_book_lines_count_as_books():
    # A looping answer once counted field labels and a broken character as books (issue 13, item 3).
    items = parse_books(LOOPING, "en")
    assert [(i.title, i.author) for i in items] == [("The Midnight Library", "Matt Haig")] * 2
    assert parse_books("1. 추천 이유: 따뜻함\n2. 불편한 편의점 - 김호연", "ko")[0].title == "불편한 편의점"


def test_a_repeated_title_is_one_card_flagged_and_one_book_reads_as_english():
    from app.answer_view import cards_markdown
    from app.services import BookCard, distinct_cards

    cards = distinct_cards([BookCard(i.title, i.author, None) for i in parse_books(LOOPING, "en")])
    assert len(cards) == 1 and cards[0].times == 2
    shown = cards_markdown(cards, "en", truncated=True)
    assert shown.startswith("**The one book is not in the catalog · 1 named more than once**")
    assert "named 2 times" in shown and "cut short" in shown
    two = distinct_cards([BookCard("A", "x", None), BookCard("B", "y", None)])
    assert cards_markdown(two, "en").startswith("**0 of 2 books are in the catalog**")
