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
    # A sequel is another book: not in this catalog, so not grounded to the first volume.
    assert idx.match("불편한 편의점 2", "김호연").book_id is None
    assert idx.match("불편한 편의점2", "김호연 지음").book_id is None
    assert idx.match("불편한 편의점", "김호연").book_id == 3
    assert idx.match("The Invented Book", "Nobody").book_id is None
    assert not idx.match("The Invented Book", "Nobody").grounded


def _old_difflib_match(idx: CatalogIndex, title: str, author: str, threshold: float = 0.85):
    """The fuzzy fallback as it was before rapidfuzz: difflib over every entry (the reference behaviour)."""
    from difflib import SequenceMatcher

    from datagen.grounding import _author_similarity, same_numbers

    tn, an = normalize_title(title), normalize_author(author)
    exact = idx.by_key.get((tn, an))
    if exact:
        return exact.book_id, 1.0
    best, best_score = None, 0.0
    for e in idx.by_title.get(tn, []):
        s = 0.5 + 0.5 * _author_similarity(an, e.author_norm)
        if s > best_score:
            best, best_score = e, s
    if best_score < threshold:
        for e in idx.entries:
            ts = SequenceMatcher(None, tn, e.title_norm).ratio()
            if ts < 0.8 or not same_numbers(tn, e.title_norm):
                continue
            s = 0.6 * ts + 0.4 * _author_similarity(an, e.author_norm)
            if s > best_score:
                best, best_score = e, s
    if best is not None and best_score >= threshold:
        return best.book_id, round(best_score, 3)
    return None, round(best_score, 3)


def test_rapidfuzz_prefilter_matches_exactly_what_the_difflib_loop_matched():
    import random

    rng = random.Random(7)
    words_en = ["silent", "river", "night", "garden", "habits", "letters", "winter", "light", "house", "sea"]
    words_ko = ["불편한", "편의점", "달러구트", "꿈", "백화점", "밤", "바다", "정원", "편지", "겨울"]
    entries, n = [], 0
    for words in (words_en, words_ko):
        for _ in range(150):
            n += 1
            entries.append((n, " ".join(rng.sample(words, rng.randint(1, 3))), f"{rng.choice(words)} {n % 17}"))
    idx = CatalogIndex(entries)

    def perturb(s: str) -> str:
        chars = list(s)
        for _ in range(rng.randint(0, 2)):
            i = rng.randrange(len(chars))
            op = rng.choice("dis")
            if op == "d" and len(chars) > 1:
                del chars[i]
            elif op == "i":
                chars.insert(i, rng.choice("xyz가나"))
            else:
                chars[i] = rng.choice("abc다라")
        return "".join(chars)

    queries = [(perturb(t), perturb(a) if rng.random() < 0.5 else a) for _, t, a in rng.sample(entries, 200)]
    queries += [("", "nobody"), ("!!!", "x"), ("Completely Different", "Nobody")]
    for title, author in queries:
        m = idx.match(title, author)
        assert (m.book_id, m.score) == _old_difflib_match(idx, title, author), (title, author)
