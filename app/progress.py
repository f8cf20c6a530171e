"""What the long commands show on the terminal: a progress bar while their worker runs (Ctrl-C stops the
worker, not only the bar), and the evaluation tables when it is done.

    run_training(db, TrainConfig(max_steps=30))   # create, start, watch: `moodshelf train`
    watch_evals(db, [4, 5]); print_comparison(evs) # `moodshelf eval`
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from tqdm import tqdm

from db.errors import UserError

if TYPE_CHECKING:
    from db.engine import Database


def run_generation(db: Database, job_id: int) -> None:
    from datagen.providers import PROVIDERS
    from datagen.worker import reconcile_jobs
    from db.models import GenerationJob

    reconcile_jobs(db)
    with db.session() as s:
        job = s.get(GenerationJob, job_id)
        if job is None:
            raise UserError(f"No generation job {job_id} (see `moodshelf jobs`).")
        if job.status == "running":
            raise UserError(f"Job {job_id} is already running (pid {job.pid}).")
        if job.status == "completed":
            print(f"job {job_id} is already complete ({job.accepted} samples).")
            return
        provider = PROVIDERS.get(job.provider)
        target, label = job.target_count, f"generate #{job_id} ({provider.label if provider else job.provider})"
    bar = tqdm(total=target, desc=label, unit="sample", initial=job.accepted)

    def progress(j) -> None:
        bar.n = min(j.accepted, target)
        post = {"rejected": j.rejected, "dup": j.duplicates, "ungrounded": j.ungrounded}
        if j.failed_calls:
            post["failed calls"] = j.failed_calls
        if j.tokens_in or j.tokens_out:
            post["tokens"] = j.tokens_in + j.tokens_out
            post["cost"] = f"${j.cost_usd:.4f}" if j.cost_usd is not None else "unknown"
        bar.set_postfix(post)
        bar.refresh()

    from datagen.jobs import run_job

    try:
        job = run_job(db, job_id, on_progress=progress)
    finally:
        bar.close()
    cost = "" if not (job.tokens_in or job.tokens_out) else (
        f", {job.tokens_in}+{job.tokens_out} tokens, " + (f"~${job.cost_usd:.4f}" if job.cost_usd is not None
                                                          else "cost unknown (no price for this model)"))
    print(f"job {job_id}: {job.status} — {job_counts(job)}{cost}")
    if job.status != "completed":
        raise UserError(job.error or f"job {job_id} did not complete")


def job_counts(job) -> str:
    """"12 accepted, 3 rejected, ...", then every reason an answer was not accepted, counted."""
    from datagen.outcomes import not_accepted_summary

    counts = (f"{job.accepted} accepted, {job.rejected} rejected, {job.duplicates} duplicates, "
              f"{job.ungrounded} ungrounded, {job.failed_calls} failed API calls")
    why = not_accepted_summary(job.reasons)
    return counts + (f" (not accepted: {why})" if why else "")


def run_training(db: Database, cfg, name: str | None = None, wait: bool = True) -> int:
    from db.models import TrainingRun
    from training.runs import create_run, start_run

    run_id = create_run(db, cfg, name)
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
        n_train, n_eval, out = len(run.sample_ids), len(run.eval_sample_ids), run.output_dir
    print(f"run {run_id}: {n_train} train / {n_eval} eval samples, config {out}/config.yaml, log {out}/train.log")
    start_run(db, run_id)
    if wait:
        watch_run(db, run_id, cfg.max_steps if cfg.max_steps > 0 else None)
    return run_id


def watch_run(db: Database, run_id: int, total: int | None) -> None:
    """A progress bar fed from run_metrics until the worker finishes; Ctrl-C cancels the run."""
    from training.runs import cancel_run, wait_for_run

    bar = tqdm(total=total, desc=f"train #{run_id}", unit="step")

    def on_metric(m, run) -> None:
        bar.n = m.step
        post = {}
        if m.loss is not None:
            post["loss"] = f"{m.loss:.3f}"
        if m.eval_loss is not None:
            post["eval_loss"] = f"{m.eval_loss:.3f}"
        if m.tokens_per_second:
            post["tok/s"] = f"{m.tokens_per_second:.0f}"
        bar.set_postfix(post)
        bar.refresh()

    try:
        run = wait_for_run(db, run_id, on_metric)
    except KeyboardInterrupt:
        bar.close()
        print(f"cancelling run {run_id}...", file=sys.stderr)
        cancel_run(db, run_id)
        raise
    bar.close()
    if run.status not in ("completed", "stopped"):
        raise UserError(f"run {run_id} {run.status}: {run.error}")
    print(f"run {run_id}: {run.status} in {run.runtime_seconds:.0f} s, train loss {run.final_loss:.3f}; "
          f"adapter at {run.adapter_path}")


def fmt_number(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def watch_evals(db: Database, eval_ids: list[int]) -> None:
    """One progress bar per evaluation, fed from the DB until the worker finishes; Ctrl-C cancels."""
    from training.evals import cancel_eval, wait_for_evals

    bars = {i: tqdm(desc=f"eval #{i}", unit="sample", position=n) for n, i in enumerate(eval_ids)}

    def on_progress(ev) -> None:
        bar = bars[ev.id]
        bar.total, bar.n = ev.total, ev.done
        bar.set_description(f"eval #{ev.id} {ev.label[:30]}")
        bar.set_postfix(status=ev.status)
        bar.refresh()

    try:
        evs = wait_for_evals(db, eval_ids, on_progress)
    except KeyboardInterrupt:
        for bar in bars.values():
            bar.close()
        print("cancelling the evaluation...", file=sys.stderr)
        cancel_eval(db, eval_ids[0])
        raise
    for bar in bars.values():
        bar.close()
    split = [ev for ev in evs if ev.mode != "requests"]
    if split:
        print_eval_table(split)
    if len(split) < len(evs):
        print_comparison([ev for ev in evs if ev.mode == "requests"])
    failed = [ev for ev in evs if ev.status != "completed"]
    if failed:
        raise UserError("; ".join(f"eval {ev.id} {ev.status}: {(ev.error or '').splitlines()[0] if ev.error else ''}"
                                  for ev in failed))


EVAL_COLUMNS = ("format_compliance", "grounding_rate", "hallucination_rate", "mood_fit", "distinct_2",
                "unique_title_share", "rouge_l", "judge_score", "latency_mean_s")


def print_eval_table(evs) -> None:
    short = {"format_compliance": "format", "grounding_rate": "grounded", "hallucination_rate": "invented",
             "mood_fit": "mood", "distinct_2": "dist-2", "unique_title_share": "uniq-title", "rouge_l": "rouge-l",
             "judge_score": "judge", "latency_mean_s": "s/answer"}
    print(f"{'id':<5}{'status':<11}{'n':>7}  " + "".join(f"{short[c]:>11}" for c in EVAL_COLUMNS) + "  backend")
    for ev in evs:
        print(f"#{ev.id:<4}{ev.status:<11}{f'{ev.done}/{ev.total}':>7}  "
              + "".join(f"{fmt_number(ev.metrics.get(c)):>11}" for c in EVAL_COLUMNS) + f"  {ev.label}")


def format_table(headers: list[str], rows: list[list]) -> str:
    """Columns as wide as their widest cell, numbers right-aligned (as rounded by the caller), '-' for a missing
    figure."""
    cells = [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    left = [all(isinstance(r[i], str) for r in rows) for i in range(len(headers))]
    def line(values):
        return "  ".join(v.ljust(w) if l else v.rjust(w) for v, w, l in zip(values, widths, left)).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in cells])


def print_comparison(evs) -> None:
    """The request-set comparison (training/evals.comparison_table): backend × constrained decoding."""
    from training.evals import comparison_table

    if not evs:
        return
    sets = sorted({ev.request_set for ev in evs if ev.request_set})
    print(f"request set: {', '.join(sets)}  (rates in %; coverage: distinct grounded books / catalog books)")
    print(format_table(*comparison_table(evs)))
