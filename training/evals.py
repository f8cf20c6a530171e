"""Batch evaluations: create (resolve the eval split), launch the worker process, watch, cancel, compare.

    ids = [create_eval(db, EvalConfig(backend="base", run_id=3)), create_eval(db, EvalConfig(backend="run:3"))]
    start_evals(db, ids)           # python -m training.evaluate --eval-id 4 --eval-id 5: one process, one model load
    wait_for_evals(db, ids, on_progress=print)
    before_after(db, 3)            # base vs fine-tuned on run 3's eval split, metric by metric

Like training runs, all state lives in the DB and the supervisor (workers/supervisor.py, kind EVALUATION from
training/evaluate.py) starts, stops and reconciles the worker; a dead one is marked failed with its log tail.
"""
from __future__ import annotations

import os
from typing import Callable

from sqlalchemy import select

from db.engine import Database
from db.models import EvalRun, Sample, TrainingRun
from db.settings import get_settings
from training.config import DEFAULT_BASE_MODEL
from training.eval_config import EvalConfig, EvalError, backend_name
from training.evaluate import EVALUATION
from training.metrics import METRICS
from training.request_sets import file_set_name, grid_requests, grid_set_name, load_requests_file
from vendors.labels import format_label
from workers import supervisor
from workers.supervisor import WorkerBusy

FINISHED_RUNS = ("completed", "stopped")


def eval_split(db: Database, run_id: int | None) -> list[int]:
    """The held-out sample ids: a training run's eval split, or every approved sample marked 'eval'."""
    with db.session() as s:
        if run_id is not None:
            run = s.get(TrainingRun, run_id)
            if run is None:
                raise EvalError(f"No training run {run_id} (see `moodshelf runs`).")
            ids = list(run.eval_sample_ids)
            if not ids:
                raise EvalError(f"The eval split of run {run_id} is empty (it was trained with eval_fraction 0 "
                                "or on too few samples): train a run with eval_fraction > 0 and evaluate that one.")
            return ids
        ids = list(s.scalars(select(Sample.id).where(Sample.split == "eval", Sample.status == "approved")
                             .order_by(Sample.id)))
    if not ids:
        raise EvalError("The eval split is empty: no approved sample is held out for evaluation. Train a run "
                        "(its eval_fraction holds samples out) or pass --run-id of one that has an eval split.")
    return ids


def resolve_request_set(db: Database, cfg: EvalConfig) -> tuple[list[dict], str, int | None]:
    """The requests of a grid or file request set, the set's name, and the grid seed (None for a file)."""
    if cfg.requests == "file":
        return load_requests_file(cfg.requests_file), file_set_name(cfg.requests_file), None
    requests, seed = grid_requests(db, cfg.languages, cfg.count, cfg.seed)
    return requests, grid_set_name(cfg.languages, cfg.count, seed), seed


def create_eval(db: Database, cfg: EvalConfig) -> int:
    """Validate, resolve the backend, its base model and the samples or requests, and store a queued EvalRun."""
    cfg.validate()
    spec = cfg.backend_spec()
    run_id = cfg.run_id if cfg.run_id is not None else spec.adapter_run
    base_model, label = cfg.base_model, spec.label
    with db.session() as s:
        if spec.adapter_run is not None:
            adapter_run = s.get(TrainingRun, spec.adapter_run)
            if adapter_run is None:
                raise EvalError(f"No training run {spec.adapter_run} (see `moodshelf runs`).")
            if adapter_run.status not in FINISHED_RUNS or not adapter_run.adapter_path:
                raise EvalError(f"Run {spec.adapter_run} is {adapter_run.status} and has no adapter yet: evaluate "
                                "a completed or stopped run.")
            if base_model and base_model != adapter_run.base_model:
                raise EvalError(f"Run {spec.adapter_run} was trained on {adapter_run.base_model}; its adapter does "
                                f"not fit {base_model}.")
            base_model, label = adapter_run.base_model, format_label("local", adapter_run=adapter_run.id,
                                                                       run_name=adapter_run.name)
        elif spec.is_local:
            split_run = s.get(TrainingRun, run_id) if run_id is not None else None
            base_model = base_model or (split_run.base_model if split_run else DEFAULT_BASE_MODEL)
            label = f"base model ({os.path.basename(base_model.rstrip('/')) or base_model})"
    resolved = {**cfg.to_dict(), "backend": backend_name(spec), "run_id": run_id,
                "base_model": base_model if spec.is_local else ""}
    ids, requests, request_set = [], None, None
    if cfg.on_requests:
        requests, request_set, seed = resolve_request_set(db, cfg)
        if cfg.limit:
            requests = requests[:cfg.limit]
        # Constrained decoding is for local models; an API answer is only checked against the catalog.
        resolved.update(seed=seed, constrained=spec.is_local and cfg.constrained is not False)
    else:
        ids = eval_split(db, run_id)
        if cfg.limit:
            ids = ids[:cfg.limit]
    with db.begin() as s:
        ev = EvalRun(label=label, backend={"name": backend_name(spec), "kind": spec.kind, "model": spec.model,
                                           "adapter_run": spec.adapter_run, "base_url": spec.base_url,
                                           "base_model": base_model if spec.is_local else None},
                     training_run_id=run_id, config=EvalConfig.from_dict(resolved).to_dict(), sample_ids=ids,
                     total=len(requests) if requests is not None else len(ids), status="queued",
                     mode="requests" if cfg.on_requests else "split", request_set=request_set, requests=requests)
        s.add(ev)
        s.flush()
        ev.log_path = str(get_settings().ensure_home().logs_dir / f"eval-{ev.id}.log")
        return ev.id


def start_evals(db: Database, eval_ids: list[int]) -> int:
    """Launch one worker (no shell, its own session) for these evaluations, run one after another; its pid."""
    if not eval_ids:
        raise EvalError("Nothing to evaluate: pick at least one backend.")
    with db.session() as s:
        evs = [s.get(EvalRun, i) for i in eval_ids]
    missing = [i for i, ev in zip(eval_ids, evs) if ev is None]
    if missing:
        raise EvalError(f"No evaluation {missing[0]} (see `moodshelf evals`).")
    try:
        for ev in evs:
            supervisor.check_not_owned(EVALUATION, ev)
    except WorkerBusy as e:
        raise EvalError(str(e)) from None
    with db.begin() as s:
        for i in eval_ids:
            ev = s.get(EvalRun, i)
            if ev.status in ("failed", "cancelled"):  # started again: the worker skips answers already scored
                ev.status, ev.error, ev.finished_at, ev.stop_requested = "queued", None, None, False
    try:
        return supervisor.start(db, EVALUATION, eval_ids)
    except WorkerBusy as e:
        raise EvalError(str(e)) from None


def reconcile_evals(db: Database) -> list[int]:
    """Mark evaluations whose process is gone as failed, with the tail of their log. Returns their ids."""
    return supervisor.reconcile(db, EVALUATION)


def cancel_eval(db: Database, eval_id: int, grace_s: float = 5.0) -> None:
    """Stop the worker (and so every evaluation it was running) and mark them cancelled: it stops between two
    answers, or its process group is ended after grace_s."""
    supervisor.stop(db, EVALUATION, eval_id, grace_s)


def wait_for_evals(db: Database, eval_ids: list[int], on_progress: Callable[[EvalRun], None] | None = None,
                   poll_s: float = 1.0) -> list[EvalRun]:
    """Block until every evaluation leaves queued/running, calling on_progress with each one at each poll."""
    return supervisor.wait(db, EVALUATION, eval_ids, on_progress, poll_s)


def list_evals(db: Database, limit: int = 100) -> list[EvalRun]:
    reconcile_evals(db)
    with db.session() as s:
        return list(s.scalars(select(EvalRun).order_by(EvalRun.id.desc()).limit(limit)))


def latest_eval(db: Database, *, training_run_id: int, backend: str) -> EvalRun | None:
    """The newest completed evaluation of `backend` on a run's eval split."""
    with db.session() as s:
        for ev in s.scalars(select(EvalRun).where(EvalRun.training_run_id == training_run_id, EvalRun.mode == "split",
                                                  EvalRun.status == "completed").order_by(EvalRun.id.desc())):
            if ev.backend.get("name") == backend:
                return ev
    return None


def before_after(db: Database, run_id: int) -> list[dict]:
    """Metric by metric: the base model and the run's adapter on the run's eval split, and the change."""
    base = latest_eval(db, training_run_id=run_id, backend="base")
    tuned = latest_eval(db, training_run_id=run_id, backend=f"run:{run_id}")
    rows = []
    for name, higher_is_better in METRICS.items():
        b = base.metrics.get(name) if base else None
        t = tuned.metrics.get(name) if tuned else None
        delta = t - b if b is not None and t is not None else None
        better = None if delta is None or delta == 0 else (delta > 0) == higher_is_better
        rows.append({"metric": name, "base": b, "fine_tuned": t, "delta": delta, "better": better})
    return rows


def runs_with_before_after(db: Database) -> list[int]:
    """Training runs that have a completed evaluation of their base model or of their adapter."""
    with db.session() as s:
        ids = s.scalars(select(EvalRun.training_run_id).where(EvalRun.status == "completed", EvalRun.mode == "split",
                                                              EvalRun.training_run_id.is_not(None)).distinct())
        return sorted(set(ids), reverse=True)


# -- request sets: several backends side by side ------------------------------------------------------------------
COMPARISON_COLUMNS = ["backend", "constrained", "answers", "format %", "grounded %", "hallucinated %", "repeats",
                      "mood fit %", "coverage %", "unique titles", "right language %", "median TTFT s", "tokens/s"]


def latest_request_set(db: Database) -> str | None:
    """The request set of the newest completed request-set evaluation (what the Evaluate tab shows first)."""
    with db.session() as s:
        return s.scalar(select(EvalRun.request_set).where(EvalRun.mode == "requests", EvalRun.status == "completed")
                        .order_by(EvalRun.finished_at.desc(), EvalRun.id.desc()).limit(1))


def request_set_evals(db: Database, request_set: str | None = None,
                      eval_ids: list[int] | None = None) -> list[EvalRun]:
    """The evaluations to compare: these ids, or the newest completed one of each backend × constrained on a
    request set (default: the latest set), in the order they were created."""
    with db.session() as s:
        if eval_ids is not None:
            return [ev for ev in (s.get(EvalRun, i) for i in eval_ids) if ev is not None]
        request_set = request_set or latest_request_set(db)
        if request_set is None:
            return []
        newest: dict[tuple, EvalRun] = {}
        for ev in s.scalars(select(EvalRun).where(EvalRun.mode == "requests", EvalRun.status == "completed",
                                                  EvalRun.request_set == request_set).order_by(EvalRun.id)):
            newest[(ev.backend.get("name"), bool(ev.config.get("constrained")))] = ev
    return sorted(newest.values(), key=lambda ev: ev.id)


def _pct(v):
    return None if v is None else round(100 * v, 1)


def comparison_table(evs: list[EvalRun]) -> tuple[list[str], list[list]]:
    """Rows = backend × constrained decoding, columns = COMPARISON_COLUMNS: what `moodshelf eval` and the demo
    print and the Evaluate tab shows. Rates are percentages; None where a figure is undefined."""
    rows = []
    for ev in evs:
        m, local = ev.metrics or {}, ev.backend.get("kind") == "local"
        constrained = ("on" if ev.config.get("constrained") else "off") if local else "-"
        ttft, speed = m.get("ttft_p50_s"), m.get("tokens_per_s")
        rows.append([ev.label, constrained, f"{ev.done}/{ev.total}", _pct(m.get("format_compliance")),
                     _pct(m.get("grounding_rate")), _pct(m.get("hallucination_rate")), m.get("repeated_books"),
                     _pct(m.get("mood_fit")), _pct(m.get("coverage")), m.get("unique_titles"),
                     _pct(m.get("right_language")), None if ttft is None else round(ttft, 2),
                     None if speed is None else round(speed, 1)])
    return list(COMPARISON_COLUMNS), rows
