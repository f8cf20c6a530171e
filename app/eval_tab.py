"""Evaluate tab: pick backends and a held-out eval split, run the batch evaluation in a worker process, watch its
progress, read the results as a table and a bar chart per metric, and see base vs fine-tuned for each run.
Beside it, a request set: unseen requests drawn from the grid or a JSONL file, answered through the
recommendation pipeline with constrained decoding on and/or off, and compared side by side (the latest
comparison shows on first open: the demo's).

The form is a view of EvalConfig (the same object as `moodshelf eval`'s flags); one EvalConfig per picked
backend, all run by one worker so the base model is loaded once.
"""
from __future__ import annotations

import os
from types import SimpleNamespace

import gradio as gr
import pandas as pd
from sqlalchemy import select

from app.config_views import form_values
from app.page_style import empty_number
from app.services import Services
from db.models import EvalRun, TrainingRun
from training.eval_config import DEFAULT_JUDGE_MODELS, KEY_ENV, EvalConfig, EvalError
from training.evals import (before_after, cancel_eval, comparison_table, create_eval, latest_request_set,
                            list_evals, reconcile_evals, request_set_evals, runs_with_before_after, start_evals)
from training.metrics import METRICS
from vendors.labels import format_label

TABLE_COLUMNS = ["id", "status", "backend", "split of run / request set", "answers"] + list(METRICS)
ALL_EVAL_SAMPLES = "all held-out samples"
DEFAULTS = EvalConfig()  # the form starts from the model's defaults...
# ...except "all samples": on 2 CPU cores a local answer takes 5-15 s, so all of a large split takes hours. This
# many finishes in a few minutes; the estimate under the box says how long, from this machine's last evaluation.
DEFAULT_LIMIT = 20
ASSUMED_S_PER_ANSWER = 10.0  # before any evaluation has finished here


def backend_choices(services: Services) -> list[tuple[str, str]]:
    """(label, backend name): the base model, every finished run's adapter, the API models whose key is set."""
    choices = [(f"base model ({services.base_model})", "base")]
    choices += [(format_label("local", adapter_run=r.id, run_name=r.name), f"run:{r.id}")
                for r in services.finished_runs()]
    for kind, model in DEFAULT_JUDGE_MODELS.items():
        if os.environ.get(KEY_ENV[kind]):
            choices.append((f"{kind}:{model}", f"{kind}:{model}"))
    return choices


def split_choices(services: Services) -> list[tuple[str, str]]:
    with services.db.session() as s:
        runs = [r for r in s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())) if r.eval_sample_ids]
    return [(f"run:{r.id} ({r.name}, {len(r.eval_sample_ids)} samples)", str(r.id)) for r in runs] + \
        [(ALL_EVAL_SAMPLES, "")]


def seconds_per_answer(services: Services) -> tuple[float, bool]:
    """Seconds one answer took in this machine's latest finished evaluation (measured=True), else a guess."""
    with services.db.session() as s:
        ev = s.scalars(select(EvalRun).where(EvalRun.status == "completed", EvalRun.done > 0,
                                             EvalRun.started_at.is_not(None), EvalRun.finished_at.is_not(None))
                       .order_by(EvalRun.id.desc()).limit(1)).first()
    if ev is None:
        return ASSUMED_S_PER_ANSWER, False
    return max((ev.finished_at - ev.started_at).total_seconds() / ev.done, 0.1), True


def estimate_markdown(services: Services, backends, limit, split_run) -> str:
    """How long the evaluation as set up would take, before it starts."""
    n_backends = max(len(backends or []), 1)
    n = int(limit or 0)
    if not n:
        with services.db.session() as s:
            run = s.get(TrainingRun, int(split_run)) if split_run else None
            n = len(run.eval_sample_ids) if run else 0
        if not n:
            return "*All eval samples: the estimate needs a training run's split picked.*"
    per, measured = seconds_per_answer(services)
    minutes = n * n_backends * per / 60
    basis = "measured on this machine's last evaluation" if measured else "a guess until one evaluation finishes here"
    return f"*About {minutes:.0f} min: {n} samples × {n_backends} backend(s) × {per:.0f} s per answer ({basis}).*"


def progress_markdown(evs: list[EvalRun]) -> str:
    if not evs:
        return "*No evaluation running. Pick backends and press Evaluate.*"
    lines = []
    for ev in evs:
        pct = ev.done / ev.total if ev.total else 0
        bar = "█" * int(pct * 30) + "░" * (30 - int(pct * 30))
        lines.append(f"**#{ev.id} {ev.label}** — {ev.status} `{bar}` {ev.done}/{ev.total}")
        if ev.error:
            lines.append(f"⚠️ {ev.error}")
    return "\n\n".join(lines)


def _round(v):
    return round(v, 4) if isinstance(v, float) else v


def results_table(evs: list[EvalRun]) -> list[list]:
    return [[ev.id, ev.status, ev.label, ev.request_set if ev.mode == "requests" else ev.training_run_id, ev.done]
            + [_round(ev.metrics.get(m)) for m in METRICS]
            for ev in evs]


def metric_frame(evs: list[EvalRun], metric: str) -> pd.DataFrame:
    rows = [{"backend": f"#{ev.id} {ev.label}", "value": float(ev.metrics[metric])} for ev in evs
            if ev.status == "completed" and ev.metrics.get(metric) is not None]
    return pd.DataFrame(rows or {"backend": [], "value": []}).astype({"value": float})


def before_after_views(services: Services, run_id) -> tuple[list[list], pd.DataFrame]:
    if not run_id:
        return [], pd.DataFrame({"metric": [], "change": []})
    rows = before_after(services.db, int(run_id))
    table = [[r["metric"], _round(r["base"]), _round(r["fine_tuned"]), _round(r["delta"]),
              {True: "better", False: "worse", None: ""}[r["better"]]] for r in rows]
    bars = [{"metric": r["metric"], "change": float(r["delta"])} for r in rows
            if r["delta"] is not None and METRICS[r["metric"]] and not r["metric"].startswith("latency")]
    return table, pd.DataFrame(bars or {"metric": [], "change": []}).astype({"change": float})


def request_sets(services: Services) -> list[str]:
    """Request sets with a completed evaluation, newest first."""
    with services.db.session() as s:
        rows = s.execute(select(EvalRun.request_set, EvalRun.id).where(EvalRun.mode == "requests",
                                                                        EvalRun.status == "completed")
                         .order_by(EvalRun.id.desc()))
        return list(dict.fromkeys(name for name, _ in rows if name))


def comparison_frame(evs: list[EvalRun]) -> pd.DataFrame:
    headers, rows = comparison_table(evs)
    return pd.DataFrame(rows, columns=headers)


def request_configs(names: list[str], source: str, languages: list[str], count, seed, file_path, constrained: str,
                    concurrency, new_tokens, base_model: str) -> list[EvalConfig]:
    """One EvalConfig per backend and constrained setting ("on", "off" or "on and off", local backends only)."""
    common = form_values(EvalConfig, requests="file" if source == "file" else "grid", requests_file=file_path,
                         language=",".join(languages or []), count=count, seed=seed, concurrency=concurrency,
                         max_new_tokens=new_tokens)
    settings = {"on": (True,), "off": (False,), "on and off": (True, False)}[constrained]
    configs = []
    for n in names:
        first = EvalConfig.from_dict({**common, "backend": n, "base_model": base_model if n == "base" else ""})
        for c in settings if first.validate().backend_spec().is_local else (None,):
            configs.append(first.replace(constrained=c).validate())
    return configs


def active_ids(services: Services) -> str:
    """The evaluations running (or queued) now, as the ids box shows them."""
    reconcile_evals(services.db)
    with services.db.session() as s:
        ids = s.scalars(select(EvalRun.id).where(EvalRun.status.in_(("queued", "running")),
                                                 EvalRun.pid.is_not(None)).order_by(EvalRun.id))
        return ", ".join(map(str, ids))


def finished_evals(services: Services) -> list[EvalRun]:
    return [ev for ev in list_evals(services.db) if ev.status == "completed"][:8]


def evals_by_ids(services: Services, ids_text: str) -> list[EvalRun]:
    with services.db.session() as s:
        return [ev for ev in (s.get(EvalRun, i) for i in _ids(ids_text)) if ev is not None]


def _ids(text: str) -> list[int]:
    return [int(x) for x in str(text or "").replace(",", " ").split() if x.strip().isdigit()]


def build_eval_tab(services: Services) -> None:
    with gr.Tab("Evaluate", id="evaluate") as tab:
        # One namespace of components, built section by section; the events are wired below.
        ui = SimpleNamespace(**vars(_split_layout(services)), **vars(_before_after_layout(services)),
                             **vars(_request_set_layout(services)))
        timer = gr.Timer(2.0)

    def start_evaluation(picked, other_backend, split_run, sample_limit, new_tokens, judge_name):
        names = list(picked or []) + ([other_backend.strip()] if other_backend and other_backend.strip() else [])
        if not names:
            raise gr.Error("Pick at least one backend.")
        try:
            # The base model of a run's split is the run's own (before/after compares like with like).
            shared = form_values(EvalConfig, run_id=split_run, limit=sample_limit, max_new_tokens=new_tokens,
                                 judge=judge_name)
            configs = [EvalConfig.from_dict({**shared, "backend": n, "base_model": services.base_model
                                             if n == "base" and not split_run else ""}).validate() for n in names]
            ids = [create_eval(services.db, cfg) for cfg in configs]
            start_evals(services.db, ids)
        except EvalError as e:
            raise gr.Error(str(e))
        text = ", ".join(map(str, ids))
        return (text, *refresh_progress(text, "grounding_rate"))

    def start_request_evaluation(picked, other_backend, source, languages, count, seed, file_path, constrained,
                                 concurrency, new_tokens):
        names = list(picked or []) + ([other_backend.strip()] if other_backend and other_backend.strip() else [])
        if not names:
            raise gr.Error("Pick at least one backend.")
        if source == "file" and not file_path:
            raise gr.Error("Upload a JSONL file of requests, or draw them from the grid.")
        try:
            configs = request_configs(names, source, languages, count, seed, file_path, constrained,
                                      concurrency, new_tokens, services.base_model)
            ids = [create_eval(services.db, cfg) for cfg in configs]
            start_evals(services.db, ids)
        except EvalError as e:
            raise gr.Error(str(e))
        text = ", ".join(map(str, ids))
        return (text, *refresh_progress(text, "grounding_rate"), comparison_frame(request_set_evals(
            services.db, eval_ids=ids)))

    def show_comparison(ids_text, set_name):
        """While this page's request-set evaluations run: theirs; otherwise the chosen (or latest) set."""
        with services.db.session() as s:
            mine = [ev for ev in (s.get(EvalRun, i) for i in _ids(ids_text)) if ev is not None
                    and ev.mode == "requests"]
        if mine and any(ev.status in ("queued", "running") for ev in mine):
            return comparison_frame(mine)
        return comparison_frame(request_set_evals(services.db, set_name or None))

    def refresh_progress(ids_text, metric_name):
        reconcile_evals(services.db)
        ids = _ids(ids_text) or _ids(active_ids(services))  # a reload reattaches to what is running
        with services.db.session() as s:
            current = [ev for ev in (s.get(EvalRun, i) for i in ids) if ev is not None]
        everything = list_evals(services.db)
        shown = current or [ev for ev in everything if ev.status == "completed"][:8]
        return progress_markdown(current), results_table(everything), metric_frame(shown, metric_name)

    def cancel_evaluation(ids_text):
        ids = _ids(ids_text)
        if not ids:
            raise gr.Error("No evaluation is running from this page.")
        cancel_eval(services.db, ids[0])
        return refresh_progress(ids_text, "grounding_rate")

    def show_before_after(run_id):
        return before_after_views(services, run_id)

    def refresh_choices(run_id, set_name):
        # New runs and finished evaluations appear when the tab is opened, without a restart.
        runs = [str(i) for i in runs_with_before_after(services.db)]
        names = request_sets(services)
        return (gr.CheckboxGroup(choices=backend_choices(services)), gr.Dropdown(choices=split_choices(services)),
                gr.Dropdown(choices=runs, value=run_id or (runs[0] if runs else None)),
                gr.Dropdown(choices=names, value=set_name or (names[0] if names else None)))

    def show_estimate(picked, other_backend, sample_limit, split_run):
        names = list(picked or []) + ([other_backend] if other_backend and other_backend.strip() else [])
        return estimate_markdown(services, names, sample_limit, split_run)

    def reattach(ids_text):
        return ids_text if _ids(ids_text) else active_ids(services)

    estimate_inputs = [ui.backends, ui.other, ui.limit, ui.split]
    for c in estimate_inputs:
        c.change(show_estimate, estimate_inputs, ui.estimate)
    timer.tick(reattach, ui.eval_ids, ui.eval_ids)
    progress_outputs = [ui.status, ui.table, ui.chart]
    ui.start.click(start_evaluation, [ui.backends, ui.other, ui.split, ui.limit, ui.max_tokens, ui.judge],
                   [ui.eval_ids, *progress_outputs])
    ui.cancel.click(cancel_evaluation, ui.eval_ids, progress_outputs)
    ui.metric.change(refresh_progress, [ui.eval_ids, ui.metric], progress_outputs)
    timer.tick(refresh_progress, [ui.eval_ids, ui.metric], progress_outputs)
    timer.tick(show_before_after, ui.ba_run, [ui.ba_table, ui.ba_chart])
    ui.ba_run.change(show_before_after, ui.ba_run, [ui.ba_table, ui.ba_chart])
    ui.req_start.click(start_request_evaluation,
                       [ui.backends, ui.other, ui.req_source, ui.req_languages, ui.req_count, ui.req_seed, ui.req_file,
                        ui.req_constrained, ui.req_concurrency, ui.max_tokens],
                       [ui.eval_ids, *progress_outputs, ui.compare])
    timer.tick(show_comparison, [ui.eval_ids, ui.req_set], ui.compare)
    ui.req_set.change(show_comparison, [ui.eval_ids, ui.req_set], ui.compare)
    tab.select(refresh_choices, [ui.ba_run, ui.req_set], [ui.backends, ui.split, ui.ba_run, ui.req_set])


def _split_layout(services: Services) -> SimpleNamespace:
    """Backends, the eval-split settings, progress, the results table and chart."""
    gr.Markdown("Score backends on the held-out eval split: format, grounding, invented books, mood fit, "
                "diversity, ROUGE-L against the reference, latency, and an LLM judge when an API key is set. "
                "It runs in its own process: close the page and come back.")
    with gr.Row():
        backends = gr.CheckboxGroup(backend_choices(services), value=["base"], label="Backends",
                                    elem_id="eval_backends")
        other = gr.Textbox(label="Other backend (optional)", placeholder="openai-compatible:MODEL@URL",
                           elem_id="eval_other")
    with gr.Row():
        split = gr.Dropdown(split_choices(services), value=None, label="Eval split of training run",
                            elem_id="eval_split")
        limit = gr.Number(DEFAULT_LIMIT, precision=0, label="Sample limit (0: all)", elem_id="eval_limit")
        max_tokens = gr.Number(DEFAULTS.max_new_tokens, precision=0, label="Max new tokens",
                               elem_id="eval_max_tokens")
        judge = gr.Dropdown(["", "auto"], value="", allow_custom_value=True,
                            label="LLM judge (auto: the API whose key is set)", elem_id="eval_judge")
    # Values given as functions are computed on every page load (a reload reattaches, as the Train tab does).
    estimate = gr.Markdown(lambda: estimate_markdown(services, ["base"], DEFAULT_LIMIT, None), elem_id="eval_estimate")
    with gr.Row():
        start = gr.Button("Evaluate", variant="primary", elem_id="eval_start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="eval_cancel")
    eval_ids = gr.Textbox(lambda: active_ids(services), label="Evaluations", elem_id="eval_ids", interactive=False)
    status = gr.Markdown(lambda: progress_markdown(evals_by_ids(services, active_ids(services))),
                         elem_id="eval_status")
    table = gr.Dataframe(headers=TABLE_COLUMNS, value=lambda: results_table(list_evals(services.db)),
                         interactive=False, elem_id="eval_table")
    metric = gr.Dropdown(list(METRICS), value="grounding_rate", label="Chart metric", elem_id="eval_metric")
    chart = gr.BarPlot(lambda: metric_frame(finished_evals(services), "grounding_rate"), x="backend", y="value",
                       y_lim=[0, None], color="backend", title="Chart metric by backend", height=260,
                       x_label_angle=-20, elem_id="eval_chart")
    return SimpleNamespace(estimate=estimate, backends=backends, other=other, split=split, limit=limit,
                           max_tokens=max_tokens, judge=judge, start=start, cancel=cancel, eval_ids=eval_ids,
                           status=status, table=table, metric=metric, chart=chart)


def _before_after_layout(services: Services) -> SimpleNamespace:
    """Base model vs fine-tuned, per training run."""
    with gr.Accordion("Before / after: base model vs fine-tuned, per training run", open=True):
        # Opens on the newest run that has one, not on empty charts.
        def newest():
            runs = runs_with_before_after(services.db)
            return str(runs[0]) if runs else None

        ba_run = gr.Dropdown([str(i) for i in runs_with_before_after(services.db)], value=newest,
                             label="Training run", allow_custom_value=True, elem_id="eval_ba_run")
        ba_table = gr.Dataframe(lambda: before_after_views(services, newest())[0], interactive=False,
                                headers=["metric", "base", "fine-tuned", "change", ""], elem_id="eval_ba_table")
        ba_chart = gr.BarPlot(lambda: before_after_views(services, newest())[1], x="metric", y="change",
                              title="Change from base to fine-tuned (higher-is-better metrics)", height=260,
                              x_label_angle=-30, elem_id="eval_ba_chart")
    return SimpleNamespace(ba_run=ba_run, ba_table=ba_table, ba_chart=ba_chart)


def _request_set_layout(services: Services) -> SimpleNamespace:
    """Unseen requests, backends side by side."""
    with gr.Accordion("Request set: unseen requests, no reference answers, backends side by side", open=True):
        gr.Markdown("Requests drawn from the request grid with a seed no generation job used (none equal to a "
                    "stored sample), or a JSONL file (language, emotion, occupation, effects, situation, focus, "
                    "free_text), each answered through the recommendation pipeline. Scores: format, grounded, "
                    "invented and repeated books, mood fit, catalog coverage, unique titles, right language, "
                    "time to first token and tokens/s. Uses the backends picked above.")
        with gr.Row():
            req_source = gr.Radio(["grid", "file"], value="grid", label="Requests", elem_id="req_source")
            req_languages = gr.CheckboxGroup(["en", "ko"], value=["en"], label="Languages (grid)",
                                             elem_id="req_languages")
            req_count = gr.Number(DEFAULTS.count, precision=0, label="Requests per language (grid)",
                                  elem_id="req_count")
            req_seed = empty_number(precision=0, label="Seed (empty: the first unused one)",
                                 elem_id="req_seed")
        with gr.Row():
            req_file = gr.File(label="Request file (JSONL)", file_types=[".jsonl", ".json", ".txt"],
                               type="filepath", elem_id="req_file")
            req_constrained = gr.Radio(["on and off", "on", "off"], value="on and off",
                                       label="Constrained decoding (local backends)", elem_id="req_constrained")
            req_concurrency = gr.Number(DEFAULTS.concurrency, precision=0, label="Answers at a time",
                                        elem_id="req_concurrency")
        req_start = gr.Button("Evaluate on requests", variant="primary", elem_id="req_start")
        sets = request_sets(services)
        req_set = gr.Dropdown(sets, value=sets[0] if sets else None, label="Request set", allow_custom_value=True,
                              elem_id="req_set")
        compare = gr.Dataframe(comparison_frame(request_set_evals(services.db, latest_request_set(services.db))),
                               interactive=False, elem_id="req_compare")
    return SimpleNamespace(req_source=req_source, req_languages=req_languages, req_count=req_count, req_seed=req_seed,
                           req_file=req_file, req_constrained=req_constrained, req_concurrency=req_concurrency,
                           req_start=req_start, req_set=req_set, compare=compare)
