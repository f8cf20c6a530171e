"""The one recommendation pipeline (training/recommend.py): each model gets the prompt shape it was trained on —
a run trained on candidate-carrying samples gets candidates, the base model and older runs never do, API models
get the teacher's shape — answers stream and are grounded; a tiny catalog gives a smaller list; and
`moodshelf recommend` does the same on the command line."""
import pytest
from sqlalchemy import select

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from datagen.prompts import book_line
from db.models import TrainingRun
from fakes.fixtures import fake_openai  # noqa: F401
from training.backends import BackendSpec, LocalBackend
from training.reader_request import RecommendError, RecommendRequest, shape_for
from training.recommend import Recommendation, Recommender

REQUEST = dict(language="en", emotion="anxious", occupation="nurse", effects=["calm"], situation="the commute",
               focus="light and easy", free_text="short poems")


def _mark(db, run_id, with_candidates):
    with db.begin() as s:
        s.get(TrainingRun, run_id).with_candidates = with_candidates


@pytest.mark.parametrize("retrieval", [True, False])
def test_a_run_records_whether_its_samples_carried_candidates(catalog_db, tiny_model_dir, retrieval):
    from training.config import TrainConfig
    from training.runs import create_run

    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=6, seed=1, auto_approve=True,
                                                         retrieval=retrieval)))
    run_id = create_run(catalog_db, TrainConfig(base_model=tiny_model_dir, eval_fraction=0.0))
    with catalog_db.session() as s:
        assert s.get(TrainingRun, run_id).with_candidates is retrieval
    expected = "candidates" if retrieval else "plain"
    assert shape_for(catalog_db, BackendSpec(kind="local", adapter_run=run_id)) == expected


def test_runs_from_before_the_record_count_as_trained_without_candidates(catalog_db, adapter_run):
    with catalog_db.session() as s:
        assert s.get(TrainingRun, adapter_run).with_candidates is None
    assert shape_for(catalog_db, BackendSpec(kind="local", adapter_run=adapter_run)) == "plain"
    assert shape_for(catalog_db, BackendSpec(kind="local")) == "plain"
    assert shape_for(catalog_db, BackendSpec(kind="openai", model="gpt-4.1-mini")) == "teacher"


def test_a_candidate_run_gets_candidates_as_in_its_samples_and_the_base_model_none(catalog_db, adapter_run,
                                                                                     tiny_model_dir):
    _mark(catalog_db, adapter_run, True)
    rec = Recommender(catalog_db, base_model=tiny_model_dir)
    request = RecommendRequest.from_fields(**REQUEST)
    base = rec.prepare(request, "base")
    assert base.shape == "plain" and base.candidates == [] and [m["role"] for m in base.messages] == ["user"]
    assert "Candidate books" not in base.prompt and base.prompt.endswith("Focus: light and easy\nNote: short poems")

    run = rec.prepare(request, f"run:{adapter_run} (tiny)")
    assert run.shape == "candidates" and len(run.candidates) == 8 and [m["role"] for m in run.messages] == ["user"]
    block = "\nCandidate books:\n" + "\n".join(f"- {book_line(b, 'en')}" for b in run.candidates)
    assert run.prompt.endswith("Note: short poems" + block)  # exactly the generator's sample format
    assert sum("poetry" in b.genres for b in run.candidates) >= 4  # retrieved for the whole request

    items = list(rec.stream(run, max_new_tokens=8))
    deltas, result = items[:-1], items[-1]
    assert deltas and all(isinstance(d, str) for d in deltas) and isinstance(result, Recommendation)
    assert result.text == "".join(deltas) and result.usage.completion_tokens > 0 and result.error is None
    assert result.candidates == run.candidates and result.shape == "candidates"

    _mark(catalog_db, adapter_run, False)  # trained without candidates: never given them
    assert rec.prepare(request, f"run:{adapter_run} (tiny)").candidates == []


def test_an_api_model_gets_the_teacher_shape_and_its_books_are_grounded(catalog_db, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    rec = Recommender(catalog_db)
    prepared = rec.prepare(RecommendRequest.from_fields(**REQUEST), "openai:gpt-4.1-mini")
    system, user = prepared.messages
    assert prepared.shape == "teacher" and system["role"] == "system"
    assert "Choose only among the candidate books" in system["content"] and "How it may help" in system["content"]
    assert "<candidates>\n- " in user["content"] and "Choose exactly 3 books" in user["content"]
    result = rec.recommend(prepared)
    assert result.grounded == 3 and all(b.offered and b.book is not None for b in result.books)
    assert fake_openai.generation_requests[-1].body["messages"] == prepared.messages


def test_grounding_marks_catalog_books_and_invented_ones(catalog_db):
    books = Recommender(catalog_db).ground("1. Walden - Henry David Thoreau\n - Why this book: x\n - How it may help: y\n"
                                           "2. The Imaginary Garden - Nobody Real\n", "en")
    assert [b.grounded for b in books] == [True, False] and books[0].book.title == "Walden"
    assert books[0].reason == "x" and books[0].effect == "y"


def test_a_tiny_catalog_gives_a_smaller_list_with_a_note_and_an_empty_language_a_clear_error(sqlite_db, adapter_run,
                                                                                              tiny_model_dir, tmp_path):
    from datagen.catalog import import_catalog_file

    csv = tmp_path / "two.csv"
    csv.write_text("title,author,language,genres,moods,description\n"
                   "Walden,Henry David Thoreau,en,essay,calm,A year in a cabin by a pond.\n"
                   "Gilead,Marilynne Robinson,en,novel,comfort,An old pastor writes to his young son.\n",
                   encoding="utf-8")
    import_catalog_file(sqlite_db, csv)
    _mark(sqlite_db, adapter_run, True)
    rec = Recommender(sqlite_db, base_model=tiny_model_dir)
    prepared = rec.prepare(RecommendRequest.from_fields(**REQUEST), f"run:{adapter_run}")
    assert prepared.n_books == 2 and len(prepared.candidates) == 2
    assert prepared.prompt.startswith("Recommend 2 books") and "only 2 English book" in prepared.notices[0]
    with pytest.raises(RecommendError, match="카탈로그에 한국어 책이 없습니다"):
        rec.prepare(RecommendRequest.from_fields("ko", emotion="불안함", effects=["위로"]), f"run:{adapter_run}")
    # the base model needs no candidates: decoding freely it still answers a Korean request; constrained to an
    # empty Korean catalog it gets the same clear error
    assert rec.prepare(RecommendRequest.from_fields("ko", emotion="불안함"), "base",
                       constrained=False).shape == "plain"
    with pytest.raises(RecommendError, match="카탈로그에 한국어 책이 없습니다"):
        rec.prepare(RecommendRequest.from_fields("ko", emotion="불안함"), "base")


def test_a_tokenizer_that_can_write_no_title_is_named_as_the_cause(catalog_db, tiny_model_dir, monkeypatch):
    from training.title_trie import TitleTrie

    rec = Recommender(catalog_db, base_model=tiny_model_dir)
    monkeypatch.setattr(Recommender, "title_trie", lambda self, tok, lang: TitleTrie.build(tok, []))
    with pytest.raises(RecommendError, match="tokenizer cannot write any English title"):
        rec.prepare(RecommendRequest.from_fields("en", emotion="anxious"), "base")
    with pytest.raises(RecommendError, match="토크나이저"):
        rec.prepare(RecommendRequest.from_fields("ko", emotion="불안함"), "base")

def test_empty_or_malformed_requests_are_refused_with_one_clear_line():
    with pytest.raises(RecommendError, match="The request is empty"):
        RecommendRequest.from_fields("en", effects=[" "], free_text="   ")
    with pytest.raises(RecommendError, match="Unsupported language 'fr'"):
        RecommendRequest.from_fields("fr", emotion="triste")


def test_local_answers_are_constrained_to_the_candidates_by_default_and_can_be_set_free(catalog_db, adapter_run,
                                                                                         tiny_model_dir):
    _mark(catalog_db, adapter_run, True)
    request = RecommendRequest.from_fields(**REQUEST)
    rec = Recommender(catalog_db, base_model=tiny_model_dir)
    prepared = rec.prepare(request, f"run:{adapter_run}")   # on by default for a local backend
    assert prepared.constrained and prepared.constraint.book_ids == tuple(b.id for b in prepared.candidates)
    result = rec.recommend(prepared, max_new_tokens=160)
    # a randomly initialised model writes noise, yet every title it writes is one of the request's candidates
    assert result.constrained and result.books and result.text.startswith("1. ")
    assert all(b.grounded and b.offered for b in result.books)
    named = [b.book.id for b in result.books]
    assert len(named) == len(set(named)) and len(named) <= prepared.n_books
    assert named == prepared.row.named_books[:len(named)]

    plain = rec.prepare(request, "base")  # no candidates: the language's whole catalog
    assert plain.constraint.book_ids is None and plain.row is not None
    free = rec.prepare(request, f"run:{adapter_run}", constrained=False)
    assert free.row is None and not free.backend.constraint

    class OldModel:  # a local model whose stream takes no row processor
        def stream(self, messages, adapter=None, *, max_new_tokens=320, stats=None):
            yield "1. Walden - Henry David Thoreau\n"

    old = Recommender(catalog_db, backend_factory=lambda label: LocalBackend(BackendSpec.from_label(label),
                                                                             OldModel(), None))
    with pytest.raises(RecommendError, match="constrained decoding is not available"):
        old.prepare(request, f"run:{adapter_run}")
    assert old.recommend(old.prepare(request, f"run:{adapter_run}", constrained=False)).books[0].grounded


def test_cli_recommend_streams_the_answer_and_lists_the_books(catalog_db, adapter_run, tiny_model_dir, fake_openai,
                                                              monkeypatch, capsys):
    from app.cli import main

    _mark(catalog_db, adapter_run, True)
    assert main(["recommend", "--language", "en", "--emotion", "anxious", "--effect", "calm", "--text", "short poems",
                 "--backend", f"run:{adapter_run}", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "(chosen from 8 catalog candidates; prompt shape: candidates)" in out and "books: " in out

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-abcdef123456")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.add_fault(ungrounded=1)  # the last book is invented
    assert main(["recommend", "--language", "ko", "--emotion", "불안함", "--effect", "위로,안정",
                 "--backend", "openai:gpt-4.1-mini"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. ") and "books: 2 of 3 in the catalog" in out
    assert out.count("  ✓ ") == 2 and out.count("(not in catalog)") == 1

    assert main(["recommend", "--language", "en"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: The request is empty") and "\n" not in err
    monkeypatch.delenv("OPENAI_API_KEY")
    assert main(["recommend", "--effect", "calm", "--backend", "openai:gpt-4.1-mini"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_evaluation_gives_each_model_its_trained_shape(catalog_db):
    from datagen.retrieval import Retriever
    from datagen.prompts import student_prompt
    from db.models import Sample
    from training.reader_request import sample_messages

    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=2, seed=1)))
    with catalog_db.session() as s:
        sm = s.scalars(select(Sample)).first()
    retriever = Retriever.for_db(catalog_db)
    plain = sample_messages(sm, "plain", retriever)
    assert plain == [{"role": "user", "content": student_prompt(sm.instruction, sm.input).split("\nCandidate books:\n")[0]}]
    assert sample_messages(sm, "candidates", retriever) == [{"role": "user", "content": student_prompt(sm.instruction, sm.input)}]
    teacher = sample_messages(sm, "teacher", retriever)
    assert teacher[0]["role"] == "system" and sm.input.split("Candidate books:\n")[1] in teacher[1]["content"]


def test_a_korean_request_to_an_english_only_base_says_which_base_to_train(catalog_db):
    from training.presets import language_notice

    class EnglishModel:  # the default base model, as the pipeline sees it
        base_model = "smollm2-135m"

        def stream(self, messages, adapter=None, *, max_new_tokens=320, stats=None):
            yield "1. 아몬드 - 손원평\n"

    rec = Recommender(catalog_db, backend_factory=lambda label: LocalBackend(BackendSpec.from_label(label),
                                                                             EnglishModel(), None))
    ko = rec.prepare(RecommendRequest.from_fields("ko", emotion="불안함", effects=["위로"]), "base",
                     constrained=False)
    assert any("gemma-3-270m" in n and "English-only" in n for n in ko.notices)
    assert rec.recommend(ko).notices == ko.notices   # what the Recommend tab, Compare columns and the CLI show
    en = rec.prepare(RecommendRequest.from_fields(**REQUEST), "base", constrained=False)
    assert not any("English-only" in n for n in en.notices)
    assert language_notice("gemma-3-270m", "ko") is None and language_notice("/some/local/path", "ko") is None


@pytest.mark.parametrize("language,fields", [("en", dict(emotion="lonely", effects=["comfort"], free_text="poems")),
                                             ("ko", dict(emotion="불안함", effects=["위로"]))])
def test_the_offline_teacher_answers_a_request_with_catalog_books_without_a_key(catalog_db, language, fields):
    # Issue 13, item 10: the teacher that wrote the demo's samples answers beside its student, no key needed.
    from training.backends import make_backend

    rec = Recommender(catalog_db, backend_factory=lambda label: make_backend(BackendSpec.from_label(label)))
    prepared = rec.prepare(RecommendRequest.from_fields(language, **fields), "offline template teacher")
    assert prepared.shape == "teacher" and prepared.candidates
    result = rec.recommend(prepared)
    assert result.error is None and len(result.books) == 3 and result.grounded == 3
    offered = {b.id for b in prepared.candidates}
    assert all(b.book.id in offered for b in result.books)  # chosen among the request's candidates
    assert result.text.startswith("1. ") and result.usage.cost_usd == 0.0
