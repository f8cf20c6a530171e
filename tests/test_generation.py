import pytest
from pydantic import ValidationError
from sqlalchemy import func, select

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import GenerationJob, Sample


def _outputs(db, job_id):
    with db.session() as s:
        return [x.output for x in s.scalars(select(Sample).where(Sample.job_id == job_id).order_by(Sample.id))]


@pytest.mark.parametrize("language", ["ko", "en"])
def test_offline_job_makes_target_count_of_grounded_valid_samples(catalog_db, language):
    job_id = create_job(catalog_db, JobConfig(language=language, count=25, seed=3, auto_approve=True))
    job = run_job(catalog_db, job_id)
    assert job.status == "completed" and job.accepted == 25
    with catalog_db.session() as s:
        samples = list(s.scalars(select(Sample).where(Sample.job_id == job_id)))
    assert len(samples) == 25
    assert all(x.status == "approved" and x.grounded_count == 3 and x.quality_flags == [] for x in samples)
    assert all(x.provider == "offline" and x.model == "offline-template" and x.language == language for x in samples)
    assert all(x.emotion and x.occupation and x.effect and x.situation and x.focus for x in samples)
    label = "감정:" if language == "ko" else "Emotion:"
    assert all(x.input.startswith(label) for x in samples)


def test_offline_provider_is_deterministic_for_a_seed(tmp_path, monkeypatch):
    from datagen.catalog import load_builtin_catalog
    from db.engine import open_db

    outs = []
    for name in ("a", "b"):
        monkeypatch.setenv("MOODSHELF_HOME", str(tmp_path / name))
        db = open_db()
        load_builtin_catalog(db)
        outs.append(_outputs(db, run_job(db, create_job(db, JobConfig(language="en", count=8, seed=11))).id))
    assert outs[0] == outs[1]


def test_a_title_appears_at_most_max_per_title_times(catalog_db):
    job_id = create_job(catalog_db, JobConfig(language="en", count=40, seed=5, max_per_title=2))
    run_job(catalog_db, job_id)
    with catalog_db.session() as s:
        titles = [b["title"] for (books,) in s.execute(select(Sample.books).where(
            Sample.job_id == job_id, Sample.status.in_(("approved", "pending")))) for b in books]
    assert max(titles.count(t) for t in set(titles)) <= 2


def test_killed_job_resumes_without_duplicates_or_loss(catalog_db):
    job_id = create_job(catalog_db, JobConfig(language="ko", count=20, seed=9))

    def kill_after_seven(job):
        if job.accepted >= 7:
            raise KeyboardInterrupt  # what Ctrl-C or a kill does mid-job

    with pytest.raises(KeyboardInterrupt):
        run_job(catalog_db, job_id, on_progress=kill_after_seven)
    with catalog_db.session() as s:
        assert s.get(GenerationJob, job_id).status == "cancelled"
    job = run_job(catalog_db, job_id)
    assert job.status == "completed"
    with catalog_db.session() as s:
        n = s.scalar(select(func.count()).select_from(Sample).where(Sample.job_id == job_id))
        distinct = s.scalar(select(func.count(func.distinct(Sample.content_hash))).where(Sample.job_id == job_id))
    assert n == distinct == 20


@pytest.mark.parametrize("kwargs, message", [
    ({"count": 0}, "count must be > 0"),
    ({"provider": "nope"}, "unknown provider 'nope'"),
    ({"n_books": -1}, "n_books must be > 0"),
])
def test_bad_job_settings_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        JobConfig(**kwargs)


def test_catalog_without_books_for_the_mood_is_refused_before_the_job_starts(sqlite_db):
    from vendors.base import VendorError

    with pytest.raises(VendorError, match="fewer than 3 en books for the effect"):
        create_job(sqlite_db, JobConfig(language="en", count=3))  # empty catalog


def test_retrieval_mode_writes_the_candidates_into_the_input(catalog_db):
    job_id = create_job(catalog_db, JobConfig(language="ko", count=3, retrieval=True, candidates_k=5))
    run_job(catalog_db, job_id)
    with catalog_db.session() as s:
        sample = s.scalars(select(Sample).where(Sample.job_id == job_id)).first()
    head, _, listed = sample.input.partition("후보 도서:\n")
    assert head.startswith("감정:") and len(listed.splitlines()) == 5
    chosen = [b["title"] for b in sample.books]
    assert all(any(line.startswith(f"- {t} - ") for line in listed.splitlines()) for t in chosen)


def test_near_duplicate_answers_share_a_cluster():
    from datagen.dedup import NearDuplicateIndex

    idx = NearDuplicateIndex(threshold=0.9)
    a = "1. Walden - Henry David Thoreau\n - Why this book: A year in a cabin by a pond, told slowly. " * 3
    assert idx.add(1, a) is None
    assert idx.add(2, a.replace("slowly", "slowly!", 1)) == 1    # near-identical: joins cluster 1
    assert idx.add(3, "1. Dune - Frank Herbert\n - Why this book: Politics and sand on a desert planet.") is None


def test_engine_flags_near_duplicate_answers_with_a_cluster_id(catalog_db, queued_provider):
    books = [{"title": t, "author": a, "reason": "A gentle, quiet story for slow evenings at home.",
              "effect": "It calms a restless mind."} for t, a in
             [("Walden", "Henry David Thoreau"), ("Gilead", "Marilynne Robinson"), ("Stoner", "John Williams")]]
    queued_provider.queue(*[{"books": books}] * 4)  # a teacher collapsing onto one answer, for every request
    # retrieval off: these fixed books are not among the candidates, which with retrieval is its own flag
    job = run_job(catalog_db, create_job(catalog_db, JobConfig(provider="queued", language="en", count=2,
                                                               max_attempts_factor=2, concurrency=1,
                                                               retrieval=False)))
    with catalog_db.session() as s:
        samples = list(s.scalars(select(Sample).where(Sample.job_id == job.id).order_by(Sample.id)))
    first, *rest = samples
    assert first.cluster_id is None and first.status == "pending"
    assert rest and all(x.cluster_id == first.id and x.status == "needs_review" for x in rest)
    assert all(f"near_duplicate:cluster_{first.id}" in x.quality_flags for x in rest)
    assert job.accepted == 1 and job.duplicates == len(rest) and job.status == "failed"
