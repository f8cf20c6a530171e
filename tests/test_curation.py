"""Curation: the shared filter, pages, bulk actions with undo, edits that keep the original, clusters, statistics,
stable splits, and sample import / export (db/curation.py, db/curation_stats.py, datagen/review.py,
datagen/exchange.py, `moodshelf samples`)."""
from __future__ import annotations

import csv
import json

import pytest
from sqlalchemy import select, update

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from datagen.prompts import student_prompt
from db.curation import (CurationError, SampleFilter, bulk_set_status, clusters, count, keep_one, page,
                         undo_last_bulk)
from db.models import Sample, TrainingRun


@pytest.fixture
def samples_db(catalog_db):
    """30 English offline samples, then varied by hand: providers, statuses, flags, a cluster, a split."""
    db = catalog_db
    run_job(db, create_job(db, JobConfig(language="en", count=30, seed=3)))
    with db.begin() as s:
        rows = list(s.scalars(select(Sample).order_by(Sample.id)))
        for i, sm in enumerate(rows):
            sm.status = ("pending", "approved", "needs_review", "rejected")[i % 4]
            if i % 3 == 0:
                sm.provider, sm.model, sm.prompt_version = "openai", "gpt-4.1-mini", "teacher-v1"
            if i % 5 == 0:
                sm.quality_flags = [f"ungrounded:{sm.books[0]['title']}"]
                sm.grounded_count = 2
        rows[11].cluster_id = rows[12].cluster_id = rows[10].id  # a near-duplicate cluster of three
    return db


def all_samples(db) -> list[Sample]:
    with db.session() as s:
        return list(s.scalars(select(Sample).order_by(Sample.id)))


def statuses(db) -> dict[int, str]:
    return {sm.id: sm.status for sm in all_samples(db)}


FILTERS = [
    (SampleFilter(), lambda s: True),
    (SampleFilter(statuses=["pending", "approved"]), lambda s: s.status in ("pending", "approved")),
    (SampleFilter(providers=["openai"]), lambda s: s.provider == "openai"),
    (SampleFilter(models=["gpt-4.1-mini"], statuses=["approved"]),
     lambda s: s.model == "gpt-4.1-mini" and s.status == "approved"),
    (SampleFilter(grounded="yes"), lambda s: not any(f.startswith("ungrounded:") for f in s.quality_flags)),
    (SampleFilter(grounded="no"), lambda s: any(f.startswith("ungrounded:") for f in s.quality_flags)),
    (SampleFilter(flag="ungrounded"), lambda s: any("ungrounded" in f for f in s.quality_flags)),
    (SampleFilter(text="Why this book"), lambda s: "Why this book" in s.output),
    (SampleFilter(languages=["ko"]), lambda s: False),
]


@pytest.mark.parametrize("index", range(len(FILTERS)))
def test_filter_counts_every_match_and_pages_slice_them_in_order(samples_db, index):
    f, keep = FILTERS[index]
    expected = [s for s in all_samples(samples_db) if keep(s)]
    assert count(samples_db, f) == len(expected)
    p = page(samples_db, f, "longest", 0, 4)
    assert p.total == len(expected) and len(p.rows) == min(4, len(expected))
    assert [r.output_chars for r in p.rows] == sorted((r.output_chars for r in p.rows), reverse=True)
    assert all(keep(r) for r in p.rows)


def test_emotion_effect_cluster_and_duplicate_filters(samples_db):
    rows = all_samples(samples_db)
    emotion, effect = rows[0].emotion, rows[0].effect.split(", ")[0]
    assert count(samples_db, SampleFilter(emotion=emotion)) == sum(r.emotion == emotion for r in rows)
    assert count(samples_db, SampleFilter(effect=effect)) == sum(effect in r.effect.split(", ") for r in rows)
    # The cluster's first sample has no cluster_id itself but belongs to it.
    assert {r.id for r in page(samples_db, SampleFilter(cluster_id=rows[10].id), limit=10).rows} == \
        {rows[10].id, rows[11].id, rows[12].id}
    assert count(samples_db, SampleFilter(duplicates="yes")) == 3
    assert count(samples_db, SampleFilter(duplicates="no")) == len(rows) - 3


def test_text_search_treats_like_wildcards_literally(samples_db):
    assert count(samples_db, SampleFilter(text="%")) == 0
    assert count(samples_db, SampleFilter(text="_")) == sum("_" in (s.output + s.instruction + s.input)
                                                         for s in all_samples(samples_db))


def test_page_past_the_end_shows_the_last_page(samples_db):
    p = page(samples_db, SampleFilter(), "oldest", offset=1000, limit=7)
    assert p.total == 30 and p.offset == 28 and len(p.rows) == 2 and p.page_number == 5 and p.page_count == 5


def test_unknown_status_in_a_filter_is_refused():
    with pytest.raises(ValueError, match="unknown status 'done'"):
        SampleFilter(statuses=["done"])


def test_bulk_action_changes_every_match_not_just_a_page_and_undo_restores_each_status(samples_db):
    before = statuses(samples_db)
    grounded = SampleFilter(grounded="yes")
    matching = {r.id for r in page(samples_db, grounded, limit=500).rows}
    action = bulk_set_status(samples_db, grounded, "rejected")
    assert action.row_count == sum(1 for i in matching if before[i] != "rejected")
    after = statuses(samples_db)
    assert all(after[i] == "rejected" for i in matching)
    assert all(after[i] == before[i] for i in before if i not in matching)
    undone = undo_last_bulk(samples_db)
    assert undone.id == action.id and statuses(samples_db) == before
    with pytest.raises(CurationError, match="Nothing to undo"):
        undo_last_bulk(samples_db)


def test_undo_takes_back_the_last_action_first(samples_db):
    before = statuses(samples_db)
    bulk_set_status(samples_db, SampleFilter(providers=["openai"]), "approved")
    middle = statuses(samples_db)
    bulk_set_status(samples_db, SampleFilter(), "pending")
    undo_last_bulk(samples_db)
    assert statuses(samples_db) == middle
    undo_last_bulk(samples_db)
    assert statuses(samples_db) == before


def test_edit_keeps_the_original_revalidates_and_reverts(samples_db):
    from datagen.catalog import catalog_index
    from datagen.review import edit_sample, revert_sample

    sm = next(s for s in all_samples(samples_db) if s.status == "approved" and not s.quality_flags)
    fixed = sm.output.replace("Why this book:", "Why this book: (edited)", 1)
    result = edit_sample(samples_db, sm.id, {"output": fixed}, index=catalog_index(samples_db))
    assert result.status == "approved" and result.flags == [] and result.changed == ["output"]
    broken = sm.output.split("\n2. ")[0]  # two of three books removed: the format breaks
    result = edit_sample(samples_db, sm.id, {"output": broken, "emotion": "tired"}, index=catalog_index(samples_db))
    assert result.status == "needs_review" and "format:expected_3_books_got_1" in result.flags
    with samples_db.session() as s:
        edited = s.get(Sample, sm.id)
    assert edited.output == broken and edited.emotion == "tired" and edited.output_chars == len(broken)
    assert edited.original["output"] == sm.output and edited.original["status"] == "approved"
    assert edited.edited_at is not None and len(edited.books) == 1
    revert_sample(samples_db, sm.id)
    with samples_db.session() as s:
        back = s.get(Sample, sm.id)
    assert (back.output, back.status, back.emotion, back.original) == (sm.output, "approved", sm.emotion, None)
    assert back.books == sm.books and back.content_hash == sm.content_hash


def test_edit_that_cannot_be_saved_changes_nothing(samples_db):
    from datagen.review import ReviewError, edit_sample

    a, b = all_samples(samples_db)[:2]
    with pytest.raises(ReviewError, match="output cannot be empty"):
        edit_sample(samples_db, a.id, {"output": "  "}, index=None)
    with pytest.raises(ReviewError, match=f"identical to sample #{b.id}"):
        edit_sample(samples_db, a.id, {"instruction": b.instruction, "input": b.input, "output": b.output}, index=None)
    with pytest.raises(ReviewError, match="Cannot edit status"):
        edit_sample(samples_db, a.id, {"status": "approved"}, index=None)
    with samples_db.session() as s:
        again = s.get(Sample, a.id)
    assert (again.output, again.instruction, again.original) == (a.output, a.instruction, None)


def test_status_changes_keep_the_stored_output_length(samples_db):
    sm = all_samples(samples_db)[0]
    bulk_set_status(samples_db, SampleFilter(), "approved")
    with samples_db.begin() as s:
        s.get(Sample, sm.id).status = "rejected"
    assert all_samples(samples_db)[0].output_chars == len(sm.output) > 0


def test_keep_one_approves_it_rejects_the_rest_and_can_be_undone(samples_db):
    rows = all_samples(samples_db)
    before = statuses(samples_db)
    found = clusters(samples_db, only_open=False)
    assert [(c.cluster_id, c.size) for c in found] == [(rows[10].id, 3)]
    with pytest.raises(CurationError, match="not in cluster"):
        keep_one(samples_db, rows[10].id, rows[0].id)
    keep_one(samples_db, rows[10].id, rows[12].id)
    after = statuses(samples_db)
    assert (after[rows[10].id], after[rows[11].id], after[rows[12].id]) == ("rejected", "rejected", "approved")
    assert clusters(samples_db) == []  # no open cluster left
    undo_last_bulk(samples_db)
    assert statuses(samples_db) == before


def test_statistics_match_the_rows(samples_db):
    from collections import Counter

    from db.curation_stats import counts_by, rates_by_model, top_titles

    rows = all_samples(samples_db)
    assert dict(counts_by(samples_db, "status")) == dict(Counter(r.status for r in rows))
    assert dict(counts_by(samples_db, "provider", SampleFilter(statuses=["approved"]))) == dict(
        Counter(r.provider for r in rows if r.status == "approved"))
    rates = {(r.provider, r.model): r for r in rates_by_model(samples_db)}
    openai = [r for r in rows if r.provider == "openai"]
    assert rates[("openai", "gpt-4.1-mini")].samples == len(openai)
    assert rates[("openai", "gpt-4.1-mini")].rejected_rate == pytest.approx(
        sum(r.status == "rejected" for r in openai) / len(openai))
    assert rates[("openai", "gpt-4.1-mini")].grounded_rate == pytest.approx(
        sum(not r.quality_flags for r in openai) / len(openai))
    titles = Counter(b["title"] for r in rows for b in r.books)
    top = top_titles(samples_db, limit=5)
    assert top[0][1] == titles.most_common(1)[0][1] and all(titles[t] == n for t, n in top)


def test_redraw_moves_unused_samples_but_a_finished_runs_samples_keep_their_split(samples_db):
    from training.data import assign_splits, reshuffle_splits

    bulk_set_status(samples_db, SampleFilter(), "approved")
    first = assign_splits(samples_db, eval_fraction=0.3, seed=1)
    with samples_db.begin() as s:
        s.add(TrainingRun(name="done", base_model="x", status="completed", sample_ids=first.train[:5],
                          eval_sample_ids=first.eval[:4]))
    again = reshuffle_splits(samples_db, eval_fraction=0.3, seed=1)
    assert (sorted(again.train), sorted(again.eval)) == (sorted(first.train), sorted(first.eval))  # seeded: stable
    other = reshuffle_splits(samples_db, eval_fraction=0.3, seed=99)
    assert set(first.eval[:4]) <= set(other.eval) and set(first.train[:5]) <= set(other.train)
    assert set(other.eval) != set(first.eval)  # the unused samples were drawn again
    assert len(other.eval) == round(0.3 * 30)


# -- import / export -------------------------------------------------------------------------------------------
def test_export_writes_each_format_and_the_file_imports_back(samples_db, tmp_path, home):
    from datagen.catalog import catalog_index, load_builtin_catalog
    from datagen.exchange import export_samples, format_problems, import_samples
    from db.engine import open_db

    approved = [s for s in all_samples(samples_db) if s.status == "approved"]
    for fmt in ("alpaca", "chat", "openai"):
        out = tmp_path / f"{fmt}.jsonl"
        n = export_samples(samples_db, out, fmt, system_prompt="You recommend books." if fmt == "openai" else "")
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert n == len(records) == len(approved)
        assert all(format_problems(r, fmt) == [] for r in records)
    assert records[0]["messages"][0] == {"role": "system", "content": "You recommend books."}
    assert records[0]["messages"][1]["content"] == student_prompt(approved[0].instruction, approved[0].input)
    assert json.loads((tmp_path / "alpaca.jsonl").read_text().splitlines()[0])["output"] == approved[0].output

    fresh = open_db(f"sqlite:///{tmp_path}/fresh.db")
    load_builtin_catalog(fresh)
    report = import_samples(fresh, (tmp_path / "chat.jsonl").read_bytes(), "chat.jsonl", index=catalog_index(fresh))
    assert report.imported == len(approved)
    back = all_samples(fresh)
    assert [(b.instruction, b.input, b.output) for b in back] == [(a.instruction, a.input, a.output) for a in approved]
    assert back[0].emotion == approved[0].emotion and back[0].provider == "import" and back[0].model == "chat"
    again = import_samples(fresh, (tmp_path / "alpaca.jsonl").read_bytes(), "alpaca.jsonl", index=None)
    assert again.imported == 0 and len(again.skipped_duplicates) == len(approved)  # same content: skipped
    fresh.dispose()


def test_format_checks_catch_records_that_do_not_fit():
    from datagen.exchange import format_problems

    assert format_problems({"instruction": "a", "input": "", "output": ""}, "alpaca") == ["'output' is empty"]
    assert format_problems({"messages": [{"role": "user", "content": "q"}]}, "openai")
    assert format_problems({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                         {"role": "assistant", "content": "a"}]}, "chat")
    assert not format_problems({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"},
                                             {"role": "assistant", "content": "a"}]}, "openai")


def test_export_of_an_empty_selection_is_refused_and_writes_nothing(samples_db, tmp_path):
    from datagen.exchange import ExchangeError, export_samples

    out = tmp_path / "none.jsonl"
    with pytest.raises(ExchangeError, match="Nothing to export: no approved samples match"):
        export_samples(samples_db, out, "alpaca", f=SampleFilter(languages=["ko"]))
    assert not out.exists()


def test_import_csv_and_json_validates_and_grounds_each_row(samples_db, tmp_path):
    from datagen.catalog import catalog_index
    from datagen.exchange import import_samples

    rows = [{"instruction": s.instruction, "input": s.input, "output": s.output + " (csv)"}
            for s in all_samples(samples_db)[:2]]
    rows.append({"instruction": "Recommend a book.", "input": "", "output": "1. Unknown Book - Nobody"})
    path = tmp_path / "s.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["instruction", "input", "output"])
        w.writeheader()
        w.writerows(rows)
    before = count(samples_db, SampleFilter())
    report = import_samples(samples_db, path.read_bytes(), "s.csv", index=catalog_index(samples_db), model="mine")
    assert report.imported == 3 and report.statuses == {"pending": 2, "rejected": 1}
    assert count(samples_db, SampleFilter(models=["mine"])) == 3 == count(samples_db, SampleFilter()) - before
    weak = page(samples_db, SampleFilter(models=["mine"], statuses=["rejected"])).rows[0]
    assert "ungrounded:Unknown Book" in weak.quality_flags and weak.emotion is None


@pytest.mark.parametrize("name,content,problem", [
    ("bad.jsonl", '{"instruction": "a", "input": "", "output": "b"}\nnot json\n{"messages": [{"role": "user", '
                  '"content": "q"}]}\n{"prompt": "x"}\n',
     ["line 2: not valid JSON", "line 3: a chat sample needs exactly one user turn",
      "line 4: neither alpaca"]),
    ("bad.csv", "instruction,output\nq,\n", ["empty output"]),
    ("bad.json", '[{"instruction": "a", "output": 3}]', ["row 1: 'output' must be text"]),
])
def test_a_file_with_bad_rows_imports_nothing_and_lists_every_problem(samples_db, name, content, problem):
    from datagen.exchange import ExchangeError, import_samples

    before = count(samples_db, SampleFilter())
    with pytest.raises(ExchangeError, match="nothing was imported") as err:
        import_samples(samples_db, content.encode(), name, index=None)
    for p in problem:
        assert any(p in line for line in err.value.problems), err.value.problems
    assert count(samples_db, SampleFilter()) == before


def test_a_file_in_an_unknown_format_is_refused(samples_db):
    from datagen.exchange import ExchangeError, import_samples

    with pytest.raises(ExchangeError, match=r"unknown file format '\.parquet'"):
        import_samples(samples_db, b"PAR1", "data.parquet", index=None)


def test_cli_samples_import_export_stats_undo(samples_db, tmp_path, capsys):
    from app.cli import main

    out = tmp_path / "train.jsonl"
    assert main(["samples", "export", str(out), "--format", "openai", "--system", "Be kind."]) == 0
    assert "exported" in capsys.readouterr().out
    assert json.loads(out.read_text().splitlines()[0])["messages"][0]["content"] == "Be kind."
    assert main(["samples", "export", str(tmp_path / "ko.jsonl"), "--language", "ko"]) == 2
    assert "Nothing to export" in capsys.readouterr().err and not (tmp_path / "ko.jsonl").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": ""}\n')
    assert main(["samples", "import", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "1 bad row(s); nothing was imported" in err and "line 1: empty output" in err
    assert main(["samples", "stats"]) == 0
    assert "status: " in capsys.readouterr().out
    assert main(["samples", "undo"]) == 2
    assert "Nothing to undo" in capsys.readouterr().err
    with samples_db.begin() as s:
        s.execute(update(Sample).values(status="approved"))
    assert main(["samples", "split", "--eval-fraction", "0.2", "--seed", "3"]) == 0
    assert "eval=6" in capsys.readouterr().out


def test_a_filter_reads_as_words_and_the_export_says_what_it_will_write(samples_db):
    from app.curate_tools import export_scope_text

    f = SampleFilter(statuses=["pending"], languages=["ko"], grounded="no")
    assert f.describe() == "status pending, language ko, a book not in the catalog"  # not statuses=['pending']
    assert "nothing would be written" in export_scope_text(samples_db, f)
    n = count(samples_db, SampleFilter(statuses=["approved"]))
    assert export_scope_text(samples_db, None) == f"*Export will write **{n:,} approved samples** (every approved sample).*"
