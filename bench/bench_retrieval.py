"""Retrieval: which ranking finds the right books, and how fast it is at 100,000 books.

    .venv/bin/pip install -e '.[bench]'                       # bm25s, the baseline (skipped when missing)
    .venv/bin/python bench/bench_retrieval.py                 # quality on hand-checked requests + speed at 100k
    .venv/bin/python bench/bench_retrieval.py --books 20000   # a smaller speed run

Quality: 8 requests (4 Korean, 4 English) whose free text names a topic — poems, space, grief, work habits —
each with the catalog books a person checked by hand as fitting it (titles listed below, chosen by reading
the shipped catalog, not from any ranker's output). For each ranker, precision of its top 5 and top 10 and
the rank of the first fitting book:
    mood overlap   the old retrieval: books sharing the effect's mood tags, catalog order (the baseline)
    bm25s          BM25 (bm25s) on words; Korean also on character bigrams (no morphological analyser)
    tfidf-char     ours (datagen/retrieval.py): scikit-learn TF-IDF on character n-grams, weighted fields

Speed: the shipped catalog repeated to N books per language (titles numbered so every row is distinct),
imported into a fresh SQLite database; index build time and query time (the whole `retrieve` call: version
check, scoring, selection, loading 8 books) for ours, next to bm25s and the old mood overlap on the same rows.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from datagen.grid import Request  # noqa: E402

try:
    import bm25s  # noqa: F401
    HAVE_BM25 = True
except ImportError:
    print("bm25s is not installed (pip install -e '.[bench]'): its rows are skipped")
    HAVE_BM25 = False

POETRY_EN = ["Leaves of Grass", "Where the Sidewalk Ends", "Devotions", "Dream Work", "Milk and Honey",
             "The Sun and Her Flowers", "Ariel", "The Waste Land", "The Prophet", "The Collected Poems of Langston Hughes",
             "The Complete Poems of Emily Dickinson", "Night Sky with Exit Wounds", "Citizen", "Bluets",
             "The Hill We Climb", "Gitanjali", "The Essential Rumi"]
POETRY_KO = ["서랍에 저녁을 넣어 두었다", "하늘과 바람과 별과 시", "진달래꽃", "사슴", "님의 침묵", "화사집", "입 속의 검은 잎",
             "접시꽃 당신", "외로우니까 사람이다", "거대한 뿌리", "농무", "꽃을 보듯 너를 본다", "그대가 곁에 있어도 나는 그대가 그립다"]
CASES = [
    ("en poems", Request("en", "anxious", "anxious", "nurse", ("calm",), "winding down before sleep", "light and easy",
                         "short poems to read at night"), POETRY_EN),
    ("en space", Request("en", "curious", "curious", "college student", ("curiosity",), "a slow weekend afternoon",
                         "immersive", "space and the universe"),
     ["Cosmos", "Pale Blue Dot", "A Brief History of Time", "Astrophysics for People in a Hurry", "Project Hail Mary",
      "The Martian", "The Hitchhiker's Guide to the Galaxy", "A Wrinkle in Time", "The Long Way to a Small, Angry Planet",
      "Children of Time", "Solaris", "The Left Hand of Darkness", "The Dispossessed", "Dune", "Foundation",
      "The Three-Body Problem", "Ender's Game", "Seven Brief Lessons on Physics", "A Short History of Nearly Everything"]),
    ("en grief", Request("en", "grieving", "grieving", "retiree", ("healing",), "a rainy day at home",
                         "slow and thoughtful", "my husband died last year and I miss him"),
     ["The Year of Magical Thinking", "H Is for Hawk", "A Man Called Ove", "The White Book", "Kitchen",
      "The Storied Life of A. J. Fikry", "Remarkably Bright Creatures", "Tuesdays with Morrie", "Being Mortal", "Wild",
      "Milk and Honey", "Under the Whispering Door", "To the Lighthouse", "The Unlikely Pilgrimage of Harold Fry"]),
    ("en habits", Request("en", "burned out", "burned-out", "office worker", ("focus", "motivation"), "the commute",
                          "in short sittings", "build better habits at work"),
     ["Atomic Habits", "Deep Work", "The 7 Habits of Highly Effective People", "Stolen Focus", "Digital Minimalism",
      "Essentialism", "Four Thousand Weeks", "Flow: The Psychology of Optimal Experience", "The Lean Startup",
      "Big Magic", "Steal Like an Artist", "The Artist's Way", "On Writing"]),
    ("ko poems", Request("ko", "불안함", "불안한", "직장인", ("안정",), "잠들기 전 휴식", "가볍게 읽을 수 있음",
                         "짧은 시를 읽고 싶어요"), POETRY_KO),
    ("ko space", Request("ko", "호기심", "호기심 많은", "대학생", ("호기심",), "주말 오후 카페", "몰입해서 읽기",
                         "우주 이야기가 궁금해요"),
     ["코스모스", "시간의 역사", "떨림과 울림", "프로젝트 헤일메리", "우리가 빛의 속도로 갈 수 없다면", "지구에서 한아뿐", "어린 왕자"]),
    ("ko grief", Request("ko", "상실감", "상실감을 느끼는", "은퇴자", ("치유",), "비 오는 날 집에서", "깊이 생각하며 읽기",
                         "엄마를 떠나보내고 마음이 힘들어요"),
     ["흰", "엄마를 부탁해", "바깥은 여름", "키친", "오직 두 사람", "이어령의 마지막 수업", "아침에는 죽음을 생각하는 것이 좋다",
      "어떻게 죽을 것인가", "진달래꽃", "모든 순간이 너였다", "디디의 우산", "노르웨이의 숲", "죽음의 수용소에서"]),
    ("ko habits", Request("ko", "지침", "지친", "직장인", ("집중", "동기부여"), "출퇴근 지하철", "조금씩 나눠 읽기",
                          "일하는 습관을 바꾸고 싶어요"),
     ["아주 작은 습관의 힘", "몰입", "원씽", "딥 워크", "타이탄의 도구들", "미생", "일의 기쁨과 슬픔", "하마터면 열심히 살 뻔했다"]),
]


# -- the rankers -----------------------------------------------------------------------------------------------
def rank_mood_overlap(books, request):
    """The old retrieval (datagen.catalog.books_for_moods): best mood overlap first, then catalog order."""
    wanted = set(request.moods)
    scored = [(len(wanted & set(b["moods"])), i) for i, b in enumerate(books)]
    return [i for n, i in sorted(scored, key=lambda x: (-x[0], x[1])) if n > 0] or list(range(len(books)))


class BM25Ranker:
    def __init__(self, books, language):
        import bm25s

        from datagen.retrieval import book_document

        self.language = language
        docs = [" | ".join(book_document(b["title"], b["genres"], b["moods"], b["description"], language))
                for b in books]
        self.retriever = bm25s.BM25()
        self.retriever.index(self._tokens(docs), show_progress=False)
        self.n = len(books)

    def _tokens(self, texts):
        import re

        out = []
        for t in texts:
            words = re.findall(r"\w+", t.lower())
            if self.language == "ko":  # character bigrams inside words: Korean without an analyser
                words = words + [w[i:i + 2] for w in words for i in range(len(w) - 1)]
            out.append(words)
        return out

    def rank(self, request):
        import numpy as np

        from datagen.retrieval import FIELD_WEIGHTS, request_fields

        fields = request_fields(request)
        scores = np.zeros(self.n, dtype=np.float32)
        for name, text in fields.items():
            if text.strip():
                scores += FIELD_WEIGHTS[name] * self.retriever.get_scores(self._tokens([text])[0])
        return list(np.lexsort((np.arange(self.n), -scores)))


def tfidf_index(books, language):
    from datagen.retrieval import LanguageIndex

    return LanguageIndex.build(language, [(i, b["title"], b["genres"], b["moods"], b["description"])
                                          for i, b in enumerate(books)])


def rank_tfidf(index, request):
    import numpy as np

    from datagen.retrieval import request_fields

    scores = index.scores(request_fields(request))
    return list(np.lexsort((index.ids, -scores)))


# -- quality ---------------------------------------------------------------------------------------------------
def catalog_rows(language):
    import csv

    from datagen.catalog import CATALOG_DIR

    with open(CATALOG_DIR / f"books_{language}.csv", encoding="utf-8") as f:
        return [{"title": r["title"], "author": r["author"], "genres": r["genres"].split(";"),
                 "moods": r["moods"].split(";"), "description": r["description"]} for r in csv.DictReader(f)]


def quality() -> None:
    print("Quality: hand-checked requests, shipped catalog (precision@5 / precision@10 / rank of the first fit)")
    rankers = {}
    for language in ("ko", "en"):
        books = catalog_rows(language)
        index = tfidf_index(books, language)
        fns = {"mood overlap": lambda r, b=books: rank_mood_overlap(b, r)}
        if HAVE_BM25:
            fns["bm25s"] = BM25Ranker(books, language).rank
        fns["tfidf-char (ours)"] = lambda r, i=index: rank_tfidf(i, r)
        rankers[language] = (books, fns)
    totals: dict[str, list[float]] = {}
    header = f"{'request':<11}" + "".join(f"{name:>24}" for name in rankers["en"][1])
    print(header)
    for label, request, relevant in CASES:
        books, fns = rankers[request.language]
        titles = [b["title"] for b in books]
        missing = [t for t in relevant if t not in titles]
        assert not missing, f"{label}: not in the catalog: {missing}"
        cells = []
        for name, fn in fns.items():
            order = [titles[i] for i in fn(request)]
            p5 = sum(t in relevant for t in order[:5]) / 5
            p10 = sum(t in relevant for t in order[:10]) / 10
            first = next(k for k, t in enumerate(order, 1) if t in relevant)
            totals.setdefault(name, []).extend([p5, p10])
            totals.setdefault(name + " p5", []).append(p5)
            totals.setdefault(name + " p10", []).append(p10)
            cells.append(f"{p5:.1f} / {p10:.1f} / #{first}")
        print(f"{label:<11}" + "".join(f"{c:>24}" for c in cells))
    print(f"{'mean':<11}" + "".join(f"{statistics.mean(totals[n + ' p5']):>13.2f} / {statistics.mean(totals[n + ' p10']):.2f}   "
                                     for n in rankers["en"][1]))


# -- speed -----------------------------------------------------------------------------------------------------
def speed(n_books: int) -> None:
    from sqlalchemy import insert

    from datagen.grounding import book_key
    from datagen.retrieval import Retriever
    from db.engine import open_db
    from db.models import Book

    print(f"\nSpeed: {n_books:,} books per language (the shipped catalog repeated, titles numbered), SQLite")
    with tempfile.TemporaryDirectory() as tmp:
        db = open_db(f"sqlite:///{tmp}/bench.db")
        for language in ("ko", "en"):
            base = catalog_rows(language)
            rows = []
            for i in range(n_books):
                b = base[i % len(base)]
                title = b["title"] if i < len(base) else f"{b['title']} {i // len(base)}"
                rows.append({"title": title, "author": b["author"], "language": language, "genres": b["genres"],
                             "moods": b["moods"], "description": b["description"],
                             "match_key": book_key(title, b["author"]) + f"#{i}", "source": "bench"})
            with db.begin() as s:
                s.execute(insert(Book), rows)
        for language in ("ko", "en"):
            requests = [r for _, r, _ in CASES if r.language == language]
            retriever = Retriever(db)
            t0, c0 = time.perf_counter(), time.process_time()
            index = retriever.index(language)
            build, build_cpu = time.perf_counter() - t0, time.process_time() - c0
            memory = sum(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes + w.nbytes + r.nbytes
                         for _, w, m, r in index.parts.values()) / 2 ** 20
            times = []
            for rep in range(5):
                for r in requests:
                    t0 = time.perf_counter()
                    got = retriever.retrieve(r, k=8, seed=rep)
                    times.append(time.perf_counter() - t0)
                    assert len(got.books) == 8
            with db.session() as s:
                from sqlalchemy import select

                books = [{"title": t, "genres": g, "moods": m, "description": d} for t, g, m, d in s.execute(
                    select(Book.title, Book.genres, Book.moods, Book.description).where(Book.language == language))]
            if HAVE_BM25:
                t0, c0 = time.perf_counter(), time.process_time()
                bm25 = BM25Ranker(books, language)
                bm25_build, bm25_cpu = time.perf_counter() - t0, time.process_time() - c0
                bm25_times = []
                for r in requests:
                    t0 = time.perf_counter()
                    bm25.rank(r)
                    bm25_times.append(time.perf_counter() - t0)
            mood_times = []
            from datagen.catalog import books_for_moods

            for r in requests:
                t0 = time.perf_counter()
                books_for_moods(db, r.moods, language)[:8]
                mood_times.append(time.perf_counter() - t0)
            print(f"  {language}: tfidf-char (ours) build {build:.1f} s ({build_cpu:.1f} s CPU, index {memory:.0f} MiB), "
                  f"query median {statistics.median(times) * 1000:.1f} ms (max {max(times) * 1000:.1f} ms, "
                  f"{len(times)} queries)")
            if HAVE_BM25:
                print(f"  {language}: bm25s               build {bm25_build:.1f} s ({bm25_cpu:.1f} s CPU), query median "
                      f"{statistics.median(bm25_times) * 1000:.1f} ms (ranking only)")
            print(f"  {language}: mood overlap (old)  no index,    query median "
                  f"{statistics.median(mood_times) * 1000:.1f} ms (loads every book of the language)")
        db.dispose()


def machine_note() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPUs, load average {load:.1f} at start (wall times are noisy when it exceeds the CPUs)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--books", type=int, default=100_000, help="books per language for the speed run")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    print(machine_note())
    quality()
    if not args.no_speed:
        speed(args.books)


if __name__ == "__main__":
    main()
