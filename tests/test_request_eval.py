"""Evaluation on request sets: unseen grid requests (a seed no job used, no stored sample's request) or a JSONL
file, answered through the recommendation pipeline several at a time, scored, stored, and compared side by side."""
import json
import threading

import pytest
from sqlalchemy import func, select

from browser import api_client
from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import Book, EvalResult, EvalRun, Sample
from training.eval_config import EvalConfig, EvalError
from training.evals import comparison_table, create_eval, request_set_evals
from training.request_sets import grid_requests, load_requests_file, request_key, unused_seed


def _keys(requests):
    return [request_key(r["language"], r["emotion"], r["occupation"], r["effects"], r["situation"], r["focus"])
            for r in requests]


# -- drawing from the grid ---------------------------------------------------------------------------------------
def test_grid_requests_are_deterministic_per_seed_in_each_language(sqlite_db):
    first, seed = grid_requests(sqlite_db, ["en", "ko"], 5, seed=123)
    again, _ = grid_requests(sqlite_db, ["en", "ko"], 5, seed=123)
    other, _ = grid_requests(sqlite_db, ["en", "ko"], 5, seed=124)
    assert seed == 123 and first == again and first != other
    assert [r["language"] for r in first] == ["en"] * 5 + ["ko"] * 5
    assert len(set(_keys(first))) == 10 and all(r["effects"] and r["free_text"] == "" for r in first)


def test_a_seed_a_generation_job_used_is_refused_and_the_default_skips_it(catalog_db):
    job = create_job(catalog_db, JobConfig(language="en", count=3, seed=9001, auto_approve=True))
    run_job(catalog_db, job)
    assert unused_seed(catalog_db) == 9002
    with pytest.raises(EvalError, match=rf"Seed 9001 was used by generation job #{job}.*--seed 9002"):
        grid_requests(catalog_db, ["en"], 3, seed=9001)
    _, seed = grid_requests(catalog_db, ["en"], 3)
    assert seed == 9002


def test_drawn_requests_skip_any_stored_samples_request_and_keep_the_rest_of_the_draw(sqlite_db):
    drawn, _ = grid_requests(sqlite_db, ["en"], 6, seed=77)
    with sqlite_db.begin() as s:  # samples (from any job, or imported) that ask exactly what requests 0 and 3 ask
        for n, r in enumerate((drawn[0], drawn[3])):
            s.add(Sample(instruction="i", input="", output="o", emotion=r["emotion"], occupation=r["occupation"],
                         effect=", ".join(reversed(r["effects"])), situation=r["situation"], focus=r["focus"],
                         language="en", provider="offline", model="m", prompt_version="v", status="rejected",
                         content_hash=f"h{n}"))
    again, _ = grid_requests(sqlite_db, ["en"], 6, seed=77)
    assert len(again) == 6 and not set(_keys(again)) & set(_keys([drawn[0], drawn[3]]))
    assert again[:4] == [drawn[1], drawn[2], drawn[4], drawn[5]]  # the same draw, the taken ones left out


# -- a JSONL file ------------------------------------------------------------------------------------------------
def test_request_file_lists_every_bad_line_and_creates_nothing(sqlite_db, tmp_path):
    lines = [json.dumps({"language": "en", "emotion": "anxious", "effects": ["comfort"]}),
             "{not json",
             json.dumps({"language": "en", "mood": "calm", "emotion": "sad"}),
             "",
             json.dumps({"emotion": "lonely"}),
             json.dumps({"language": "ko"}),
             json.dumps({"language": "en", "effects": 3}),
             json.dumps(["en", "anxious"])]
    path = tmp_path / "reqs.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(EvalError) as err:
        create_eval(sqlite_db, EvalConfig(backend="base", requests_file=str(path)))
    problems = err.value.problems
    assert problems[0].endswith("6 problem(s), nothing loaded")
    text = "\n".join(problems)
    for number in (2, 3, 5, 6, 7, 8):
        assert f"line {number}:" in text
    assert "line 1:" not in text and "line 4:" not in text      # the good line and the blank one
    assert "unknown field(s) mood" in text and "'language' is missing" in text and "요청이 비어 있습니다" in text
    with sqlite_db.session() as s:
        assert s.scalar(select(func.count()).select_from(EvalRun)) == 0


def test_request_file_loads_lists_or_comma_separated_effects(tmp_path):
    path = tmp_path / "reqs.jsonl"
    path.write_text(json.dumps({"language": "ko", "emotion": "외로움", "effects": "위로, 희망", "free_text": " 짧은  글 "},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    (req,) = load_requests_file(path)
    assert req == {"language": "ko", "emotion": "외로움", "occupation": "", "effects": ["위로", "희망"],
                   "situation": "", "focus": "", "free_text": "짧은 글"}


def test_request_set_config_problems_are_collected():
    with pytest.raises(EvalError) as err:
        EvalConfig(requests="grid", language="fr", count=0, concurrency=0, judge="openai:gpt-4.1-mini").validate()
    text = str(err.value)
    assert "language must be ko, en" in text and "count must be > 0" in text and "concurrency must be > 0" in text
    assert "a request set has none" in text
    with pytest.raises(EvalError, match="Constrained decoding is evaluated on request sets"):
        EvalConfig(constrained=True).validate()
    assert EvalConfig(requests_file="x.jsonl").requests == "file"


# -- the worker, on a fake local model -----------------------------------------------------------------------------
class FakeLocalModel:
    """A local model that answers in the samples' format: under a constraint (the RowConstraint the pipeline
    builds from the real title trie), the first three books its trie allows; without one, a catalog book twice
    and an invented one. It records the constraints it got and how many answers were being generated at once."""

    def __init__(self, db, base_model: str, together: int, tokenizer):
        self.base_model, self.adapters, self.tokenizer = base_model, {}, tokenizer
        with db.session() as s:
            self.books = {(b.id, b.language): (b.title, b.author) for b in s.scalars(select(Book).order_by(Book.id))}
        self.constraints, self.active, self.peak = [], 0, 0
        self.lock = threading.Lock()
        # The first `together` answers wait for one another: only a concurrent caller gets past it.
        self.barrier = threading.Barrier(together, timeout=30)

    def add_adapter(self, name, path):
        self.adapters[name] = path

    def stream(self, prompt, adapter=None, *, max_new_tokens=320, stats=None, temperature=0.0, row_processor=None):
        constraint = row_processor
        with self.lock:
            self.constraints.append(constraint)
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            self.barrier.wait()
        finally:
            with self.lock:
                self.active -= 1
        if constraint is not None:
            books = [self.books[(int(i), "en")] for i in constraint.trie.book_ids[:constraint.n_books]]
        else:
            first = next(book for (_, lang), book in self.books.items() if lang == "en")
            books = [first, first, ("Zzyzx Quantum Marmalade", "Nobody Real")]
        text = "\n".join(f"{n}. {t} - {a}\n - Why this book: it fits.\n - How it may help: calm."
                         for n, (t, a) in enumerate(books, 1))
        for word in text.split(" "):
            yield word + " "
        stats.tokens, stats.prompt_tokens = len(text.split()), 20


def test_worker_answers_requests_concurrently_through_the_pipeline_and_scores_them(catalog_db, tiny_model_dir):
    from transformers import AutoTokenizer

    from training.evaluate import LocalModels, evaluate

    fake = FakeLocalModel(catalog_db, "fake-base", together=4, tokenizer=AutoTokenizer.from_pretrained(tiny_model_dir))
    local = LocalModels(models={"fake-base": fake})
    on = create_eval(catalog_db, EvalConfig(backend="base", base_model="fake-base", requests="grid", count=8,
                                            seed=42, concurrency=4))
    off = create_eval(catalog_db, EvalConfig(backend="base", base_model="fake-base", requests="grid", count=8,
                                             seed=42, concurrency=4, constrained=False))
    with catalog_db.begin() as s:  # as if an earlier worker answered request 5 of the second one and died
        s.add(EvalResult(eval_run_id=off, request_index=5, output="kept", metrics={"n_books": 0}))
        s.get(EvalRun, off).done = 1
    evaluate(catalog_db, on, local)
    fake.barrier = threading.Barrier(1)  # 7 answers left: no longer in fours
    evaluate(catalog_db, off, local)

    assert fake.peak == 4  # four requests were being answered at once
    constrained = [c for c in fake.constraints if c is not None]
    assert len(constrained) == 8 and len(fake.constraints) == 8 + 7  # request 5 was not answered again
    with catalog_db.session() as s:  # the base model's plain shape: any English catalog book may be named
        en_ids = set(s.scalars(select(Book.id).where(Book.language == "en")))
    assert all(set(c.trie.book_ids.tolist()) == en_ids and c.n_books == 3 for c in constrained)
    assert len({id(c) for c in constrained}) == 8  # one constraint per answer: it keeps that answer's state
    with catalog_db.session() as s:
        ev_on, ev_off = s.get(EvalRun, on), s.get(EvalRun, off)
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == on)))
        en_books = s.scalar(select(func.count()).select_from(Book).where(Book.language == "en"))
    assert ev_on.mode == "requests" and ev_on.request_set == "grid en seed 42 x8" and ev_on.total == 8
    assert ev_on.config["constrained"] is True and ev_off.config["constrained"] is False
    assert sorted(r.request_index for r in results) == list(range(8)) and all(r.sample_id is None for r in results)
    assert all(r.ttft_s is not None and r.latency_s >= r.ttft_s and r.output_tokens for r in results)
    m_on, m_off = ev_on.metrics, ev_off.metrics
    assert (m_on["format_compliance"], m_on["grounding_rate"], m_on["repeated_books"]) == (1.0, 1.0, 0)
    assert m_on["coverage"] == pytest.approx(3 / en_books) and m_on["unique_titles"] == 3
    assert m_on["right_language"] == 1.0 and m_on["throughput_tokens_per_s"] > 0
    # Unconstrained: 7 fresh answers with a repeat and an invented book each, and the kept one with none.
    assert m_off["answers"] == 8 and m_off["repeated_books"] == 7 and m_off["hallucinated_books"] == 7
    assert m_off["grounding_rate"] == pytest.approx(14 / 21)

    headers, rows = comparison_table(request_set_evals(catalog_db, "grid en seed 42 x8"))
    assert [r[:3] for r in rows] == [[ev_on.label, "on", "8/8"], [ev_off.label, "off", "8/8"]]
    row = dict(zip(headers, rows[1]))
    assert row["grounded %"] == pytest.approx(66.7) and row["hallucinated %"] == pytest.approx(33.3)
    assert row["repeats"] == 7 and row["format %"] == 87.5  # the kept answer has no list


def test_comparison_keeps_the_newest_evaluation_of_each_backend_and_setting(catalog_db):
    def add(label, name, constrained, grounding, kind="local"):
        with catalog_db.begin() as s:
            ev = EvalRun(label=label, backend={"name": name, "kind": kind}, config={"constrained": constrained},
                         status="completed", mode="requests", request_set="grid en seed 1 x2", done=2, total=2,
                         metrics={"grounding_rate": grounding, "ttft_p50_s": 0.123, "tokens_per_s": 12.34})
            s.add(ev)
            s.flush()
            return ev.id

    add("base model", "base", True, 0.5)
    newer = add("base model", "base", True, 0.75)
    api = add("openai:gpt", "openai:gpt", False, 1.0, kind="openai")
    headers, rows = comparison_table(request_set_evals(catalog_db))
    assert [r[0] for r in rows] == ["base model", "openai:gpt"]
    assert rows[0][headers.index("grounded %")] == 75.0 and rows[1][headers.index("constrained")] == "-"
    assert rows[0][headers.index("median TTFT s")] == 0.12 and rows[0][headers.index("tokens/s")] == 12.3
    assert [ev.id for ev in request_set_evals(catalog_db)] == [newer, api]

    from app.progress import format_table

    text = format_table(headers, rows).splitlines()
    assert text[0].startswith("backend") and "grounded %" in text[0] and len(text) == 4
    assert "75.0" in text[2] and text[3].split()[-1] == "12.3"


# -- the CLI, end to end on a tiny model ----------------------------------------------------------------------------
def test_cli_evaluates_grid_requests_in_a_worker_and_prints_the_comparison(catalog_db, tiny_model_dir, capsys):
    from app.cli import main

    assert main(["eval", "--backend", "base", "--base-model", tiny_model_dir, "--requests", "grid", "--count", "1",
                 "--language", "en,ko", "--seed", "5", "--max-new-tokens", "12", "--compare-constrained",
                 "--concurrency", "2"]) == 0
    out = capsys.readouterr().out
    with catalog_db.session() as s:
        evs = s.scalars(select(EvalRun).order_by(EvalRun.id)).all()
        outputs = {ev.id: [r.output for r in ev.results] for ev in evs}
    assert [ev.config["constrained"] for ev in evs] == [True, False]
    assert evs[0].pid is None and evs[0].pid == evs[1].pid  # one worker ran both, and is gone
    for ev in evs:
        assert ev.status == "completed" and ev.mode == "requests" and ev.total == 2 and len(outputs[ev.id]) == 2
        assert ev.request_set == "grid en,ko seed 5 x1"
    # Under the constraint even a random model opens the list; unconstrained it writes no numbered list.
    assert all(o.startswith("1.") for o in outputs[evs[0].id])
    assert evs[1].metrics["format_compliance"] == 0.0
    assert "request set: grid en,ko seed 5 x1" in out and "grounded %" in out and "tokens/s" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("base model")]
    assert [r[3] for r in rows] == ["on", "off"]  # "base model (tiny-llama0)", then constrained
    assert main(["evals", "--compare"]) == 0
    assert "grid en,ko seed 5 x1" in capsys.readouterr().out


# -- the demo's evaluation step, and the Evaluate tab on first open -------------------------------------------------
def test_demo_evaluation_runs_base_and_run_on_and_off_in_one_worker_then_reuses_it(catalog_db, adapter_run, capsys):
    from app.demo import demo_evaluation
    from app.eval_tab import build_eval_tab
    from app.services import Services

    demo_evaluation(catalog_db, adapter_run, "en", 2, max_new_tokens=16)
    out = capsys.readouterr().out
    with catalog_db.session() as s:
        evs = s.scalars(select(EvalRun).order_by(EvalRun.id)).all()
    assert [(ev.backend["name"], ev.config["constrained"]) for ev in evs] == [
        ("base", True), ("base", False), (f"run:{adapter_run}", True), (f"run:{adapter_run}", False)]
    assert all(ev.status == "completed" and ev.total == 2 and ev.training_run_id == adapter_run for ev in evs)
    assert len({ev.pid for ev in evs}) == 1 and len({ev.request_set for ev in evs}) == 1  # one worker, one set
    assert evs[0].request_set == "grid en seed 9001 x2" and out.count(f"run:{adapter_run} (tiny)") == 2

    demo_evaluation(catalog_db, adapter_run, "en", 2, max_new_tokens=16)  # the run is reused: so is its evaluation
    again = capsys.readouterr().out
    with catalog_db.session() as s:
        assert s.scalar(select(func.count()).select_from(EvalRun)) == 4
    assert "evaluated on grid en seed 9001 x2 already" in again and again.count(f"run:{adapter_run} (tiny)") == 2

    import gradio as gr

    with gr.Blocks() as page:  # the Evaluate tab opens on the latest comparison: the demo's
        build_eval_tab(Services(db=catalog_db, base_model=str(evs[0].backend["base_model"])))
    (table,) = [c for c in page.blocks.values() if getattr(c, "elem_id", None) == "req_compare"]
    value = table.value
    assert value["headers"][:2] == ["backend", "constrained"]
    assert [row[1] for row in value["data"]] == ["on", "off", "on", "off"]


def test_evaluate_tab_starts_a_request_set_evaluation_and_shows_the_comparison(catalog_db, tiny_model_dir, free_port):
    from app.eval_tab import request_configs
    from app.services import Services
    from app.ui import build_app
    from training.evals import wait_for_evals

    configs = request_configs(["base", "openai-compatible:m@http://127.0.0.1:9/v1"], "grid", ["en"], 2, None, None,
                              "on and off", 4, 64, tiny_model_dir)
    assert [(c.backend, c.constrained) for c in configs] == [("base", True), ("base", False),
                                                             ("openai-compatible:m@http://127.0.0.1:9/v1", None)]
    demo = build_app(Services(db=catalog_db, base_model=tiny_model_dir))
    demo.queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        ids, *_ = client.predict(["base"], "", "grid", ["en"], 1, 31, None, "on and off", 2, 8,
                                 api_name="/start_request_evaluation")
        eval_ids = [int(x) for x in ids.split(",")]
        evs = wait_for_evals(catalog_db, eval_ids, poll_s=0.3)
        assert [ev.status for ev in evs] == ["completed", "completed"], [ev.error for ev in evs]
        assert {ev.request_set for ev in evs} == {"grid en seed 31 x1"}
        table = client.predict(ids, "grid en seed 31 x1", api_name="/show_comparison")
        assert [row[1] for row in table["data"]] == ["on", "off"]
        with pytest.raises(Exception, match="Upload a JSONL file"):
            client.predict(["base"], "", "file", ["en"], 1, None, None, "on", 2, 8,
                           api_name="/start_request_evaluation")
    finally:
        demo.close()
