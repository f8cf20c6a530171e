"""Retrieval of catalog candidates (datagen/retrieval.py): the whole request counts, the same request and seed
give the same candidates, they come shuffled with a few less-fitting ones, each language gets its own books,
a tiny catalog gives what it has, and the index follows catalog changes."""
import pytest
from sqlalchemy import select

from datagen.grid import Request
from datagen.prompts import book_line
from datagen.retrieval import Retriever, select_candidates
from db.models import Book


def req(language="en", free_text="", effects=None, situation=None, **kw):
    if language == "ko":
        base = dict(emotion="불안함", emotion_adj="불안한", occupation="직장인", effects=("안정",),
                    situation="잠들기 전 휴식", focus="가볍게 읽을 수 있음")
    else:
        base = dict(emotion="anxious", emotion_adj="anxious", occupation="nurse", effects=("calm",),
                    situation="winding down before sleep", focus="light and easy")
    base.update(kw)
    if effects is not None:
        base["effects"] = tuple(effects)
    if situation is not None:
        base["situation"] = situation
    return Request(language=language, free_text=free_text, **base)


def genres_of(db, ids):
    with db.session() as s:
        books = {b.id: b for b in s.scalars(select(Book).where(Book.id.in_(ids)))}
    return [books[i].genres for i in ids]


@pytest.mark.parametrize("language, text", [("en", "short poems to read at night"), ("ko", "짧은 시를 읽고 싶어요"),
                                            ("en", "poetry")])
def test_free_text_about_poetry_ranks_poetry_books_first(catalog_db, language, text):
    ranked, _ = Retriever(catalog_db).rank(req(language, text), limit=5)
    assert all("poetry" in g for g in genres_of(catalog_db, [c.book_id for c in ranked]))
    plain, _ = Retriever(catalog_db).rank(req(language), limit=5)  # the same request without the free text
    assert sum("poetry" in g for g in genres_of(catalog_db, [c.book_id for c in plain])) < 5


@pytest.mark.parametrize("language, text, words", [("en", "space and the universe", ("space", "univers", "cosmos",
                                                                                    "planet", "galaxy")),
                                                   ("ko", "우주 이야기가 궁금해요", ("우주",))])
def test_free_text_about_space_ranks_space_books_first(catalog_db, language, text, words):
    ranked, _ = Retriever(catalog_db).rank(req(language, text, effects=["curiosity" if language == "en" else "호기심"]),
                                           limit=3)
    with catalog_db.session() as s:
        top = [s.get(Book, c.book_id) for c in ranked]
    assert all(any(w in (b.description + b.title).lower() for w in words) for b in top), [b.title for b in top]


def test_situation_is_part_of_the_query(catalog_db):
    a, _ = Retriever(catalog_db).rank(req("en", situation="a solo trip through the mountains"), limit=8)
    b, _ = Retriever(catalog_db).rank(req("en", situation="exam season"), limit=8)
    assert [c.book_id for c in a] != [c.book_id for c in b]


def test_a_different_effect_changes_the_candidates_and_they_carry_its_moods(catalog_db):
    r = Retriever(catalog_db)
    calm = r.candidates(req("en", effects=["calm"]), k=8, seed=1)
    courage = r.candidates(req("en", effects=["courage"]), k=8, seed=1)
    assert {b.id for b in calm} != {b.id for b in courage}
    assert sum("courage" in b.moods for b in courage) >= 5 and sum("calm" in b.moods for b in calm) >= 5


def test_same_request_and_seed_give_the_same_candidates(catalog_db):
    one = [b.id for b in Retriever(catalog_db).candidates(req("ko", "위로가 되는 이야기"), k=8, seed=3)]
    two = [b.id for b in Retriever(catalog_db).candidates(req("ko", "위로가 되는 이야기"), k=8, seed=3)]  # new index
    assert one == two and len(one) == 8
    others = {tuple(b.id for b in Retriever(catalog_db).candidates(req("ko", "위로가 되는 이야기"), k=8, seed=s))
              for s in range(6)}
    assert len(others) > 1  # the seed varies the draw


def test_candidates_are_shuffled_and_include_less_fitting_books(catalog_db):
    r = Retriever(catalog_db)
    in_rank_order = 0
    for seed in range(10):
        got = r.retrieve(req("en", "poems"), k=8, seed=seed)
        ranks = [c.rank for c in got.scored]
        in_rank_order += ranks == sorted(ranks)
        assert min(ranks) == 0                          # the best match is always offered
        assert sum(rk >= 9 for rk in ranks) == 2         # two from further down the ranking
        assert [b.id for b in got.books] == [c.book_id for c in got.scored]
    assert in_rank_order <= 1


def test_selection_from_a_ranking_is_deterministic_and_degrades_to_what_there_is():
    import random

    from datagen.retrieval import ScoredBook

    ranked = [ScoredBook(i, 1 - i / 100, i) for i in range(50)]
    assert select_candidates(ranked, 8, random.Random(1)) == select_candidates(ranked, 8, random.Random(1))
    assert sorted(c.book_id for c in select_candidates(ranked[:5], 8, random.Random(1))) == [0, 1, 2, 3, 4]
    assert len(select_candidates(ranked[:10], 8, random.Random(2))) == 8


def test_retrieval_is_language_aware(catalog_db):
    r = Retriever(catalog_db)
    assert {b.language for b in r.candidates(req("ko", "poems and space"), k=8)} == {"ko"}
    assert {b.language for b in r.candidates(req("en", "시와 우주"), k=8)} == {"en"}


def test_tiny_or_one_language_catalog_gives_what_it_has(sqlite_db, tmp_path):
    from datagen.catalog import import_catalog_file

    csv = tmp_path / "two.csv"
    csv.write_text("title,author,language,genres,moods,description\n"
                   "Walden,Henry David Thoreau,en,essay,calm,A year in a cabin by a pond.\n"
                   "Gilead,Marilynne Robinson,en,novel,comfort,An old pastor writes to his young son.\n",
                   encoding="utf-8")
    import_catalog_file(sqlite_db, csv)
    r = Retriever(sqlite_db)
    got = r.retrieve(req("en", "quiet"), k=8)
    assert sorted(b.title for b in got.books) == ["Gilead", "Walden"] and got.available == 2
    assert r.candidates(req("ko"), k=8) == []  # no Korean books: nothing, no error


def test_excluded_titles_are_never_offered(catalog_db):
    r = Retriever(catalog_db)
    first = r.candidates(req("en", "poems"), k=8, seed=0)
    banned = {b.title for b in first}
    again = r.candidates(req("en", "poems"), k=8, seed=0, exclude_titles=banned)
    assert len(again) == 8 and not banned & {b.title for b in again}


def test_index_is_rebuilt_when_the_catalog_changes(catalog_db, tmp_path):
    from datagen.catalog import import_catalog_file

    r = Retriever.for_db(catalog_db)
    assert r is Retriever.for_db(catalog_db)  # one per database, shared
    query = req("en", "dragons guarding a lighthouse of glass")
    before = r.rank(query, limit=1)[0][0].book_id
    csv = tmp_path / "new.csv"
    csv.write_text("title,author,language,genres,moods,description\n"
                   "The Glass Lighthouse,Ann Example,en,fantasy,calm,Dragons guard a lighthouse made of glass.\n",
                   encoding="utf-8")
    import_catalog_file(catalog_db, csv)                     # a new book
    top = r.rank(query, limit=1)[0][0].book_id
    with catalog_db.session() as s:
        assert s.get(Book, top).title == "The Glass Lighthouse" and top != before
    csv.write_text("title,author,language,genres,moods,description\n"                  # the same book, updated
                   "The Glass Lighthouse,Ann Example,en,fantasy,calm,A quiet village bakery at dawn.\n",
                   encoding="utf-8")
    import_catalog_file(catalog_db, csv)
    assert r.rank(req("en", "village bakery at dawn"), limit=1)[0][0].book_id == top


def test_book_line_is_title_and_author_as_in_the_catalog(catalog_db):
    with catalog_db.session() as s:
        translated = s.scalars(select(Book).where(Book.language == "ko", Book.translator.is_not(None))).first()
    line = book_line(translated, "ko")
    assert line == f"{translated.title} - {translated.author}" and "옮김" not in line and "지음" not in line
