"""Generation with retrieval (the default): every sample's input carries its candidates and every chosen book is
among them; the offline teacher chooses by fit, not by position, and its reasons vary with the book and the
reader instead of repeating one template."""
import asyncio
import random
import re

import pytest
from sqlalchemy import select

from datagen.grid import Grid
from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from datagen.prompts import PROMPT_VERSION, book_line, split_candidates
from datagen.providers.base import TeacherTask
from datagen.providers.offline import OfflineCatalogProvider, fit_score
from datagen.retrieval import Retriever
from datagen.validation import parse_books
from db.models import Book, Sample


def _samples(db, job_id):
    with db.session() as s:
        return list(s.scalars(select(Sample).where(Sample.job_id == job_id).order_by(Sample.id)))


@pytest.mark.parametrize("language", ["ko", "en"])
def test_every_sample_carries_its_candidates_and_chooses_among_them(catalog_db, language):
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(language=language, count=20, seed=4)))
    assert job.status == "completed"
    samples = _samples(catalog_db, job.id)
    head = "후보 도서" if language == "ko" else "Candidate books"
    with catalog_db.session() as s:
        lines_by_id = {b.id: book_line(b, language) for b in s.scalars(select(Book).where(Book.language == language))}
    for sm in samples:
        request_part, lines = split_candidates(sm.input)
        assert f"\n{head}:\n" in sm.input and len(lines) == 8 and sm.prompt_version == PROMPT_VERSION
        assert set(lines) <= set(lines_by_id.values())  # every candidate is a catalog book, as book_line writes it
        answer_lines = [f"{b.title} - {b.author}" for b in parse_books(sm.output, language)]
        assert len(answer_lines) == 3 and set(answer_lines) <= set(lines)  # the same string everywhere
        assert all(b["book_id"] is not None and lines_by_id[b["book_id"]] in lines for b in sm.books)
        assert not any(f.startswith("off_candidates") for f in sm.quality_flags)


def test_no_retrieval_keeps_the_request_only_input(catalog_db):
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=3, seed=4, retrieval=False)))
    assert all(split_candidates(sm.input)[1] == [] and sm.input.startswith("Emotion:") and "\nFocus: " in sm.input
               for sm in _samples(catalog_db, job.id))


def test_an_answer_outside_the_candidates_is_flagged_for_review(catalog_db, monkeypatch):
    from vendors.base import Completion

    async def off_list(self, task):  # a teacher ignoring its candidates, naming real catalog books
        names = {b.title for b in task.candidates}
        with_books = [("Walden", "Henry David Thoreau"), ("Gilead", "Marilynne Robinson"),
                      ("Stoner", "John Williams"), ("Dune", "Frank Herbert")]
        books = [{"title": t, "author": a, "reason": "A quiet, steady book for slow evenings at home.",
                  "effect": "It calms a restless mind."} for t, a in with_books if t not in names][:3]
        return Completion(raw="{}", parsed={"books": books})

    monkeypatch.setattr(OfflineCatalogProvider, "agenerate", off_list)
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=1, max_attempts_factor=1)))
    (sm,) = _samples(catalog_db, job.id)
    assert sm.status == "needs_review" and sm.grounded_count == 3
    assert sum(f.startswith("off_candidates:") for f in sm.quality_flags) == 3


def _task(db, request, seed=0, k=8) -> TeacherTask:
    found = Retriever.for_db(db).retrieve(request, k=k, seed=seed)
    return TeacherTask(index=0, request=request, instruction="", input_text="", candidates=found.books, n_books=3,
                       seed=seed, candidate_scores=found.scores)


def _answer(task):
    return asyncio.run(OfflineCatalogProvider().agenerate(task)).parsed["books"]


@pytest.mark.parametrize("language", ["ko", "en"])
def test_offline_teacher_chooses_by_fit_not_by_position(catalog_db, language):
    better = 0
    for seed, request in enumerate(Grid.default(language).sample(12, seed=8)):
        task = _task(catalog_db, request, seed)
        chosen = [b["title"] for b in _answer(task)]
        for shuffle_seed in range(3):  # the same candidates in another order: the same choice
            shuffled = list(task.candidates)
            random.Random(shuffle_seed).shuffle(shuffled)
            task.candidates = shuffled
            assert [b["title"] for b in _answer(task)] == chosen
        fits = {b.title: fit_score(b, task) for b in task.candidates}
        rest = [f for t, f in fits.items() if t not in chosen]
        better += min(fits[t] for t in chosen) >= max(rest) - 0.15  # within the seeded jitter of the best
        wanted = set(request.moods)
        assert all(wanted & set(b.moods) for b in task.candidates if b.title in chosen) or \
            not any(wanted & set(b.moods) for b in task.candidates if b.title not in chosen)
    assert better == 12


@pytest.mark.parametrize("language", ["ko", "en"])
def test_offline_reasons_vary_with_book_and_reader(catalog_db, language):
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(language=language, count=50, seed=2)))
    samples = _samples(catalog_db, job.id)
    with catalog_db.session() as s:
        books = {b.id: b for b in s.scalars(select(Book).where(Book.language == language))}
    reasons, frames, effects = [], set(), set()
    for sm in samples:
        for b in sm.books:
            book = books[b["book_id"]]
            assert book.description.rstrip(".")[:25] in b["reason"]  # built on the book's own description
            reasons.append(b["reason"])
            effects.add(b["effect"])
            # The frame: the sentence with the book's own words and the reader's fields taken out.
            frame = b["reason"]
            for word in (book.description.rstrip("."), book.title, sm.emotion, sm.occupation, sm.situation, sm.focus):
                frame = frame.replace(word, "·")
            frames.add(re.sub(r"[가-힣A-Za-z'-]*·[가-힣A-Za-z'-]*", "·", frame))
    assert len(set(reasons)) == len(reasons) == 150
    # The old single template gave 9 (ko) and 11 (en) frames and 25 distinct effects over these 150 books.
    assert len(frames) >= 40, frames
    assert len(effects) >= 50
    genre_words = ("소설", "에세이", "시집", "책", "novel", "poems", "memoir", "book", "classic", "story")
    assert sum(any(g in r for g in genre_words) for r in reasons) >= 75  # genres woven into the reasons
