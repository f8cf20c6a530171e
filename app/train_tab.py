"""Train tab: the TrainConfig as a form, a dataset and memory check that enables the button, one-click
QLoRA in a worker process, live progress (bar, loss plot, log tail), Stop & save, Cancel, Resume.

    build_train_tab(services)        # inside the app's gr.Blocks (app/ui.py)

The form is a view of TrainConfig: one component per field, derived from the model (app/config_views.py), so the
tab, the CLI flags and the YAML file cannot drift apart. The command line it shows is quoted with shlex.
"""
from __future__ import annotations

import re
from datetime import datetime, timezone
from types import SimpleNamespace

import gradio as gr
import pandas as pd
from sqlalchemy import select

from app import config_views
from app.page_style import empty_number
from app.services import Services
from db.models import RunMetric, TrainingRun
from training.config import DEMO_PRESET, ConfigError, TrainConfig
from training.data import DatasetError, check_prompt_lengths, chat_example
from training.publish import PublishError, publish_run, published_run, reader_name, reader_run
from training.runs import (RunError, active_run, cancel_run, create_run, reconcile_runs, request_stop, resume_run,
                           start_run)
from training.sweep import COLUMNS as SWEEP_COLUMNS
from training.sweep import parse_grid, sweep_names, sweep_table
from workers.process import log_tail

FIELDS = list(TrainConfig.model_fields)  # the form's components, in this order
# What people change; every other setting is under "Advanced".
BASIC_FIELDS = ("base_model", "language", "max_steps", "epochs", "lora_r", "learning_rate")


def form_defaults(services: Services) -> TrainConfig:
    """What the form opens with: the demo's preset (training/config_hub/demo.yaml: 1e-3 and 40 steps train the
    135M default far better than QLoRA's usual 2e-4 in a short run), in the language most approved samples are
    in, so that a run never mixes Korean and English by default."""
    return TrainConfig.from_yaml(DEMO_PRESET).replace(language=main_language(services.db))


def main_language(db) -> str:
    from sqlalchemy import func

    from db.models import Book, Sample

    with db.session() as s:
        for model, where in ((Sample, Sample.status == "approved"), (Book, True)):
            row = s.execute(select(model.language, func.count()).where(where).group_by(model.language)
                            .order_by(func.count().desc()).limit(1)).first()
            if row and row[0] in ("en", "ko"):
                return row[0]
    return ""


def config_from_form(values) -> TrainConfig:
    return config_views.config_from_form(TrainConfig, FIELDS, values)


def approved_samples(db, cfg: TrainConfig, limit: int = 2000):
    from db.models import Sample

    q = select(Sample).where(Sample.status == "approved")
    if cfg.language:
        q = q.where(Sample.language == cfg.language)
    with db.session() as s:
        return list(s.scalars(q.order_by(Sample.id).limit(limit)))


def status_markdown(run: TrainingRun | None, last: RunMetric | None) -> str:
    if run is None:
        return "*No training run yet.*"
    total = run.config.get("max_steps", -1)
    step = last.step if last else 0
    pct = step / total if total and total > 0 else 0
    bar = "█" * int(pct * 30) + "░" * (30 - int(pct * 30))
    parts = [f"**Run #{run.id}** ({run.name}) — **{run.status}**",
             f"`{bar}` step {step}" + (f"/{total}" if total and total > 0 else "")]
    if run.status in ("queued", "running"):
        if run.stop_requested:
            parts.append("⏸ **stopping after this step…** the adapter is saved, then the run ends as *stopped*")
        elif run.phase and not last:
            since = f" ({(datetime.now(timezone.utc) - _aware(run.started_at)).total_seconds():.0f} s)" \
                if run.started_at else ""
            parts.append(f"⏳ {run.phase}…{since}")
        elif run.status == "queued":
            parts.append("⏳ starting the training process…")
    if last:
        bits = [f"loss {last.loss:.3f}" if last.loss is not None else None,
                f"eval loss {last.eval_loss:.3f}" if last.eval_loss is not None else None,
                f"lr {last.learning_rate:.2e}" if last.learning_rate is not None else None,
                f"{last.tokens_per_second:.0f} tokens/s" if last.tokens_per_second else None,
                f"peak {last.peak_memory_mb:.0f} MiB" if last.peak_memory_mb else None,
                f"ETA {last.eta_seconds:.0f} s" if last.eta_seconds is not None and run.status == "running" else None]
        parts.append(" · ".join(b for b in bits if b))
    if run.status == "completed" and run.final_loss is not None:
        parts.append(f"finished in {run.runtime_seconds:.0f} s — adapter: `{run.adapter_path}`")
    if run.estimated_memory_mb:
        measured = run.peak_memory_mb or (last.peak_memory_mb if last else None)
        parts.append(f"memory: estimated {run.estimated_memory_mb:.0f} MiB" + (
            f", measured peak {measured:.0f} MiB ({(run.estimated_memory_mb - measured) / measured:+.0%})"
            if measured else ""))
    if run.error:
        parts.append(f"⚠️ {run.error}")
    return "\n\n".join(parts)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)  # SQLite returns naive UTC


def loss_frame(metrics: list[RunMetric]) -> pd.DataFrame:
    rows = [{"step": m.step, "loss": m.loss, "series": "train"} for m in metrics if m.loss is not None]
    rows += [{"step": m.step, "loss": m.eval_loss, "series": "eval"} for m in metrics if m.eval_loss is not None]
    frame = pd.DataFrame(rows or [{"step": 0, "loss": float("nan"), "series": "train"}])
    return frame.astype({"step": int, "loss": float})


def loss_plot(metrics: list[RunMetric]) -> gr.LinePlot:
    """The loss plot's points and its y range. Gradio lays a plot out once, with the room its first labels need:
    one that opened empty cut its loss labels ("815" for 10.815) and dropped the axis title. A new range makes it
    lay the plot out again (checked in Chromium: whole labels and the title)."""
    frame = loss_frame(metrics)
    losses = frame["loss"].dropna()
    if losses.empty:
        return gr.LinePlot(frame, y_lim=None)
    lo, hi = float(losses.min()), float(losses.max())
    pad = max((hi - lo) * 0.1, abs(hi) * 0.005, 1e-3)
    return gr.LinePlot(frame, y_lim=[float(f"{lo - pad:.3g}"), float(f"{hi + pad:.3g}")])


def runs_table(services: Services) -> list[list]:
    with services.db.session() as s:
        runs = list(s.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(50)))
    return [[r.id, r.status, r.name, r.base_model, r.config.get("lora_r"), r.config.get("max_steps"),
             None if r.final_loss is None else round(r.final_loss, 4),
             None if r.runtime_seconds is None else round(r.runtime_seconds)] for r in runs]


def check_settings(services: Services, values) -> tuple:
    """The Check button: the config validated, the dataset previewed with the base model's tokenizer, prompt
    lengths and a memory preflight; the Train button is enabled only when approved samples exist."""
    from training.base_model import ModelLoadError, load_tokenizer, resolve_base_model
    from training.preview import preview_dataset

    try:
        cfg = config_from_form(values).validate()
        path = resolve_base_model(cfg.base_model)
        tok = load_tokenizer(path)
        p = preview_dataset(services.db, cfg, tok)
        if p.approved and not (cfg.padding_free and not cfg.packing):
            check_prompt_lengths(tok, [chat_example(sm) for sm in approved_samples(services.db, cfg)],
                                 cfg.max_length)
    except (ConfigError, ModelLoadError, ValueError) as e:
        raise gr.Error(str(e))
    memory = ""
    if p.token_lengths:
        import torch
        from transformers import AutoConfig

        from training.memory import preflight

        est, warning = preflight(cfg, AutoConfig.from_pretrained(path), p.token_lengths,
                                 "cuda" if torch.cuda.is_available() else "cpu")
        memory = f"\n\n**Memory preflight:** {est.summary()}" + (f"\n\n⚠️ **{warning}**" if warning else "")
    if p.approved == 0:
        return ("**No approved samples** — generate some (Generate tab) and approve them first.",
                "", "", cfg.command_line(), gr.Button(interactive=False))
    return (p.markdown(cfg) + memory, p.first_prompt, p.first_completion, cfg.command_line(),
            gr.Button(interactive=True))


def run_views(services: Services, current) -> tuple:
    """Status, loss plot, log tail and history of run `current`; without one, reattach to the active run, else
    the latest."""
    reconcile_runs(services.db)
    with services.db.session() as s:
        run = s.get(TrainingRun, int(current)) if current else None
        if run is None:
            run = active_run(services.db) or s.scalars(
                select(TrainingRun).order_by(TrainingRun.id.desc()).limit(1)).first()
        metrics = list(s.scalars(select(RunMetric).where(RunMetric.run_id == run.id)
                                 .order_by(RunMetric.step))) if run else []
    return (status_markdown(run, metrics[-1] if metrics else None), loss_plot(metrics),
            readable_log(log_tail(run.log_path, 40)) if run else "", runs_table(services))


# Library chatter that says nothing about this run: deprecation and future warnings, and the source line Python
# prints under each warning.
_NOISE = re.compile(r"(Deprecat|FutureWarning|UserWarning|warnings\.warn\(|^\s+warn\()", re.IGNORECASE)


def readable_log(tail: str, lines: int = 12) -> str:
    """The log tail without library deprecation warnings (they are still in the log file)."""
    kept = [ln for ln in tail.splitlines() if not _NOISE.search(ln)]
    return "\n".join(kept[-lines:])


def published_markdown(services: Services) -> str:
    """Which model readers get on the Recommend tab, and why (training/publish.py)."""
    published = published_run(services.db)
    run = reader_run(services.db, services.base_model)
    if run is None:
        return "**Readers get:** the base model — no run is published or evaluated yet."
    why = "published" if published is not None and published.id == run.id else "best evaluated run; none published"
    return f"**Readers get:** {reader_name(run)} — run {run.id} ({run.name}), {why}."


def run_section(services: Services) -> SimpleNamespace:
    """The layout of one run: settings form, check, command line, buttons, progress, history."""
    gr.Markdown("QLoRA on your approved samples. Check the dataset first; the run starts in its own process, "
                "so you can close the page and come back.")
    defaults = form_defaults(services)
    by_name = {}
    with gr.Group():
        with gr.Row():
            for name in BASIC_FIELDS:
                by_name[name] = config_views.form_component(TrainConfig, name, "train", getattr(defaults, name))
    with gr.Accordion("Advanced (LoRA, quantization, batch, schedule, data)", open=False, elem_id="train_advanced"):
        with gr.Row():
            for name in FIELDS:
                if name not in BASIC_FIELDS:
                    by_name[name] = config_views.form_component(TrainConfig, name, "train", getattr(defaults, name))
    ui = SimpleNamespace(comps=[by_name[name] for name in FIELDS])  # in FIELDS order, as config_from_form reads
    ui.check = gr.Button("Check dataset & settings", elem_id="train_check")
    ui.preview = gr.Markdown(elem_id="train_preview")
    with gr.Row():
        ui.first_prompt = gr.Textbox(label="First example: prompt (not trained on)", lines=8, interactive=False)
        ui.first_answer = gr.Textbox(label="First example: answer (the loss is computed here)", lines=8,
                                     interactive=False)
    ui.command = gr.Code(label="The same run from the command line", language="shell", elem_id="train_command")
    with gr.Row():
        ui.start = gr.Button("Train", variant="primary", interactive=False, elem_id="train_start")
        ui.stop = gr.Button("Stop & save", elem_id="train_stop")
        ui.cancel = gr.Button("Cancel", variant="stop", elem_id="train_cancel")
        ui.resume = gr.Button("Resume", elem_id="train_resume")
        ui.publish = gr.Button("Publish for readers", elem_id="train_publish")
    ui.run_id = empty_number(precision=0, label="Run", elem_id="train_run_id")
    ui.published = gr.Markdown(published_markdown(services), elem_id="train_published")
    ui.status = gr.Markdown(status_markdown(None, None), elem_id="train_status")
    ui.plot = gr.LinePlot(loss_frame([]), x="step", y="loss", color="series", title="Loss (train and eval)",
                          x_title="optimizer step", y_title="cross-entropy loss", x_axis_format="~g", height=260,
                          elem_id="train_plot")
    ui.log = gr.Textbox(label="Log (tail)", lines=8, interactive=False, elem_id="train_log")
    ui.history = gr.Dataframe(headers=["id", "status", "name", "base model", "r", "steps", "train loss", "s"],
                              value=runs_table(services), interactive=False, elem_id="train_history")
    return ui


def wire_run_events(services: Services, ui: SimpleNamespace, timer: gr.Timer) -> None:
    """Check, Train, Stop & save, Cancel, Resume, and the timer that keeps the progress current. The handlers'
    names are the app's API names (/on_check, /on_start, /refresh_1 for gradio_client and the tests)."""
    def on_check(*values):
        return check_settings(services, values)

    def refresh(current):
        return run_views(services, current)

    def on_start(*values):
        try:
            cfg = config_from_form(values).validate()
            services.release_model()  # the chat model's memory goes back before training takes it
            new_id = create_run(services.db, cfg)
            start_run(services.db, new_id)
        except (ConfigError, DatasetError, RunError) as e:
            raise gr.Error(str(e))
        return new_id, *refresh(new_id)

    def on_stop(current):
        if not current:
            raise gr.Error("No run selected.")
        request_stop(services.db, int(current))
        return refresh(current)

    def on_cancel(current):
        if not current:
            raise gr.Error("No run selected.")
        cancel_run(services.db, int(current))
        return refresh(current)

    def on_resume(current):
        if not current:
            raise gr.Error("Type the number of the run to resume.")
        try:
            resume_run(services.db, int(current))
        except RunError as e:
            raise gr.Error(str(e))
        return refresh(current)

    def on_publish(current):
        if not current:
            raise gr.Error("Type the number of the run to publish.")
        try:
            publish_run(services.db, int(current))
        except PublishError as e:
            raise gr.Error(str(e))
        return published_markdown(services)

    outputs = [ui.status, ui.plot, ui.log, ui.history]
    ui.publish.click(on_publish, ui.run_id, ui.published)
    ui.check.click(on_check, ui.comps, [ui.preview, ui.first_prompt, ui.first_answer, ui.command, ui.start])
    for c in ui.comps:  # a changed setting needs a new check before training
        c.change(lambda: gr.Button(interactive=False), None, ui.start)
    ui.start.click(on_start, ui.comps, [ui.run_id, *outputs])
    ui.stop.click(on_stop, ui.run_id, outputs)
    ui.cancel.click(on_cancel, ui.run_id, outputs)
    ui.resume.click(on_resume, ui.run_id, outputs)
    timer.tick(refresh, ui.run_id, outputs)


def build_train_tab(services: Services) -> None:
    with gr.Tab("Train", id="train"):
        ui = run_section(services)
        comps = ui.comps
        with gr.Accordion("Sweep: several runs, one after another, compared", open=False):
            sweep_grid = gr.Textbox("lora_r=8,128,256", lines=2, label="Grid (one setting=v1,v2 per line)",
                                    elem_id="train_sweep_grid")
            sweep_start = gr.Button("Start sweep", elem_id="train_sweep_start")
            sweep_pick = gr.Dropdown(sweep_names(services.db), label="Sweep", allow_custom_value=True,
                                     elem_id="train_sweep_pick")
            sweep_rows = gr.Dataframe(headers=list(SWEEP_COLUMNS), interactive=False, elem_id="train_sweep_table")
            sweep_plot = gr.BarPlot(pd.DataFrame({"setting": [], "loss": [], "kind": []}), x="setting", y="loss",
                                    color="kind", title="Loss by setting", height=240, elem_id="train_sweep_plot")
        timer = gr.Timer(2.0)

        def on_sweep(grid_text, *values):
            from training.sweep_worker import create_sweep, start_sweep

            specs = [ln.strip() for ln in grid_text.splitlines() if ln.strip()]
            name = f"sweep {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S}"
            try:
                cfg = config_from_form(values).validate()
                # A bad grid is refused here, not in the background; the sweep runs as a worker of its own.
                sweep_id = create_sweep(services.db, cfg, parse_grid(specs), name)
            except ConfigError as e:
                raise gr.Error(str(e))
            start_sweep(services.db, sweep_id)
            return gr.Dropdown(choices=[name, *sweep_names(services.db)], value=name)

        def show_sweep(name):
            rows = sweep_table(services.db, name) if name else []
            table = [[r[c] for c in SWEEP_COLUMNS] for r in rows]
            bars = [{"setting": r["setting"], "loss": r[k], "kind": k} for r in rows
                    for k in ("train_loss", "eval_loss") if r[k] is not None]
            return table, pd.DataFrame(bars or {"setting": [], "loss": [], "kind": []})

        sweep_start.click(on_sweep, [sweep_grid, *comps], sweep_pick)
        sweep_pick.change(show_sweep, sweep_pick, [sweep_rows, sweep_plot])
        timer.tick(show_sweep, sweep_pick, [sweep_rows, sweep_plot])

        wire_run_events(services, ui, timer)
