"""Which model answers the reader: the run an operator published, else the best finished run by evaluation.

    moodshelf publish 3               # the Recommend tab answers with run 3's adapter from now on
    moodshelf publish --none          # back to the automatic choice

    reader_run(db, base_model)        # the run the Recommend tab opens with (None: the base model)

A run is never the reader's model because it finished last: a 2-step test run stopped halfway would otherwise
replace the demo's model for everyone. Without a published run the choice is the finished run (on the served
base model) whose evaluations ground the most books in the catalog; without evaluated runs, the base model.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import select, update

from db.engine import Database
from db.errors import UserError
from db.models import EvalRun, TrainingRun

FINISHED = ("completed", "stopped")


class PublishError(UserError, ValueError):
    """A run that cannot be published, worded for the operator."""


def publish_run(db: Database, run_id: int | None) -> None:
    """Make run_id the reader's model (None: unpublish, back to the automatic choice). One run at a time."""
    with db.begin() as s:
        if run_id is not None:
            run = s.get(TrainingRun, run_id)
            if run is None:
                raise PublishError(f"No training run {run_id} (see `moodshelf runs`).")
            if run.status not in FINISHED or not run.adapter_path:
                raise PublishError(f"Run {run_id} is {run.status} and has no adapter: publish a completed or "
                                   "stopped run.")
        s.execute(update(TrainingRun).where(TrainingRun.published_at.is_not(None)).values(published_at=None))
        if run_id is not None:
            s.get(TrainingRun, run_id).published_at = datetime.now(timezone.utc)


def published_run(db: Database) -> TrainingRun | None:
    with db.session() as s:
        return s.scalars(select(TrainingRun).where(TrainingRun.published_at.is_not(None))).first()


def best_evaluated_run(db: Database, base_model: str | None = None) -> TrainingRun | None:
    """The finished run whose completed evaluations ground the most books (then: the best format), on base_model
    when given; None when no finished run has been evaluated."""
    with db.session() as s:
        runs = {r.id: r for r in s.scalars(select(TrainingRun).where(TrainingRun.status.in_(FINISHED),
                                                                     TrainingRun.adapter_path.is_not(None)))
                if base_model is None or r.base_model == base_model}
        scores: dict[int, tuple] = {}
        for ev in s.scalars(select(EvalRun).where(EvalRun.status == "completed")):
            run_id = (ev.backend or {}).get("adapter_run")
            if run_id not in runs or not ev.metrics:
                continue
            score = (ev.metrics.get("grounding_rate") or 0.0, ev.metrics.get("format_compliance") or 0.0, run_id)
            scores[run_id] = max(scores.get(run_id, score), score)
    if not scores:
        return None
    return runs[max(scores.values())[2]]


def reader_run(db: Database, base_model: str | None = None) -> TrainingRun | None:
    """The run the reader's Recommend tab answers with: the published one (if it fits base_model), else the
    best evaluated one; None: the base model."""
    run = published_run(db)
    if run is not None and (base_model is None or run.base_model == base_model):
        return run
    return best_evaluated_run(db, base_model)


def reader_name(run: TrainingRun | None, language: str = "en") -> str:
    """The plain name a reader sees: 'moodshelf model, fine-tuned on 1,200 samples', not 'run:2 (smollm2 r16)'."""
    if run is None:
        return "기본 모델 (미세 조정 전)" if language == "ko" else "base model (not fine-tuned)"
    n = len(run.sample_ids or [])
    return f"moodshelf 모델, 샘플 {n:,}개로 미세 조정" if language == "ko" else \
        f"moodshelf model, fine-tuned on {n:,} samples"
