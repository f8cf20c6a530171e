"""The evaluation worker: each eval sample's request goes to one backend, the answer is scored, state kept in the DB.

    python -m training.evaluate --eval-id 4                  # what `moodshelf eval` and the Evaluate tab launch
    python -m training.evaluate --eval-id 4 --eval-id 5      # several, one after another, one model load

It never runs inside the web server: the supervisor (workers/supervisor.py) launches, owns, stops and
reconciles it as the EVALUATION kind; a stop request is honoured between two answers. Every answer is stored
(eval_results) with its scores as it arrives, so progress is visible and a restarted evaluation skips what is
already scored; the aggregate figures (training/metrics.py) go on the EvalRun at the end.

An evaluation on a request set (mode 'requests') sends each request through the recommendation pipeline
(training/recommend.Recommender: the model's trained prompt shape, retrieval, constrained decoding, grounding),
`concurrency` requests at a time from a thread pool, so that the local generation engine can batch them; the
answers are scored and stored by the main thread as they finish.
"""
from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select

from datagen.catalog import catalog_index
from datagen.grid import EFFECTS
from datagen.prompts import student_prompt
from datagen.retrieval import Retriever
from datagen.validation import parse_books
from db.engine import Database
from db.models import Book, EvalResult, EvalRun, Sample
from training.eval_config import EvalConfig, EvalError, backend_name
from training.judge import JudgeError, judge_messages, parse_judge_reply
from training.metrics import AnswerScore, aggregate, score_answer
from training.reader_request import sample_messages, shape_for
from workers import supervisor
from workers.supervisor import StopRequested, WorkerKind

DEFAULT_N_BOOKS = 3


def _user_error(e: BaseException) -> str:
    from training.backends import BackendError
    from training.base_model import ModelLoadError
    from training.reader_request import RecommendError

    clean = (EvalError, BackendError, ModelLoadError, RecommendError)  # already worded for the user
    return str(e) if isinstance(e, clean) else f"{type(e).__name__}: {e}"


# The worker's rows are marked running one by one, as it reaches each (evaluate() below).
EVALUATION = WorkerKind(label="Evaluation", model=EvalRun, module="training.evaluate", id_flag="--eval-id",
                        dead_message=lambda ev: ev.error or "The evaluation process exited without reporting.",
                        describe_error=_user_error, running_on_launch=False)


def check_stop(db: Database, eval_id: int) -> None:
    """A safe point between two answers: everything scored so far is stored, a restart skips it."""
    if supervisor.stop_requested(db, EVALUATION, eval_id):
        raise StopRequested(f"Evaluation {eval_id} was cancelled.")


@dataclass
class LocalModels:
    """Local models of this worker, loaded once per base model and shared by base and adapter evaluations."""

    models: dict[str, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # request-set answers open backends in threads

    def get(self, base_model: str):
        with self.lock:
            if base_model not in self.models:
                from training.inference import LocalModel

                self.models[base_model] = LocalModel.load(base_model)
            return self.models[base_model]


def backend_spec(backend: dict):
    """The BackendSpec (training/backends.py) stored on an evaluation."""
    from training.backends import BackendSpec

    return BackendSpec(kind=backend["kind"], model=backend.get("model") or "", adapter_run=backend.get("adapter_run"),
                       base_url=backend.get("base_url"))


def open_backend(db: Database, backend: dict, local: LocalModels):
    """A chat backend (training/backends.py) for the spec stored on an evaluation."""
    from training.backends import make_backend

    spec = backend_spec(backend)
    lm = local.get(backend["base_model"]) if spec.is_local else None
    return make_backend(spec, local_model=lm, db=db)


def requested_moods(sample: Sample) -> list[str]:
    table = EFFECTS.get(sample.language, {})
    effects = [e.strip() for e in (sample.effect or "").split(",") if e.strip()]
    return [m for e in effects for m in table.get(e, [e])]


def _now() -> datetime:
    return datetime.now(timezone.utc)


def evaluate(db: Database, eval_id: int, local: LocalModels) -> None:
    check_stop(db, eval_id)  # cancelled while it waited for the evaluation before it
    with db.begin() as s:
        ev = s.get(EvalRun, eval_id)
        if ev is None:
            raise SystemExit(f"No evaluation {eval_id}.")
        cfg = EvalConfig.from_dict(ev.config)
        ev.status, ev.started_at, ev.error = "running", ev.started_at or _now(), None
        mode, backend = ev.mode, dict(ev.backend)
    if mode == "requests":
        evaluate_requests(db, eval_id, cfg, backend, local)
        return
    with db.session() as s:
        ev = s.get(EvalRun, eval_id)
        sample_ids = list(ev.sample_ids)
        done_ids = set(s.scalars(select(EvalResult.sample_id).where(EvalResult.eval_run_id == eval_id)))
        samples = {sm.id: sm for sm in s.scalars(select(Sample).where(Sample.id.in_(sample_ids)))}
        book_moods = {b_id: moods for b_id, moods in s.execute(select(Book.id, Book.moods))}
    missing = [i for i in sample_ids if i not in samples]
    if missing:
        raise EvalError(f"Samples {missing[:10]} of the eval split no longer exist.")
    index = catalog_index(db)
    model = open_backend(db, backend, local)
    judge_spec = cfg.judge_spec()
    judge = None
    if judge_spec is not None:
        from training.backends import make_backend

        judge = make_backend(judge_spec)
        print(f"judge: {backend_name(judge_spec)}", flush=True)
    # Each model gets the prompt shape it was trained on (training/recommend.py): the base model the plain
    # request, an adapter candidates iff its samples carried them, an API model the teacher's shape with the
    # answer-format system prompt (format compliance would otherwise measure the prompt, not the model).
    shape = shape_for(db, model.spec)
    retriever = Retriever.for_db(db)
    print(f"evaluating {backend['name']} on {len(sample_ids)} samples ({len(done_ids)} already scored), "
          f"prompt shape: {shape}", flush=True)
    for n, sid in enumerate(sample_ids, 1):
        if sid in done_ids:
            continue
        check_stop(db, eval_id)
        sm = samples[sid]
        n_books = len(parse_books(sm.output, sm.language)) or DEFAULT_N_BOOKS
        messages = sample_messages(sm, shape, retriever, n_books=n_books)
        text = model.complete(messages, max_new_tokens=cfg.max_new_tokens)
        latency = model.usage.total_s  # request to last token: queueing and network included
        score = score_answer(text, sm.output, language=sm.language, n_books=n_books, index=index,
                             book_moods=book_moods, requested_moods=requested_moods(sm), latency_s=latency)
        reason = judge_error = None
        if judge is not None:
            reply = judge.complete(judge_messages(student_prompt(sm.instruction, sm.input), text, sm.output), max_new_tokens=200)
            try:
                score.judge_score, reason = parse_judge_reply(reply)
            except JudgeError as e:  # one unreadable verdict costs that answer its judge score, not the run
                judge_error = str(e)
        with db.begin() as s:
            s.add(EvalResult(eval_run_id=eval_id, sample_id=sid, output=text, metrics=score.as_dict(),
                             latency_s=latency, output_tokens=model.usage.completion_tokens or None,
                             judge_score=score.judge_score, judge_reason=reason, error=judge_error))
            s.get(EvalRun, eval_id).done += 1
        print(f"[{n}/{len(sample_ids)}] sample {sid}: {latency:.2f} s, {score.n_books} books, "
              f"{score.grounded} grounded, format {'ok' if score.format_ok else 'off'}", flush=True)
    with db.begin() as s:
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)
                                 .order_by(EvalResult.id)))
        ev = s.get(EvalRun, eval_id)
        ev.metrics = aggregate([AnswerScore.from_dict(r.metrics) for r in results], [r.output for r in results])
        ev.done = len(results)
        ev.status, ev.finished_at, ev.pid = "completed", _now(), None


def evaluate_requests(db: Database, eval_id: int, cfg: EvalConfig, backend: dict, local: LocalModels) -> None:
    """Answer every request not yet scored through the pipeline, `cfg.concurrency` at a time, and score them."""
    from training.reader_request import RecommendRequest
    from training.recommend import Recommender

    with db.session() as s:
        requests = list(s.get(EvalRun, eval_id).requests or [])
        done = set(s.scalars(select(EvalResult.request_index).where(EvalResult.eval_run_id == eval_id)))
    spec = backend_spec(backend)
    # Every prepared request gets a backend of its own (a backend keeps one answer's usage and constraint);
    # local ones share this worker's model, loaded once per base model.
    rec = Recommender(db, backend_factory=lambda _label: open_backend(db, backend, local))
    open_backend(db, backend, local)  # the model and its adapter load here, once, before the threads start
    index = rec.catalog_index()
    with db.session() as s:
        books = list(s.execute(select(Book.id, Book.moods, Book.language)))
    book_moods = {b_id: moods for b_id, moods, _ in books}
    languages = {r["language"] for r in requests}
    catalog_size = sum(1 for *_, lang in books if lang in languages)
    todo = [i for i in range(len(requests)) if i not in done]
    print(f"evaluating {backend['name']} on {len(requests)} requests ({len(done)} already scored), constrained "
          f"decoding {'on' if cfg.constrained else 'off'}, {cfg.concurrency} at a time", flush=True)

    def answer(i: int):
        request = RecommendRequest.from_fields(**requests[i])
        prepared = rec.prepare(request, spec.label, constrained=bool(cfg.constrained))
        return rec.recommend(prepared, max_new_tokens=cfg.max_new_tokens)

    t0 = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=cfg.concurrency, thread_name_prefix=f"eval-{eval_id}")
    try:
        futures = {pool.submit(answer, i): i for i in todo}
        for n, future in enumerate(as_completed(futures), 1):
            check_stop(db, eval_id)  # the pool's shutdown below cancels the answers not started
            i = futures[future]
            result = future.result()  # a request the pipeline refuses fails the evaluation, with its message
            if result.error:  # the backend failed mid-answer: answers stored so far are kept for a resume
                raise EvalError(result.error)
            request, usage = requests[i], result.usage
            score = score_answer(result.text, None, language=request["language"], n_books=result.n_books,
                                 index=index, book_moods=book_moods,
                                 requested_moods=RecommendRequest.from_fields(**request).moods,
                                 latency_s=usage.total_s, ttft_s=usage.ttft_s,
                                 tokens=usage.completion_tokens or None)
            with db.begin() as s:
                s.add(EvalResult(eval_run_id=eval_id, request_index=i, output=result.text, metrics=score.as_dict(),
                                 latency_s=usage.total_s, ttft_s=usage.ttft_s,
                                 output_tokens=usage.completion_tokens or None))
                s.get(EvalRun, eval_id).done += 1
            print(f"[{n}/{len(todo)}] request {i}: {usage.total_s:.2f} s, {score.n_books} books, {score.grounded} "
                  f"grounded, {score.repeated} repeated, format {'ok' if score.format_ok else 'off'}", flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    wall_s = time.perf_counter() - t0
    with db.begin() as s:
        results = list(s.scalars(select(EvalResult).where(EvalResult.eval_run_id == eval_id)
                                 .order_by(EvalResult.request_index)))
        ev = s.get(EvalRun, eval_id)
        # Throughput counts what this process generated in its wall time (a resumed run: the rest only).
        fresh = [AnswerScore.from_dict(r.metrics) for r in results if r.request_index in set(todo)]
        ev.metrics = {**aggregate([AnswerScore.from_dict(r.metrics) for r in results], [r.output for r in results],
                                  catalog_size=catalog_size),
                      "throughput_tokens_per_s": aggregate(fresh, wall_s=wall_s)["throughput_tokens_per_s"],
                      "wall_s": wall_s, "concurrency": cfg.concurrency}
        ev.done = len(results)
        ev.status, ev.finished_at, ev.pid = "completed", _now(), None


def main(argv: list[str] | None = None) -> int:
    local = LocalModels()  # shared by the evaluations of this worker: each base model loads once
    return supervisor.run_worker_main(EVALUATION, lambda db, eval_id: evaluate(db, eval_id, local), argv,
                                      description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
