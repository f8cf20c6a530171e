"""The runner of a generation job's live calls: bounded concurrency, rate limits, retries with backoff, and one
transaction per sample, so that a job killed at any moment resumes to exactly its target with no duplicates.

How exactness works: request i is derived from (seed, i) and stored on its sample (unique per job), so a
resumed job skips every index already answered; and the dispatcher never has more requests in flight than
accepted samples still missing, so the job cannot overshoot.

    asyncio.run(JobRunner(db, job_id).run())     # or: datagen.jobs.run_job(db, job_id)

GENERATION is how the supervisor (workers/) runs it in a process of its own (datagen/worker.py).
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from datagen.catalog import catalog_index
from datagen.dedup import NearDuplicateIndex
from datagen.grounding import normalize_title
from datagen.job_config import JobConfig
from datagen.limits import RateLimiter, backoff_delay
from datagen.outcomes import reason_for, stopped_short_message
from datagen.pricing import estimate_cost
from datagen.prompts import (answer_schema, format_book, input_for, instruction_for, retrieval_input, split_candidates,
                             teacher_messages)
from datagen.providers.base import TeacherTask
from datagen.retrieval import Retriever
from datagen.validation import content_hash, status_for, validate_output
from db.engine import Database
from db.models import ApiCall, GenerationJob, Sample
from vendors.base import CallError, Completion, VendorClient
from workers import supervisor
from workers.supervisor import WorkerKind

ACCEPTED = ("approved", "pending")

GENERATION = WorkerKind(
    label="Generation job", model=GenerationJob, module="datagen.worker", id_flag="--job-id",
    active=("pending", "running"), tail_lines=10,
    dead_message=lambda job: f"The worker (pid {job.pid}) died; resume with `moodshelf generate --resume {job.id}`.")


def now() -> datetime:
    return datetime.now(timezone.utc)


def _count_reason(job: GenerationJob, reason: str | None) -> None:
    if reason:
        # A new dict, not an in-place change: the JSON column only notices assignment.
        job.reasons = {**(job.reasons or {}), reason: (job.reasons or {}).get(reason, 0) + 1}


def render_answer(parsed: dict, language: str) -> str:
    return "\n".join(format_book(i, b["title"].strip(), b["author"].strip(), b["reason"].strip(), b["effect"].strip(),
                                 language) for i, b in enumerate(parsed["books"], 1))


def off_candidate_flags(items, input_text: str) -> list[str]:
    """A sample whose input lists candidates must answer with those books only: one that is not among them
    would teach the student to ignore what it is given (the sample goes to a curator, needs_review)."""
    _, lines = split_candidates(input_text)
    if not lines:
        return []
    # Titles compared as grounding normalises them (spacing, subtitles, quotes), so "흰" matches "《흰》".
    offered = {normalize_title(line.rsplit(" - ", 1)[0]) for line in lines}
    return [f"off_candidates:{it.title}" for it in items if normalize_title(it.title) not in offered]


class JobRunner:
    def __init__(self, db: Database, job_id: int, on_progress: Callable[[GenerationJob], None] | None = None):
        self.db, self.job_id, self.on_progress = db, job_id, on_progress
        with db.session() as s:
            job = s.get(GenerationJob, job_id)
            if job is None:
                raise ValueError(f"No generation job {job_id}.")
            self.cfg = JobConfig.stored(job.config)
        self.provider: VendorClient = self.cfg.make_provider()
        self.grid = self.cfg.grid()
        self.retriever = Retriever.for_db(db)
        self.index = None
        self.dups = NearDuplicateIndex(self.cfg.near_dup_threshold)
        self.last_error: str | None = None
        self.fatal: str | None = None

    # -- setup -----------------------------------------------------------------------------------------------
    def _load_state(self) -> tuple[int, set[int], Counter]:
        # One owner per job: a second worker (or foreground resume) of a live job stops here, changing nothing.
        supervisor.claim(self.db, GENERATION, self.job_id)
        with self.db.begin() as s:
            job = s.get(GenerationJob, self.job_id)
            job.status, job.error = "running", None
            job.started_at = job.started_at or now()
            job.stop_requested = False
            accepted = s.scalar(select(func.count()).select_from(Sample).where(
                Sample.job_id == self.job_id, Sample.status.in_(ACCEPTED)))
            done = set(s.scalars(select(Sample.request_index).where(Sample.job_id == self.job_id,
                                                                    Sample.request_index.is_not(None))))
            uses: Counter = Counter()
            for (books,) in s.execute(select(Sample.books).where(Sample.job_id == self.job_id,
                                                                 Sample.status.in_(ACCEPTED))):
                uses.update(b["title"] for b in books)
            # Near-duplicates are looked for across every earlier sample in this language, not just this job.
            for sid, output, cluster in s.execute(select(Sample.id, Sample.output, Sample.cluster_id)
                                                  .where(Sample.language == self.cfg.language)):
                self.dups.add(sid, output, cluster)
        self.index = catalog_index(self.db)
        return accepted, done, uses

    def _task(self, i: int, request, uses: Counter) -> TeacherTask:
        """Request i with its candidates: retrieved for the whole request (datagen/retrieval.py), shuffled,
        titles at the job's per-title cap left out. With retrieval on (the default) they are written into
        the sample's input too; the teacher always chooses among them."""
        capped = {t for t, n in uses.items() if n >= self.cfg.max_per_title}
        found = self.retriever.retrieve(request, k=self.cfg.candidates_k, seed=self.cfg.seed * 7_919 + i,
                                        exclude_titles=capped)
        cands = found.books
        instruction, input_text = instruction_for(request, self.cfg.n_books), input_for(request)
        if self.cfg.retrieval:
            input_text = retrieval_input(input_text, cands, self.cfg.language)
        return TeacherTask(index=i, request=request, instruction=instruction, input_text=input_text,
                           candidates=cands, n_books=self.cfg.n_books, seed=self.cfg.seed * 1_000_003 + i,
                           messages=teacher_messages(instruction, input_for(request), cands, self.cfg.n_books,
                                                     self.cfg.language),
                           schema=answer_schema(self.cfg.n_books), candidate_scores=found.scores)

    # -- one request -----------------------------------------------------------------------------------------
    async def _call(self, task: TeacherTask, limiter: RateLimiter) -> Completion | None:
        est_tokens = sum(len(m["content"]) for m in task.messages) // 2 + 600
        record = self.provider.request_record(task) if self.provider.is_api else {"n_books": task.n_books}
        for attempt in range(1, self.cfg.max_retries + 2):
            await limiter.acquire(est_tokens)
            t0 = time.perf_counter()
            try:
                completion = await self.provider.agenerate(task)
            except CallError as e:
                latency = time.perf_counter() - t0
                self._log_call(task.index, attempt, record, None, "error", e.http_status, str(e), 0, 0, latency)
                self.last_error = str(e)
                if not e.retryable:
                    if e.http_status in (401, 403, 404):
                        self.fatal = str(e)  # every other request would fail the same way
                    return None
                if attempt > self.cfg.max_retries:
                    return None
                await asyncio.sleep(backoff_delay(attempt, e.retry_after))
                continue
            latency = time.perf_counter() - t0
            completion.latency_s = latency
            cost = estimate_cost(self.provider.model, completion.input_tokens, completion.output_tokens,
                                 override=self.cfg.price_override()) if self.provider.is_api else 0.0
            completion.cost_usd = cost
            if self.provider.is_api:
                self._log_call(task.index, attempt, record, completion.raw, "ok", 200, completion.parse_error,
                               completion.input_tokens, completion.output_tokens, latency, cost)
            return completion
        return None

    def _log_call(self, index, attempt, record, raw, status, http_status, error, tin, tout, latency, cost=None,
                  batch=False):
        with self.db.begin() as s:
            s.add(ApiCall(job_id=self.job_id, request_index=index, attempt=attempt, provider=self.provider.name,
                          model=self.provider.model, request=record, response_raw=raw, status=status,
                          http_status=http_status, error=self.provider.redact(error) if error else None,
                          input_tokens=tin, output_tokens=tout, latency_s=latency, cost_usd=cost, batch=batch))
            if status == "ok":
                job = s.get(GenerationJob, self.job_id)
                job.tokens_in += tin
                job.tokens_out += tout
                if cost is None or job.cost_usd is None:
                    job.cost_usd = None  # one call at an unknown price makes the total unknown
                else:
                    job.cost_usd += cost

    # -- storing the answer ----------------------------------------------------------------------------------
    def _store(self, task: TeacherTask, completion: Completion, uses: Counter) -> str:
        """Validate and store one answer in its own transaction. Returns the outcome for the counters."""
        lang = self.cfg.language
        if completion.parsed is not None:
            output = render_answer(completion.parsed, lang)
            v = validate_output(output, language=lang, n_books=self.cfg.n_books, index=self.index)
        else:
            output = completion.raw or "(empty answer)"
            v = validate_output(output, language=lang, n_books=self.cfg.n_books, index=None)
            v.flags.insert(0, completion.parse_error or "format:unparseable")
        over_cap = [it.title for it in v.items if uses[it.title] >= self.cfg.max_per_title]
        if over_cap:
            v.flags.append(f"repeated:title_cap({over_cap[0]})")
        v.flags += off_candidate_flags(v.items, task.input_text)
        status = status_for(v, auto_approve=self.cfg.auto_approve)
        cluster = self.dups.query(output) if status != "rejected" else None
        if cluster is not None:
            v.flags.append(f"near_duplicate:cluster_{cluster}")
            status = "needs_review"
        req = task.request
        sample = Sample(
            job_id=self.job_id, request_index=task.index, instruction=task.instruction, input=task.input_text,
            output=output, emotion=req.emotion, occupation=req.occupation, effect=", ".join(req.effects),
            situation=req.situation, focus=req.focus, language=lang, provider=self.provider.name,
            model=self.provider.model, prompt_version=(self._prompt_version()), status=status,
            quality_flags=v.flags, books=[it.as_dict() for it in v.items], grounded_count=v.grounded_count,
            raw_output=completion.raw, content_hash=content_hash(task.instruction, task.input_text, output),
            cluster_id=cluster)
        outcome = ("duplicate" if cluster is not None else "accepted" if status in ACCEPTED
                   else "ungrounded" if status == "needs_review" else "rejected")
        reason = None if outcome == "accepted" else reason_for(v.flags, near_duplicate=cluster is not None)
        try:
            with self.db.begin() as s:
                s.add(sample)
                s.flush()
                job = s.get(GenerationJob, self.job_id)
                if outcome == "accepted":
                    job.accepted += 1
                elif outcome == "rejected":
                    job.rejected += 1
                elif outcome == "ungrounded":
                    job.ungrounded += 1
                else:
                    job.duplicates += 1
                _count_reason(job, reason)
                sample_id = sample.id
        except IntegrityError:
            # Same content as an existing sample (exact duplicate): nothing new to keep.
            with self.db.begin() as s:
                job = s.get(GenerationJob, self.job_id)
                job.duplicates += 1
                _count_reason(job, "exact_duplicate")
            return "duplicate"
        self.dups.add(sample_id, output, cluster)
        if outcome == "accepted":
            uses.update(it.title for it in v.items)
        return outcome

    def _prompt_version(self) -> str:
        from datagen.prompts import PROMPT_VERSION, TEACHER_PROMPT_VERSION

        return TEACHER_PROMPT_VERSION if self.provider.is_api else PROMPT_VERSION

    def _progress(self) -> bool:
        """Report progress; returns True when a cancel was requested."""
        with self.db.session() as s:
            job = s.get(GenerationJob, self.job_id)
            if self.on_progress:
                self.on_progress(job)
            return job.stop_requested

    def _mark_interrupted(self, e: BaseException) -> None:
        """Ctrl-C / cancel -> cancelled, anything else -> failed; resumable either way, never left 'running'."""
        with self.db.begin() as s:
            job = s.get(GenerationJob, self.job_id)
            job.status = "cancelled" if isinstance(e, (KeyboardInterrupt, asyncio.CancelledError)) else "failed"
            job.error, job.finished_at, job.pid = self.provider.redact(f"{type(e).__name__}: {e}"), now(), None

    def _finish(self, status: str, error: str | None) -> GenerationJob:
        """Record how the job ended and hand back a detached copy of its row."""
        with self.db.begin() as s:
            job = s.get(GenerationJob, self.job_id)
            job.status, job.error, job.finished_at, job.pid = status, error, now(), None
            s.flush()
            s.expunge(job)
        return job

    # -- the job ---------------------------------------------------------------------------------------------
    async def run(self) -> GenerationJob:
        accepted, done, uses = self._load_state()
        target = self.cfg.count
        max_requests = target * self.cfg.max_attempts_factor + len(done)
        requests = self.grid.sample(max_requests, seed=self.cfg.seed)
        todo = iter(i for i in range(len(requests)) if i not in done)
        limiter = RateLimiter(self.cfg.rpm, self.cfg.tpm)
        in_flight: dict[asyncio.Task, TeacherTask] = {}
        cancelled = exhausted = False
        try:
            while True:
                while (not cancelled and not self.fatal and len(in_flight) < self.cfg.concurrency
                       and accepted + len(in_flight) < target):
                    i = next(todo, None)
                    if i is None:
                        exhausted = True
                        break
                    task = self._task(i, requests[i], uses)
                    in_flight[asyncio.ensure_future(self._call(task, limiter))] = task
                if not in_flight:
                    break
                finished, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                # Store in request order (a set's order is arbitrary), so an offline job is reproducible.
                for fut in sorted(finished, key=lambda f: in_flight[f].index):
                    task = in_flight.pop(fut)
                    completion = fut.result()
                    if completion is None:  # the call failed for good: a failed call, not a rejected sample
                        with self.db.begin() as s:
                            job = s.get(GenerationJob, self.job_id)
                            job.failed_calls += 1
                            job.error = f"last failed API call: {self.last_error}"
                        continue
                    if self._store(task, completion, uses) == "accepted":
                        accepted += 1
                cancelled = self._progress() or cancelled
        except BaseException as e:
            for fut in in_flight:
                fut.cancel()
            self._mark_interrupted(e)
            raise
        finally:
            await self.provider.aclose()

        if accepted >= target:
            return self._finish("completed", None)
        if cancelled:
            return self._finish("cancelled", f"Cancelled at {accepted} of {target}; resume with --resume {self.job_id}.")
        if self.fatal:
            return self._finish("failed", self.fatal)
        return self._finish("failed", self._stopped_short(accepted, target, exhausted=exhausted))

    def _stopped_short(self, accepted: int, target: int, *, exhausted: bool) -> str:
        """Every cause of a short job, counted (not just the last transient error)."""
        with self.db.session() as s:
            job = s.get(GenerationJob, self.job_id)
            reasons, failed_calls = dict(job.reasons or {}), job.failed_calls
        return stopped_short_message(accepted, target, reasons, failed_calls,
                                     self.provider.redact(self.last_error) if self.last_error else None,
                                     exhausted=exhausted)
