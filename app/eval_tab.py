"""Evaluate tab: pick backends and a held-out eval split, run the batch evaluation in a worker process, watch its
progress, read the results as a table and a bar chart per metric, and see base vs fine-tuned for each run.

The form is a view of EvalConfig (the same object as `moodshelf eval`'s flags); one EvalConfig per picked
backend, all run by one worker so the base model is loaded once.
"""
from __future__ import annotations

import os

import gradio as gr
import pandas as pd
from sqlalchemy import select

from app.services import Services
from db.models import EvalRun, TrainingRun
from training.eval_config import DEFAULT_JUDGE_MODELS, KEY_ENV, EvalConfig, EvalError
from training.evals import (before_after, cancel_eval, create_eval, list_evals, reconcile_evals,
                            runs_with_before_after, start_evals)
from training.metrics import METRICS

TABLE_COLUMNS = ["id", "status", "backend", "split of run", "answers"] + list(METRICS)
ALL_EVAL_SAMPLES = "all held-out samples"


def backend_choices(services: Services) -> list[tuple[str, str]]:
    """(label, backend name): the base model, every finished run's adapter, the API models whose key is set."""
    choices = [(f"base model ({services.base_model})", "base")]
    choices += [(f"run #{r.id}: {r.name}", f"run:{r.id}") for r in services.finished_runs()]
    for kind, model in DEFAULT_JUDGE_MODELS.items():
        if os.environ.get(KEY_ENV[kind]):
            choices.append((f"{kind}:{model}", f"{kind}:{model}"))
    return choices


def split_choices(services: Services) -> list[tuple[str, str]]:
    with services.db.session() as s:
        runs = [r for r in s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc())) if r.eval_sample_ids]
    return [(f"run #{r.id}: {r.name} ({len(r.eval_sample_ids)} samples)", str(r.id)) for r in runs] + \
        [(ALL_EVAL_SAMPLES, "")]


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
    return [[ev.id, ev.status, ev.label, ev.training_run_id, ev.done] + [_round(ev.metrics.get(m)) for m in METRICS]
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


def _ids(text: str) -> list[int]:
    return [int(x) for x in str(text or "").replace(",", " ").split() if x.strip().isdigit()]


def build_eval_tab(services: Services) -> None:
    with gr.Tab("Evaluate", id="evaluate") as tab:
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
            limit = gr.Number(EvalConfig.limit, precision=0, label="Sample limit (0: all)", elem_id="eval_limit")
            max_tokens = gr.Number(EvalConfig.max_new_tokens, precision=0, label="Max new tokens",
                                   elem_id="eval_max_tokens")
            judge = gr.Dropdown(["", "auto"], value="", allow_custom_value=True,
                                label="LLM judge (auto: the API whose key is set)", elem_id="eval_judge")
        with gr.Row():
            start = gr.Button("Evaluate", variant="primary", elem_id="eval_start")
            cancel = gr.Button("Cancel", variant="stop", elem_id="eval_cancel")
        eval_ids = gr.Textbox(label="Evaluations", elem_id="eval_ids", interactive=False)
        status = gr.Markdown(progress_markdown([]), elem_id="eval_status")
        table = gr.Dataframe(headers=TABLE_COLUMNS, value=results_table(list_evals(services.db)), interactive=False,
                             elem_id="eval_table")
        metric = gr.Dropdown(list(METRICS), value="grounding_rate", label="Chart metric", elem_id="eval_metric")
        chart = gr.BarPlot(metric_frame([], "grounding_rate"), x="backend", y="value", y_lim=[0, None],
                           color="backend",
                           title="Chart metric by backend", height=260, x_label_angle=-20, elem_id="eval_chart")
        with gr.Accordion("Before / after: base model vs fine-tuned, per training run", open=True):
            ba_run = gr.Dropdown([str(i) for i in runs_with_before_after(services.db)], label="Training run",
                                 allow_custom_value=True, elem_id="eval_ba_run")
            ba_table = gr.Dataframe(headers=["metric", "base", "fine-tuned", "change", ""], interactive=False,
                                    elem_id="eval_ba_table")
            ba_chart = gr.BarPlot(pd.DataFrame({"metric": [], "change": []}), x="metric", y="change",
                                  title="Change from base to fine-tuned (higher-is-better metrics)", height=260,
                                  x_label_angle=-30, elem_id="eval_ba_chart")
        timer = gr.Timer(2.0)

        def start_evaluation(picked, other_backend, split_run, sample_limit, new_tokens, judge_name):
            names = list(picked or []) + ([other_backend.strip()] if other_backend and other_backend.strip() else [])
            if not names:
                raise gr.Error("Pick at least one backend.")
            try:
                # The base model of a run's split is the run's own (before/after compares like with like).
                configs = [EvalConfig(backend=n, run_id=int(split_run) if split_run else None,
                                      base_model=services.base_model if n == "base" and not split_run else "",
                                      limit=int(sample_limit or 0), max_new_tokens=int(new_tokens or 320),
                                      judge=judge_name or "").validate() for n in names]
                ids = [create_eval(services.db, cfg) for cfg in configs]
                start_evals(services.db, ids)
            except EvalError as e:
                raise gr.Error(str(e))
            text = ", ".join(map(str, ids))
            return (text, *refresh_progress(text, "grounding_rate"))

        def refresh_progress(ids_text, metric_name):
            reconcile_evals(services.db)
            ids = _ids(ids_text)
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

        def refresh_choices(run_id):
            # New runs and finished evaluations appear when the tab is opened, without a restart.
            runs = [str(i) for i in runs_with_before_after(services.db)]
            return (gr.CheckboxGroup(choices=backend_choices(services)), gr.Dropdown(choices=split_choices(services)),
                    gr.Dropdown(choices=runs, value=run_id or (runs[0] if runs else None)))

        progress_outputs = [status, table, chart]
        start.click(start_evaluation, [backends, other, split, limit, max_tokens, judge], [eval_ids, *progress_outputs])
        cancel.click(cancel_evaluation, eval_ids, progress_outputs)
        metric.change(refresh_progress, [eval_ids, metric], progress_outputs)
        timer.tick(refresh_progress, [eval_ids, metric], progress_outputs)
        timer.tick(show_before_after, ba_run, [ba_table, ba_chart])
        ba_run.change(show_before_after, ba_run, [ba_table, ba_chart])
        tab.select(refresh_choices, ba_run, [backends, split, ba_run])
