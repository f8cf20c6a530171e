"""The schema, as typed SQLAlchemy 2.x models. Alembic migrations under db/migrations mirror it.

A sample keeps the seed's format (instruction / input / output) and, beside it, the structured request
fields as columns so that curation can filter on them without parsing text.
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

SAMPLE_STATUSES = ("pending", "approved", "rejected", "needs_review")
JOB_STATUSES = ("pending", "running", "completed", "failed", "cancelled")
RUN_STATUSES = ("queued", "running", "completed", "failed", "stopped", "cancelled")
SPLITS = ("train", "eval")
VOTES = ("A", "B", "tie", "both_bad")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _output_chars(context) -> int:
    return len(context.get_current_parameters().get("output") or "")


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    author: Mapped[str] = mapped_column(String(500))
    translator: Mapped[Optional[str]] = mapped_column(String(300))
    publisher: Mapped[Optional[str]] = mapped_column(String(300))
    year: Mapped[Optional[int]] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8), index=True)
    original_language: Mapped[Optional[str]] = mapped_column(String(8))
    isbn: Mapped[Optional[str]] = mapped_column(String(17))
    genres: Mapped[list[Any]] = mapped_column(default=list)
    moods: Mapped[list[Any]] = mapped_column(default=list)
    description: Mapped[str] = mapped_column(Text, default="")
    # Normalised "title|author" (see datagen.grounding.book_key): one row per book, whatever the spacing.
    match_key: Mapped[str] = mapped_column(String(600), unique=True)
    source: Mapped[str] = mapped_column(String(200), default="builtin")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set on every change (an import that updates a description): retrieval rebuilds its index when the
    # catalog's (count, max id, max updated_at) changes (datagen/retrieval.catalog_version).
    updated_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                           onupdate=utcnow, index=True)


class GenerationJob(Base):
    __tablename__ = "generation_jobs"
    __table_args__ = (CheckConstraint(f"status IN {JOB_STATUSES}", name="job_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    target_count: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    prompt_version: Mapped[str] = mapped_column(String(40))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    ungrounded: Mapped[int] = mapped_column(Integer, default=0)
    # API calls that still failed after every retry: no sample was stored, so they are not "rejected".
    failed_calls: Mapped[int] = mapped_column(Integer, default=0)
    # Why answers were not accepted, counted by reason (datagen/outcomes.py): {"near_duplicate": 116, ...}
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[Optional[float]] = mapped_column(Float, default=0.0)  # None: a model with no known price
    stop_requested: Mapped[bool] = mapped_column(default=False)  # the worker's cooperative stop (workers/)
    # Batch mode: {"kind": "openai"|"anthropic", "batches": [{"id", "indexes", "status", "ingested"}]}
    batch_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    log_path: Mapped[Optional[str]] = mapped_column(String(1000))
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    samples: Mapped[list["Sample"]] = relationship(back_populates="job")


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (
        CheckConstraint(f"status IN {SAMPLE_STATUSES}", name="sample_status"),
        CheckConstraint("split IS NULL OR split IN ('train', 'eval')", name="sample_split"),
        Index("ix_samples_status_split", "status", "split"),
        # Curation pages filter on status and sort by date: one index serves both (see bench/bench_curation.py).
        Index("ix_samples_status_created", "status", "created_at"),
        # Request i of a job is derived from (seed, i): storing i makes a resumed job skip what is done.
        UniqueConstraint("job_id", "request_index", name="uq_samples_job_request"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[Optional[int]] = mapped_column(ForeignKey("generation_jobs.id", ondelete="SET NULL"), index=True)
    instruction: Mapped[str] = mapped_column(Text)
    input: Mapped[str] = mapped_column(Text, default="")
    output: Mapped[str] = mapped_column(Text)
    emotion: Mapped[Optional[str]] = mapped_column(String(100), index=True)
    occupation: Mapped[Optional[str]] = mapped_column(String(100), index=True)
    effect: Mapped[Optional[str]] = mapped_column(String(100), index=True)
    situation: Mapped[Optional[str]] = mapped_column(String(200))
    focus: Mapped[Optional[str]] = mapped_column(String(100))
    language: Mapped[str] = mapped_column(String(8), index=True)
    provider: Mapped[str] = mapped_column(String(50), index=True)
    model: Mapped[str] = mapped_column(String(200), index=True)
    prompt_version: Mapped[str] = mapped_column(String(40), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    quality_flags: Mapped[list[Any]] = mapped_column(default=list)
    # Parsed answer: [{"title", "author", "reason", "effect", "book_id" | None}, ...]
    books: Mapped[list[Any]] = mapped_column(default=list)
    grounded_count: Mapped[int] = mapped_column(Integer, default=0, index=True)
    # Kept as a column (not length(output) at query time) so "sort by length" uses an index at 100k rows.
    output_chars: Mapped[int] = mapped_column(Integer, default=_output_chars, index=True)
    raw_output: Mapped[Optional[str]] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    request_index: Mapped[Optional[int]] = mapped_column(Integer)
    # Near-duplicates share a cluster id (the id of the cluster's first sample); they are flagged, not deleted.
    cluster_id: Mapped[Optional[int]] = mapped_column(Integer, index=True)
    split: Mapped[Optional[str]] = mapped_column(String(8))
    # The sample as first stored ({"instruction", "input", "output", "emotion", ...}), set on the first edit.
    original: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    edited_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    job: Mapped[Optional[GenerationJob]] = relationship(back_populates="samples")

    @validates("output")
    def _count_output_chars(self, _key: str, value: str) -> str:
        # ORM writes (generation, edits) keep output_chars in step; Core inserts get the column default.
        self.output_chars = len(value or "")
        return value


class CurationAction(Base):
    """A bulk change of sample statuses (bulk action, cluster resolution), kept so the last one can be undone."""

    __tablename__ = "curation_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))            # bulk_status | keep_one
    description: Mapped[str] = mapped_column(Text, default="")
    new_status: Mapped[str] = mapped_column(String(16))
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    criteria: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the filter it ran on, for the record
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    undone_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class CurationActionRow(Base):
    """The status a sample had before an action: one row per touched sample, written by INSERT ... SELECT."""

    __tablename__ = "curation_action_rows"

    action_id: Mapped[int] = mapped_column(ForeignKey("curation_actions.id", ondelete="CASCADE"), primary_key=True)
    sample_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    old_status: Mapped[str] = mapped_column(String(16))


class ApiCall(Base):
    """Every call to a teacher: what was asked, what came back, what it cost. Never the key."""

    __tablename__ = "api_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[Optional[int]] = mapped_column(ForeignKey("generation_jobs.id", ondelete="CASCADE"), index=True)
    request_index: Mapped[Optional[int]] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    provider: Mapped[str] = mapped_column(String(50))
    model: Mapped[str] = mapped_column(String(200))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)   # messages + parameters
    response_raw: Mapped[Optional[str]] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))                  # ok | error
    http_status: Mapped[Optional[int]] = mapped_column(Integer)
    error: Mapped[Optional[str]] = mapped_column(Text)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[Optional[float]] = mapped_column(Float)
    cost_usd: Mapped[Optional[float]] = mapped_column(Float)
    batch: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingRun(Base):
    __tablename__ = "training_runs"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES}", name="run_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    base_model: Mapped[str] = mapped_column(String(500))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    sample_ids: Mapped[list[Any]] = mapped_column(default=list)
    eval_sample_ids: Mapped[list[Any]] = mapped_column(default=list)
    output_dir: Mapped[Optional[str]] = mapped_column(String(1000))
    adapter_path: Mapped[Optional[str]] = mapped_column(String(1000))
    log_path: Mapped[Optional[str]] = mapped_column(String(1000))
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    stop_requested: Mapped[bool] = mapped_column(default=False)  # Stop & save: the worker saves and stops
    error: Mapped[Optional[str]] = mapped_column(Text)
    final_loss: Mapped[Optional[float]] = mapped_column(Float)
    eval_loss: Mapped[Optional[float]] = mapped_column(Float)
    runtime_seconds: Mapped[Optional[float]] = mapped_column(Float)
    sweep: Mapped[Optional[str]] = mapped_column(String(200), index=True)  # runs of one sweep share its name
    trainable_params: Mapped[Optional[int]] = mapped_column(Integer)
    adapter_size_mb: Mapped[Optional[float]] = mapped_column(Float)
    peak_memory_mb: Mapped[Optional[float]] = mapped_column(Float)
    estimated_memory_mb: Mapped[Optional[float]] = mapped_column(Float)  # the preflight's estimate
    # Whether the run's samples carried catalog candidates in their input (retrieval): the app then gives the
    # adapter candidates too (training/recommend.py). None (runs from before this was recorded): no candidates.
    with_candidates: Mapped[Optional[bool]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # When the operator published it: the reader's Recommend tab answers with this run (training/publish.py);
    # at most one run carries it.
    published_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    # What the worker is doing while no step is logged yet ("loading the base model and quantizing it", ...).
    phase: Mapped[Optional[str]] = mapped_column(String(200))

    metrics: Mapped[list["RunMetric"]] = relationship(
        back_populates="run", order_by="RunMetric.step", cascade="all, delete-orphan"
    )


class Sweep(Base):
    """A grid of training runs, run one after another by one worker (training/sweep_worker.py). Each run is
    an ordinary TrainingRun whose `sweep` is this sweep's name."""

    __tablename__ = "sweeps"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES}", name="sweep_status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)     # the base TrainConfig
    grid: Mapped[dict[str, Any]] = mapped_column(default=dict)       # setting -> values (training/sweep.py)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    stop_requested: Mapped[bool] = mapped_column(default=False)  # no further run starts; the current one stops
    log_path: Mapped[Optional[str]] = mapped_column(String(1000))
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class RunMetric(Base):
    __tablename__ = "run_metrics"
    __table_args__ = (UniqueConstraint("run_id", "step", name="uq_run_metrics_run_step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[Optional[float]] = mapped_column(Float)
    loss: Mapped[Optional[float]] = mapped_column(Float)
    eval_loss: Mapped[Optional[float]] = mapped_column(Float)
    learning_rate: Mapped[Optional[float]] = mapped_column(Float)
    tokens_per_second: Mapped[Optional[float]] = mapped_column(Float)
    peak_memory_mb: Mapped[Optional[float]] = mapped_column(Float)
    eta_seconds: Mapped[Optional[float]] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    run: Mapped[TrainingRun] = relationship(back_populates="metrics")


class Comparison(Base):
    __tablename__ = "comparisons"
    __table_args__ = (CheckConstraint(f"vote IS NULL OR vote IN {VOTES}", name="comparison_vote"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # One entry per column: {"backend", "output", "ttft_s", "total_s", "tokens", "grounded", "books", "error"}
    results: Mapped[list[Any]] = mapped_column(default=list)
    blind: Mapped[bool] = mapped_column(default=False)
    # Arena battles: the backends shown as A and B (hidden in the page until the vote).
    backend_a: Mapped[Optional[str]] = mapped_column(String(300), index=True)
    backend_b: Mapped[Optional[str]] = mapped_column(String(300), index=True)
    vote: Mapped[Optional[str]] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    voted_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))


class ReaderFeedback(Base):
    """A reader's thumbs up or down on a Recommend answer: the model that answered, the vote and the books it
    named — nothing of the request (Recommend keeps no request). Curate shows it per model."""

    __tablename__ = "reader_feedback"
    __table_args__ = (CheckConstraint("vote IN ('up', 'down')", name="feedback_vote"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(String(300), index=True)
    vote: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8))
    titles: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


EVAL_STATUSES = ("queued", "running", "completed", "failed", "cancelled")


EVAL_MODES = ("split", "requests")


class EvalRun(Base):
    """One backend evaluated on a held-out eval split (mode 'split': answers scored against the samples'
    references) or on a request set (mode 'requests': requests without reference answers, each answered
    through the recommendation pipeline): progress while it runs, aggregate metrics after."""

    __tablename__ = "eval_runs"
    __table_args__ = (CheckConstraint(f"status IN {EVAL_STATUSES}", name="eval_status"),
                      CheckConstraint(f"mode IN {EVAL_MODES}", name="eval_mode"))

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(300))          # what the tables show: "base model", "run #3", ...
    mode: Mapped[str] = mapped_column(String(16), default="split", server_default="split")
    # Request sets: which set ("grid en seed 9001 x20", "file reqs.jsonl sha 1a2b3c4d"), so evaluations of the
    # same set are compared side by side, and the requests themselves (RecommendRequest fields), kept here
    # so a JSONL file may go away and a resumed evaluation answers exactly the same requests.
    request_set: Mapped[Optional[str]] = mapped_column(String(300), index=True)
    requests: Mapped[Optional[list[Any]]] = mapped_column(JSON)
    backend: Mapped[dict[str, Any]] = mapped_column(default=dict)   # the backend spec, enough to rebuild it
    # The run whose eval split is used (and, for an adapter, the run it comes from); None: every eval sample.
    training_run_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL"), index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)    # the resolved EvalConfig
    sample_ids: Mapped[list[Any]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    pid: Mapped[Optional[int]] = mapped_column(Integer)
    stop_requested: Mapped[bool] = mapped_column(default=False)  # the worker stops between answers
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)   # training.metrics.aggregate()
    log_path: Mapped[Optional[str]] = mapped_column(String(1000))
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[Optional[datetime]] = mapped_column(DateTime(timezone=True))

    results: Mapped[list["EvalResult"]] = relationship(back_populates="eval_run", cascade="all, delete-orphan")


class EvalResult(Base):
    """One answer of an evaluation: what the backend wrote for a sample, how long it took, its scores."""

    __tablename__ = "eval_results"
    # One row per sample (split) or request (request set) and evaluation: a restarted worker skips what is
    # already scored. The column a mode does not use is NULL, and NULLs never collide in a unique constraint.
    __table_args__ = (UniqueConstraint("eval_run_id", "sample_id", name="uq_eval_results_run_sample"),
                      UniqueConstraint("eval_run_id", "request_index", name="uq_eval_results_run_request"))

    id: Mapped[int] = mapped_column(primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), index=True)
    sample_id: Mapped[Optional[int]] = mapped_column(Integer)  # no foreign key: results outlive a deleted sample
    request_index: Mapped[Optional[int]] = mapped_column(Integer)  # position in EvalRun.requests
    output: Mapped[str] = mapped_column(Text, default="")
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)   # training.metrics.AnswerScore
    latency_s: Mapped[Optional[float]] = mapped_column(Float)
    ttft_s: Mapped[Optional[float]] = mapped_column(Float)          # time to first token (request sets)
    output_tokens: Mapped[Optional[int]] = mapped_column(Integer)
    judge_score: Mapped[Optional[float]] = mapped_column(Float)
    judge_reason: Mapped[Optional[str]] = mapped_column(Text)
    error: Mapped[Optional[str]] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    eval_run: Mapped[EvalRun] = relationship(back_populates="results")


class ChatBackend(Base):
    """A chat backend the operator added on the admin side (an OpenAI-compatible server's URL and model, or
    another GPT/Claude model by name). From then on every tab offers it; the public tabs answer with offered
    backends only, so a visitor can never make the server call a URL of their choosing."""

    __tablename__ = "chat_backends"

    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(600), unique=True)   # training.backends.BackendSpec.label
    kind: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(300))
    base_url: Mapped[Optional[str]] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
