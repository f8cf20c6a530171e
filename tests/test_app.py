"""The Gradio app, served for real and driven through gradio_client: Recommend streams an answer with
catalog cards, Compare runs base vs fine-tuned and stores the comparison, bad input gets a clear error."""
import re

import pytest
from sqlalchemy import select

from app.services import BASE_LABEL, Services, form_request
from browser import api_client
from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import Comparison
from training.config import TrainConfig


def test_empty_request_is_refused_in_both_languages():
    with pytest.raises(ValueError, match="request is empty"):
        form_request("en", "", "", [], "", "", "")
    with pytest.raises(ValueError, match="요청이 비어"):
        form_request("ko", "", "", [], "", "", "")


def test_request_uses_the_training_format():
    request = form_request("ko", "불안함", "직장인", ["위로", "안정"], "잠들기 전 휴식", "가볍게 읽을 수 있음")
    prompt = request.prompt()
    assert prompt.startswith("불안한 직장인에게 위로와 안정을 주는 책 3권을 추천해줘.")
    assert prompt.endswith("감정: 불안함\n직업: 직장인\n효과: 위로, 안정\n상황: 잠들기 전 휴식\n집중도: 가볍게 읽을 수 있음")
    assert request.fields()["moods"] == ["comfort", "calm"]


def test_adapter_of_a_different_base_model_is_refused(catalog_db, adapter_run, tiny_model_dir):
    db, run_id = catalog_db, adapter_run  # a completed run on the tiny model (conftest)
    services = Services(db=db, base_model="smollm2-135m")
    assert services.backend_choices() == [BASE_LABEL]  # runs on other bases are not offered
    with pytest.raises(ValueError, match="does not fit"):
        services.adapter_for(f"run:{run_id} (tiny)")


def test_served_app_recommends_and_compares(catalog_db, adapter_run, tiny_model_dir, free_port):
    from app.ui import build_app

    db, run_id = catalog_db, adapter_run
    services = Services(db=db, base_model=tiny_model_dir)
    run_label = f"run:{run_id} (tiny)"
    assert services.backend_choices() == [run_label, BASE_LABEL]
    demo = build_app(services)
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False,
                quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        answer, cards, crisis = client.predict(run_label, "en", "anxious", "nurse", ["calm"], "the commute",
                                               "light and easy", "", api_name="/recommend")
        assert crisis == ""  # an ordinary request: no crisis message
        # Random weights write noise, but catalog-constrained decoding (on by default) opens the numbered list
        # and lets the model name catalog books only: every card is in the catalog, the first title among them.
        assert answer.startswith("1. ")
        shown = re.search(r"\*\*(\d+) of (\d+) books are in the catalog\*\*", cards)
        assert ("**The one book is in the catalog**" in cards
                or shown and shown.group(1) == shown.group(2) and int(shown.group(1)) >= 1), cards
        first_title = answer.splitlines()[0].removeprefix("1. ").rsplit(" - ", 1)[0]
        assert f"**{first_title}**" in cards.replace("\\", "")  # the cards escape markdown

        left, left_stats, right, right_stats, _, third, _crisis = client.predict(
            BASE_LABEL, run_label, "(none)", "en", "anxious", "nurse", ["calm"], "the commute", "light and easy", "",
            api_name="/compare")
        assert third == ""  # a column left empty stays empty
        assert "first token" in left_stats and "first token" in right_stats
        for stats in (left_stats, right_stats):  # both local, both constrained: all their books in the catalog
            assert re.search(r"\*\*([1-9]\d*)/\1 books in catalog\*\*", stats), stats
        with db.session() as s:
            comparison = s.scalars(select(Comparison)).one()
        assert [r["backend"] for r in comparison.results] == [BASE_LABEL, run_label]
        assert comparison.results[1]["output"] == right

        with pytest.raises(Exception, match="request is empty"):
            client.predict(run_label, "en", "", "", [], "", "", "", api_name="/recommend")
    finally:
        demo.close()


def test_generate_tab_starts_a_worker_job_and_reports_bad_input(catalog_db, free_port):
    import time

    from app.ui import build_app
    from db.models import GenerationJob

    demo = build_app(Services(db=catalog_db))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        grid = ["anxious", "nurse", "calm\ncomfort", "the commute", "light and easy"]
        args = ["offline", "", "", "en", 6, 1, 3, 12, 2, 0, 0, True, False, False, 45]
        job_id, progress, history = client.predict(*args, *grid, api_name="/start_job_clicked")
        deadline = time.time() + 60
        while time.time() < deadline:
            with catalog_db.session() as s:
                job = s.get(GenerationJob, int(job_id))
            if job.status != "running":
                break
            time.sleep(0.3)
        assert job.status == "completed" and job.accepted == 6
        assert job.config["effects"] == ["calm", "comfort"]
        assert job.config["timeout_s"] == 45  # the tab's call timeout reaches the job (and its provider)
        with pytest.raises(Exception, match="count must be > 0"):
            client.predict("offline", "", "", "en", 0, 1, 3, 12, 2, 0, 0, True, False, False, 60, *grid,
                           api_name="/start_job_clicked")
        with pytest.raises(Exception, match="No OPENAI_API_KEY set"):
            client.predict("openai", "", "", "en", 5, 1, 3, 12, 2, 0, 0, True, False, False, 60, *grid,
                           api_name="/start_job_clicked")
    finally:
        demo.close()


def test_train_tab_checks_the_dataset_then_trains_and_shows_progress(catalog_db, tiny_model_dir, free_port):
    import time

    from app.train_tab import FIELDS
    from app.ui import build_app
    from db.models import TrainingRun

    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=10, seed=4, auto_approve=True)))
    demo = build_app(Services(db=catalog_db))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        cfg = TrainConfig(base_model=tiny_model_dir, max_steps=3, batch_size=2, lora_r=4, max_length=256,
                          eval_fraction=0.2, language="en")
        values = [getattr(cfg, f) for f in FIELDS]
        preview, prompt, answer, command = client.predict(*values, api_name="/on_check")[:4]
        assert "**10 approved samples**" in preview and "Tokens per example" in preview
        assert "Memory preflight" in preview
        assert "Recommend 3 books" in prompt and answer.startswith("1. ")
        assert command.startswith("moodshelf train --base-model") and "--max-steps 3" in command
        run_id = client.predict(*values, api_name="/on_start")[0]
        deadline = time.time() + 120
        while time.time() < deadline:
            with catalog_db.session() as s:
                run = s.get(TrainingRun, int(run_id))
            if run.status not in ("queued", "running"):
                break
            time.sleep(0.5)
        assert run.status == "completed", run.error
        status, plot, log, history = client.predict(run_id, api_name="/refresh_1")
        assert "completed" in status and "step 3/3" in status
        points = plot["value"]["data"]  # an update: the live loss plot's points and a y range that holds them
        series = [row[2] for row in points]
        assert series.count("train") == 3 and series.count("eval") == 1
        lo, hi = plot["y_lim"]
        assert all(lo < row[1] < hi for row in points)
        bad = values.copy()
        bad[FIELDS.index("lora_r")] = 0
        with pytest.raises(Exception, match="lora_r must be > 0"):
            client.predict(*bad, api_name="/on_check")
    finally:
        demo.close()
