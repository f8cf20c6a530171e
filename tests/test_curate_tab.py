"""The Curate tab served for real and driven through gradio_client: filtered pages, the focus view, an edit that
breaks the format, bulk preview -> confirm -> undo, clusters, statistics, split, import and export."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.services import Services
from browser import api_client
from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import Sample

NO_FILTER = [[], [], [], [], [], None, None, None, "any", "any", None, "", "", "any", "any"]


def with_filter(**kw):
    names = ["statuses", "providers", "models", "prompt_versions", "languages", "emotion", "occupation", "effect",
             "grounded", "duplicates", "cluster_id", "flag", "text", "split", "edited"]
    values = list(NO_FILTER)
    for k, v in kw.items():
        values[names.index(k)] = v
    return values


@pytest.fixture
def client(catalog_db, free_port):
    from app.ui import build_app

    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=12, seed=2)))
    demo = build_app(Services(db=catalog_db))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        yield api_client(f"http://127.0.0.1:{free_port}/"), catalog_db
    finally:
        demo.close()


def status_counts(db) -> dict[str, int]:
    from collections import Counter

    with db.session() as s:
        return dict(Counter(s.scalars(select(Sample.status))))


def test_curate_tab_pages_edits_and_bulk_changes_with_undo(client, tmp_path):
    client, db = client
    summary, table, page_no = client.predict(*with_filter(statuses=["pending"]), "oldest", 25, 1,
                                             api_name="/curate_search")
    assert "**12 samples match**" in summary and page_no == 1
    first_id = table["data"][0][0]
    assert [row[0] for row in table["data"]] == sorted(row[0] for row in table["data"])

    rendered, raw, instruction, input_text, output, *_rest, message = client.predict(first_id,
                                                                                     api_name="/curate_open")
    assert f"Sample #{first_id}" in rendered and output.startswith("1. ") and "User turn" in rendered
    broken = output.split("\n2. ")[0]
    fields = [instruction, input_text, broken, *_rest]
    result = client.predict(first_id, *fields, api_name="/curate_save")
    assert "status **needs_review**" in result[-1] and "format:expected_3_books_got_1" in result[-1]
    with db.session() as s:
        sm = s.get(Sample, first_id)
    assert sm.status == "needs_review" and sm.original["output"] == output

    with pytest.raises(Exception, match="output cannot be empty"):
        client.predict(first_id, instruction, input_text, "", *_rest, api_name="/curate_save")

    preview = client.predict("rejected", *with_filter(statuses=["pending"]), api_name="/curate_bulk_preview")
    assert "Set **11 samples**" in preview
    assert status_counts(db) == {"pending": 11, "needs_review": 1}  # a preview changes nothing
    done = client.predict(api_name="/curate_bulk_confirm")
    assert "11 samples set to **rejected**" in done
    assert status_counts(db) == {"rejected": 11, "needs_review": 1}
    undone = client.predict(api_name="/curate_undo")
    assert "Undone" in undone and status_counts(db) == {"pending": 11, "needs_review": 1}
    with pytest.raises(Exception, match="Nothing to undo"):
        client.predict(api_name="/curate_undo")


def test_curate_tab_statistics_split_import_and_export(client, tmp_path):
    client, db = client
    stats = client.predict(*NO_FILTER, api_name="/curate_stats")
    assert "**12 samples**" in stats[0] and stats[1]["data"] == [["pending", 12]]
    assert len(stats[-1]["data"]) > 0  # most recommended titles

    empty = client.predict("alpaca", True, "", *NO_FILTER, api_name="/curate_export")
    assert empty[0] is None and "Nothing to export" in empty[1]

    with db.begin() as s:
        for sm in s.scalars(select(Sample)):
            sm.status = "approved"
    split = client.predict(0.25, 7, "", api_name="/curate_assign_splits")
    assert "**12 approved samples** — train 9 · eval 3" in split

    path, message = client.predict("chat", True, "", *with_filter(split="eval"), api_name="/curate_export")
    assert "Exported 3 approved samples as chat" in message
    lines = [json.loads(x) for x in open(path, encoding="utf-8").read().splitlines()]
    assert len(lines) == 3 and [m["role"] for m in lines[0]["messages"]] == ["user", "assistant"]

    from gradio_client import handle_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\n{"oops": 1}\n')
    report = client.predict(handle_file(str(bad)), "", api_name="/curate_import")
    assert "nothing was imported" in report and "line 2: neither alpaca" in report
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"instruction": "Recommend 3 books for a tired nurse.", "input": "",
                                "output": lines[0]["messages"][1]["content"] + " (new)"}) + "\n")
    report = client.predict(handle_file(str(good)), "nurse-set", api_name="/curate_import")
    assert "Imported 1 samples" in report
    with db.session() as s:
        assert s.scalar(select(Sample.model).where(Sample.provider == "import")) == "nurse-set"
