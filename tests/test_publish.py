"""Which model answers the reader (training/publish.py): the published run, else the best evaluated one, never
simply the newest (issue 13, item 1)."""
import pytest

from app.cli import main
from db.models import EvalRun, TrainingRun
from training.publish import PublishError, publish_run, reader_name, reader_run


def _run(db, name, status="completed", samples=1200):
    with db.begin() as s:
        run = TrainingRun(name=name, status=status, base_model="tiny", sample_ids=list(range(samples)),
                          adapter_path=None if status == "failed" else "/x")
        s.add(run)
        s.flush()
        return run.id


def _evaluated(db, run_id, grounding):
    with db.begin() as s:
        s.add(EvalRun(label=f"run:{run_id}", config={}, sample_ids=[], total=1, status="completed",
                      backend={"name": f"run:{run_id}", "kind": "local", "adapter_run": run_id},
                      metrics={"grounding_rate": grounding}))


def test_a_newer_run_never_replaces_the_reader_model_by_finishing(sqlite_db):
    demo = _run(sqlite_db, "demo")
    assert reader_run(sqlite_db) is None  # finished but never evaluated: readers keep the base model
    _evaluated(sqlite_db, demo, 0.9)
    test_run = _run(sqlite_db, "2-step test", status="stopped", samples=40)
    assert reader_run(sqlite_db).id == demo  # the stopped test run finished last, and is not chosen
    _evaluated(sqlite_db, test_run, 0.4)
    assert reader_run(sqlite_db).id == demo  # evaluated, but it grounds fewer books
    publish_run(sqlite_db, test_run)
    assert reader_run(sqlite_db).id == test_run  # the operator's choice wins
    assert reader_run(sqlite_db, base_model="another") is None  # an adapter of another base model does not fit
    publish_run(sqlite_db, None)
    assert reader_run(sqlite_db).id == demo
    assert reader_name(reader_run(sqlite_db)) == "moodshelf model, fine-tuned on 1,200 samples"
    assert reader_name(None) == "base model (not fine-tuned)"


def test_only_a_finished_run_with_an_adapter_can_be_published(sqlite_db):
    failed = _run(sqlite_db, "broken", status="failed")
    with pytest.raises(PublishError, match="has no adapter"):
        publish_run(sqlite_db, failed)
    with pytest.raises(PublishError, match="No training run 99"):
        publish_run(sqlite_db, 99)


def test_publish_on_the_command_line(home, capsys):
    from db.engine import open_db

    db = open_db()
    run_id = _run(db, "demo")
    assert main(["publish", str(run_id)]) == 0
    assert "Readers now get: moodshelf model, fine-tuned on 1,200 samples (run 1: demo)" in capsys.readouterr().out
    assert main(["publish"]) == 2 and "Name the run to publish" in capsys.readouterr().err
    assert main(["publish", "--none"]) == 0 and "base model" in capsys.readouterr().out
