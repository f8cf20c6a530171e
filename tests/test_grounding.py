from datagen.grounding import CatalogIndex, book_key, normalize_author, normalize_title


def test_korean_title_normalisation_ignores_spacing_and_subtitles():
    assert normalize_title("달러구트 꿈 백화점") == normalize_title("달러구트꿈백화점")
    assert normalize_title("제대로 연습하는 법 : 어학부터 스포츠까지") == normalize_title("제대로 연습하는 법")
    assert normalize_title("Deep Work: Rules for Focused Success") == normalize_title("deep work")


def test_author_normalisation_drops_roles_and_translators():
    assert normalize_author("아투로 E. 허낸데즈 지음 ; 방진이 옮김") == normalize_author("아투로 E.허낸데즈")
    assert normalize_author("한강 저") == normalize_author("한강")
    assert book_key("채식주의자", "한강 지음") == book_key("채식주의자 ", "한강")


def test_match_exact_fuzzy_and_missing():
    idx = CatalogIndex([(1, "채식주의자", "한강"), (2, "Atomic Habits", "James Clear"),
                        (3, "불편한 편의점", "김호연")])
    assert idx.match("채식 주의자", "한강 지음").book_id == 1
    assert idx.match("Atomic Habit", "J. Clear").book_id == 2          # fuzzy title, abbreviated author
    assert idx.match("불편한 편의점 2", "김호연").book_id is None or idx.match("불편한 편의점 2", "김호연").score < 1
    assert idx.match("The Invented Book", "Nobody").book_id is None
    assert not idx.match("The Invented Book", "Nobody").grounded
