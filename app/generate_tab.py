"""Generate tab: pick a teacher and the request grid, start a job in its own worker process, watch it live
(accepted / rejected / duplicate / ungrounded, tokens, cost, ETA), cancel or resume it, see past jobs."""
from __future__ import annotations

import os
from datetime import datetime, timezone

import gradio as gr
from pydantic import ValidationError
from sqlalchemy import select

from datagen.grid import Grid
from datagen.job_config import JobConfig
from datagen.jobs import JobError, create_job, request_stop
from datagen.outcomes import not_accepted_summary
from datagen.providers import PROVIDERS
from datagen.worker import reconcile_jobs, start_job
from db.models import GenerationJob
from vendors.base import VendorError
from workers.supervisor import WorkerBusy

from app.config_views import form_values
from app.page_style import empty_number
from app.services import Services

GRID_FIELDS = ("emotions", "occupations", "effects", "situations", "focus_levels")


def _grid_text(language: str) -> list[str]:
    g = Grid.default(language)
    return ["\n".join(e for e, _ in g.emotions), "\n".join(g.occupations), "\n".join(g.effects),
            "\n".join(g.situations), "\n".join(g.focus_levels)]


def key_status() -> str:
    parts = []
    for name in ("openai", "anthropic"):
        env = PROVIDERS[name].key_env
        parts.append(f"`{env}` {'set ✅' if os.environ.get(env) else 'not set'}")
    note = "" if any(os.environ.get(PROVIDERS[n].key_env) for n in ("openai", "anthropic")) else (
        " — without a key, the offline provider writes template samples from the catalog; a key lets GPT or "
        "Claude write varied, natural reasons (export it before `moodshelf serve`).")
    return "Keys: " + ", ".join(parts) + note


def progress_markdown(job: GenerationJob | None) -> str:
    if job is None:
        return "*No job yet.*"
    done = min(job.accepted, job.target_count)
    pct = done / job.target_count if job.target_count else 0
    bar = "█" * int(pct * 30) + "░" * (30 - int(pct * 30))
    eta = ""
    if job.status == "running" and job.started_at and done:
        started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
        elapsed = (datetime.now(timezone.utc) - started).total_seconds()
        eta = f" · ETA {max(0, elapsed / done * (job.target_count - done)):.0f} s"
    cost = ("$0 (offline)" if job.provider in PROVIDERS and not PROVIDERS[job.provider].is_api
            else "unknown price" if job.cost_usd is None else f"${job.cost_usd:.4f}")
    label = PROVIDERS[job.provider].label if job.provider in PROVIDERS else job.provider
    lines = [f"**Job #{job.id}** — {label} `{job.model}` ({job.language}) — **{job.status}**{eta}",
             f"`{bar}` {done}/{job.target_count}",
             f"accepted **{job.accepted}** · rejected **{job.rejected}** · duplicates **{job.duplicates}** · "
             f"ungrounded **{job.ungrounded}** · failed API calls **{job.failed_calls}** · "
             f"tokens {job.tokens_in}+{job.tokens_out} · cost {cost}"]
    why = not_accepted_summary(job.reasons)
    if why:
        lines.append(f"Not accepted, by reason: {why}")
    if job.error:
        lines.append(f"⚠️ {job.error}")
    return "\n\n".join(lines)


def jobs_table(services: Services) -> list[list]:
    with services.db.session() as s:
        jobs = list(s.scalars(select(GenerationJob).order_by(GenerationJob.id.desc()).limit(50)))
    return [[j.id, j.status, PROVIDERS[j.provider].label if j.provider in PROVIDERS else j.provider, j.model,
             j.language, f"{j.accepted}/{j.target_count}", j.rejected, j.duplicates, j.ungrounded,
             _cost_cell(j),
             j.created_at.strftime("%Y-%m-%d %H:%M")] for j in jobs]


def _cost_cell(job: GenerationJob):
    if job.provider in PROVIDERS and not PROVIDERS[job.provider].is_api:
        return 0
    return "unknown" if job.cost_usd is None else round(job.cost_usd, 4)


def latest_progress(services: Services) -> str:
    reconcile_jobs(services.db)
    with services.db.session() as s:
        job = s.scalars(select(GenerationJob).order_by(GenerationJob.id.desc()).limit(1)).first()
    return progress_markdown(job)


def build_generate_tab(services: Services) -> None:
    with gr.Tab("Generate", id="generate"):
        gr.Markdown(key_status(), elem_id="gen_keys")
        with gr.Row():
            provider = gr.Dropdown(sorted(PROVIDERS), value="offline", label="Provider", elem_id="gen_provider")
            model = gr.Textbox(label="Model (empty: provider default)", elem_id="gen_model")
            base_url = gr.Textbox(label="Base URL (OpenAI-compatible servers)", elem_id="gen_base_url")
            language = gr.Radio(["ko", "en"], value="ko", label="Language", elem_id="gen_language")
        with gr.Row():
            count = gr.Number(100, precision=0, label="Samples", elem_id="gen_count")
            seed = gr.Number(0, precision=0, label="Seed")
            n_books = gr.Number(3, precision=0, label="Books per answer")
            max_per_title = gr.Number(12, precision=0, label="Max uses per title")
            concurrency = gr.Number(4, precision=0, label="Concurrency")
            rpm = gr.Number(0, precision=0, label="Requests/min (0: no limit)")
            tpm = gr.Number(0, precision=0, label="Tokens/min (0: no limit)")
        with gr.Row():
            auto_approve = gr.Checkbox(False, label="Approve samples that pass validation")
            retrieval = gr.Checkbox(True, label="Candidates in the input (retrieval: the student learns to choose "
                                                "among given books)")
            batch = gr.Checkbox(False, label="Batch API (half price, slower; OpenAI/Anthropic)")
            timeout = gr.Number(JobConfig.model_fields["timeout_s"].default, label="Call timeout (s)",
                                info=JobConfig.model_fields["timeout_s"].description, elem_id="gen_timeout")
        with gr.Accordion("Request grid (one value per line)", open=False):
            with gr.Row():
                grid_boxes = [gr.Textbox(v, lines=8, label=name.replace("_", " "), elem_id=f"gen_{name}")
                              for name, v in zip(GRID_FIELDS, _grid_text("ko"))]
        with gr.Row():
            start = gr.Button("Start job", variant="primary", elem_id="gen_start")
            cancel = gr.Button("Cancel", variant="stop", elem_id="gen_cancel")
            resume = gr.Button("Resume", elem_id="gen_resume")
        job_id = empty_number(precision=0, label="Job", elem_id="gen_job_id")
        # The latest job's progress when the page opens (it said "No job yet." beside a history of jobs).
        progress = gr.Markdown(lambda: latest_progress(services), elem_id="gen_progress")
        history = gr.Dataframe(headers=["id", "status", "provider", "model", "lang", "accepted", "rejected", "dup",
                                        "ungrounded", "cost $", "created"], value=jobs_table(services),
                               interactive=False, elem_id="gen_history")
        timer = gr.Timer(2.0)

        language.change(lambda lang: _grid_text(lang), language, grid_boxes)

        def start_job_clicked(provider, model, base_url, language, count, seed, n_books, max_per_title,
                              concurrency, rpm, tpm, auto_approve, retrieval, batch, timeout, *grid):
            try:
                values = form_values(JobConfig, provider=provider, model=model or None, base_url=base_url or None,
                                     language=language, count=count, seed=seed, n_books=n_books,
                                     max_per_title=max_per_title, concurrency=concurrency,
                                     rpm=rpm or None, tpm=tpm or None,  # 0 in these boxes: no limit
                                     auto_approve=auto_approve, retrieval=retrieval, batch=batch, timeout_s=timeout)
                cfg = JobConfig(**values, **{name: text.splitlines() for name, text in zip(GRID_FIELDS, grid)})
                new_id = create_job(services.db, cfg)
            except ValidationError as e:
                raise gr.Error("; ".join(er["msg"].removeprefix("Value error, ") for er in e.errors()))
            except (VendorError, ValueError) as e:
                raise gr.Error(str(e))
            start_job(services.db, new_id)
            return new_id, refresh(new_id)[0], jobs_table(services)

        def refresh(current):
            reconcile_jobs(services.db)
            with services.db.session() as s:
                job = s.get(GenerationJob, int(current)) if current else s.scalars(
                    select(GenerationJob).order_by(GenerationJob.id.desc()).limit(1)).first()
            return progress_markdown(job), jobs_table(services)

        def cancel_clicked(current):
            if not current:
                raise gr.Error("No job selected.")
            request_stop(services.db, int(current))
            return refresh(current)

        def resume_clicked(current):
            if not current:
                raise gr.Error("Type the number of the job to resume.")
            reconcile_jobs(services.db)
            with services.db.session() as s:
                job = s.get(GenerationJob, int(current))
            if job is None:
                raise gr.Error(f"No job {int(current)}.")
            if job.status in ("running", "completed"):
                raise gr.Error(f"Job {job.id} is {job.status}; only failed or cancelled jobs resume.")
            try:
                start_job(services.db, job.id)
            except (WorkerBusy, JobError) as e:  # its worker is still alive (pending, about to run)
                raise gr.Error(str(e))
            return refresh(current)

        inputs = [provider, model, base_url, language, count, seed, n_books, max_per_title, concurrency, rpm, tpm,
                  auto_approve, retrieval, batch, timeout, *grid_boxes]
        start.click(start_job_clicked, inputs, [job_id, progress, history])
        cancel.click(cancel_clicked, job_id, [progress, history])
        resume.click(resume_clicked, job_id, [progress, history])
        timer.tick(refresh, job_id, [progress, history])
