"""What each `moodshelf` subcommand does: `cmd_<name>(args)`, wired to its parser in app/cli.py with
`set_defaults(func=...)`. The work lives in datagen/ and training/; this module never imports app/cli.py.

    moodshelf train --max-steps 30     # app/cli.main parses, then calls cmd_train(args)

Heavy libraries (and SQLAlchemy) are imported inside the commands, so `moodshelf --help` stays instant.
"""
from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

from app.progress import (fmt_number, print_comparison, print_eval_table, run_generation, run_training, watch_evals,
                          watch_run)
from db.errors import UserError

if TYPE_CHECKING:
    from db.engine import Database


def _db() -> Database:
    from db.engine import open_db

    return open_db()


def check_serve_settings(port: int) -> None:
    """What `serve` and `demo` can check before anything starts: the port number and MOODSHELF_AUTH."""
    import os

    if not 1 <= port <= 65535:
        raise UserError(f"--port must be between 1 and 65535 (got {port}).")
    from app.ui import parse_auth

    try:
        parse_auth(os.environ.get("MOODSHELF_AUTH"))
    except ValueError as e:
        raise UserError(str(e)) from None


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as e:
            raise UserError(f"Port {port} on {host} is already in use ({e.strerror}). Stop the other server "
                            f"(is moodshelf already running?) or pick another port with --port.") from None


# -- catalog ---------------------------------------------------------------------------------------------------
def cmd_catalog(args: argparse.Namespace) -> None:
    from datagen.catalog import MOODS, count_books, import_catalog_file, load_builtin_catalog

    db = _db()
    if args.catalog_command == "import":
        report = import_catalog_file(db, args.file, encoding=args.encoding)
        print(f"imported {report.summary()}")
    elif args.catalog_command == "load-builtin":
        print(f"loaded {load_builtin_catalog(db).summary()}")
    elif args.catalog_command == "stats":
        from sqlalchemy import select

        from db.models import Book

        counts = count_books(db)
        print("books:", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none")
        with db.session() as s:
            books = list(s.scalars(select(Book)))
        for mood in MOODS:
            print(f"  {mood:<11}" + "  ".join(f"{lang}={sum(1 for b in books if b.language == lang and mood in b.moods)}"
                                             for lang in sorted(counts)))


# -- samples ---------------------------------------------------------------------------------------------------
def cmd_samples(args: argparse.Namespace) -> None:
    from pathlib import Path

    from db.curation import SampleFilter, split_counts, undo_last_bulk

    db = _db()
    if args.samples_command == "import":
        from datagen.catalog import catalog_index, count_books, load_builtin_catalog
        from datagen.exchange import import_samples

        path = Path(args.file)
        if not path.is_file():
            raise UserError(f"No file {path}.")
        if not count_books(db):
            load_builtin_catalog(db)  # imported answers are grounded against the catalog like generated ones
        report = import_samples(db, path.read_bytes(), path.name, index=catalog_index(db), model=args.model,
                                n_books=args.n_books)
        print(f"imported {report.summary()}")
    elif args.samples_command == "export":
        from datagen.exchange import export_samples

        f = SampleFilter(split=args.split or "any", languages=[args.language] if args.language else [],
                         providers=[args.provider] if args.provider else [])
        n = export_samples(db, args.out, args.format, f=f, system_prompt=args.system)
        print(f"exported {n} approved samples to {args.out} ({args.format})")
    elif args.samples_command == "split":
        from training.data import assign_splits, reshuffle_splits

        fn = reshuffle_splits if args.redraw else assign_splits
        fn(db, eval_fraction=args.eval_fraction, seed=args.seed, language=args.language)
        print("approved samples by split: " + ", ".join(f"{k}={v}" for k, v in sorted(split_counts(db).items())))
    elif args.samples_command == "stats":
        from db.curation_stats import counts_by, rates_by_model, top_titles

        for column in ("status", "provider", "language"):
            print(f"{column}: " + (", ".join(f"{v}={n}" for v, n in counts_by(db, column)) or "no samples"))
        for r in rates_by_model(db):
            print(f"  {r.provider}/{r.model}: {r.samples} samples, grounded {r.grounded_rate:.0%}, "
                  f"rejected {r.rejected_rate:.0%}, approved {r.approved_rate:.0%}")
        print("top titles: " + "; ".join(f"{t} ({n})" for t, n in top_titles(db, limit=10)))
    elif args.samples_command == "undo":
        action = undo_last_bulk(db)
        print(f"undone action #{action.id}: {action.description} ({action.row_count} samples)")


# -- model -----------------------------------------------------------------------------------------------------
def cmd_model(args: argparse.Namespace) -> None:
    from training.base_model import resolve_base_model

    print(resolve_base_model(args.name))


def cmd_db(args: argparse.Namespace) -> None:
    from db.migrate import current_revision

    db = _db()
    print(f"schema at revision {current_revision(db.engine)}")


# -- generate --------------------------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> None:
    from app.config_views import job_config_from_args
    from datagen.catalog import count_books, load_builtin_catalog
    from datagen.jobs import create_job

    cfg = None if args.resume else job_config_from_args(args)  # every flag checked before anything is written
    db = _db()
    if not count_books(db):
        load_builtin_catalog(db)
    if args.resume:
        job_id = args.resume
    else:
        job_id = create_job(db, cfg)
        print(f"job {job_id} created")
    if args.detach:
        from datagen.worker import start_job
        from db.models import GenerationJob

        with db.session() as s:
            job = s.get(GenerationJob, job_id)
            if job is not None and job.status == "completed":
                print(f"job {job_id} is already complete ({job.accepted} samples).")
                return
        pid = start_job(db, job_id)  # refused while the job's worker is alive, as the foreground resume is
        print(f"job {job_id} running in the background (pid {pid}); `moodshelf jobs` shows progress")
        return
    run_generation(db, job_id)


def cmd_jobs(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from datagen.outcomes import not_accepted_summary

    from datagen.worker import reconcile_jobs
    from db.models import GenerationJob

    db = _db()
    reconcile_jobs(db)
    with db.session() as s:
        for j in s.scalars(select(GenerationJob).order_by(GenerationJob.id)):
            cost = f"${j.cost_usd:.4f}" if j.cost_usd is not None else "unknown"
            print(f"#{j.id:<4} {j.status:<10} {j.provider:<18} {j.model:<22} {j.language} "
                  f"{j.accepted}/{j.target_count} accepted, cost {cost}"
                  + (f"; not accepted: {why}" if (why := not_accepted_summary(j.reasons, j.failed_calls)) else
                     # jobs from before reasons were counted
                     f"; {j.rejected} rejected, {j.duplicates} dup, {j.ungrounded} ungrounded"
                     if j.rejected or j.duplicates or j.ungrounded else ""))


# -- train -----------------------------------------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> None:
    from app.config_views import train_config_from_args

    db = _db()
    if args.resume:
        from db.models import TrainingRun
        from training.runs import resume_run

        resume_run(db, args.resume)
        with db.session() as s:
            steps = s.get(TrainingRun, args.resume).config.get("max_steps", -1)
        print(f"run {args.resume}: resuming from its last checkpoint")
        if not args.no_wait:
            watch_run(db, args.resume, steps if steps > 0 else None)
        return
    cfg = train_config_from_args(args)
    run_training(db, cfg, name=args.name, wait=not args.no_wait)


def cmd_sweep(args: argparse.Namespace) -> None:
    from app.config_views import train_config_from_args
    from training.sweep import format_table, parse_grid, run_sweep, sweep_configs, sweep_table

    db = _db()
    base, grid = train_config_from_args(args), parse_grid(args.grid)
    total = len(sweep_configs(base, grid))
    done = [0]

    def run_one(db_, cfg, run_id):
        from training.runs import start_run

        done[0] += 1
        print(f"[{done[0]}/{total}] {run_id}")
        start_run(db_, run_id)
        try:
            watch_run(db_, run_id, cfg.max_steps if cfg.max_steps > 0 else None)
        except UserError as e:  # one failed configuration does not stop the sweep
            print(f"  {e}", file=sys.stderr)

    name = run_sweep(db, base, grid, args.name, run_one=run_one)
    print(f"\n{name}\n" + format_table(sweep_table(db, name)))


def cmd_merge(args: argparse.Namespace) -> None:
    from training.export import merge_run

    try:
        print(merge_run(_db(), args.run, args.out))
    except ValueError as e:
        raise UserError(str(e)) from None


# -- recommend -------------------------------------------------------------------------------------------------
def cmd_recommend(args: argparse.Namespace) -> None:
    """Stream one recommendation through the pipeline (training/recommend.py), then list its books."""
    from training.backends import BackendError
    from training.eval_config import parse_backend
    from training.reader_request import RecommendRequest
    from training.recommend import Recommender

    effects = [e for group in args.effects or [] for e in group.split(",")]
    request = RecommendRequest.from_fields(args.language, args.emotion, args.occupation, effects, args.situation,
                                           args.focus, args.text, n_books=args.n_books)
    db = _db()
    from datagen.catalog import count_books, load_builtin_catalog

    if not count_books(db):
        load_builtin_catalog(db)  # answers are grounded against the catalog
    if notice := request.crisis_notice():  # before any books, whatever the backend does (datagen/safety.py)
        print(notice + "\n", flush=True)
    rec = Recommender(db, base_model=args.base_model)
    try:
        prepared = rec.prepare(request, parse_backend(args.backend).label, constrained=args.constrained)
    except BackendError as e:
        raise UserError(str(e)) from None
    for note in prepared.notices:
        print(f"note: {note}", file=sys.stderr)
    result = None
    for item in rec.stream(prepared, max_new_tokens=args.max_new_tokens):
        if isinstance(item, str):
            sys.stdout.write(item)
            sys.stdout.flush()
        else:
            result = item
    print()
    if result.candidates:
        print(f"\n(chosen from {len(result.candidates)} catalog candidates; prompt shape: {result.shape})")
    if result.usage.truncated:
        print("\n(cut short: the answer reached its token limit)")
    decoding = " (catalog-constrained decoding)" if result.constrained else ""
    print(f"\nbooks: {result.grounded} of {len(result.books)} in the catalog{decoding}")
    for b in result.books:
        line = f"{b.book.title} - {b.book.author}" if b.book else f"{b.title} - {b.author or '?'}"
        print(f"  ✓ {line}" if b.book else f"  ✗ {line} (not in catalog)")
    if result.error:
        raise UserError(result.error)


def cmd_runs(args: argparse.Namespace) -> None:
    from sqlalchemy import select

    from db.models import TrainingRun
    from training.runs import reconcile_runs

    db = _db()
    reconcile_runs(db)
    with db.session() as s:
        for r in s.scalars(select(TrainingRun).order_by(TrainingRun.id)):
            loss = f"{r.final_loss:.3f}" if r.final_loss is not None else "-"
            shape = "candidates" if r.with_candidates else "plain"  # the prompt shape it was trained on
            print(f"#{r.id:<4} {r.status:<10} {r.base_model:<20} loss {loss:<7} {shape:<10} {r.name}")


def cmd_publish(args: argparse.Namespace) -> None:
    from training.publish import publish_run, reader_name, reader_run

    if (args.run_id is None) == (not args.none):
        raise UserError("Name the run to publish (moodshelf publish 3), or --none to unpublish.")
    db = _db()
    publish_run(db, None if args.none else args.run_id)
    run = reader_run(db)
    print(f"Readers now get: {reader_name(run)}" + (f" (run {run.id}: {run.name})" if run else ""))


# -- eval ------------------------------------------------------------------------------------------------------
def cmd_eval(args: argparse.Namespace) -> None:
    from app.config_views import eval_configs_from_args
    from training.evals import create_eval, start_evals

    db = _db()
    if args.resume is not None:
        from db.models import EvalRun

        with db.session() as s:
            ev = s.get(EvalRun, args.resume)
        if ev is None or ev.status not in ("failed", "cancelled"):
            raise UserError(f"Evaluation {args.resume} " + (f"is {ev.status}; only failed or cancelled ones resume."
                                                             if ev else "does not exist (see `moodshelf evals`)."))
        ids = [args.resume]
    else:
        ids = [create_eval(db, cfg) for cfg in eval_configs_from_args(args)]
    pid = start_evals(db, ids)
    print(f"evaluations {', '.join(f'#{i}' for i in ids)} started (pid {pid}); "
          f"log {get_log_path(db, ids[0])}")
    if args.no_wait:
        print("`moodshelf evals` shows progress and results")
        return
    watch_evals(db, ids)


def get_log_path(db: Database, eval_id: int) -> str:
    from db.models import EvalRun

    with db.session() as s:
        return s.get(EvalRun, eval_id).log_path


def cmd_evals(args: argparse.Namespace) -> None:
    from training.evals import before_after, list_evals

    db = _db()
    if args.run_id is not None:
        rows = before_after(db, args.run_id)
        if all(r["base"] is None and r["fine_tuned"] is None for r in rows):
            raise UserError(f"Run {args.run_id} has no completed evaluation yet: moodshelf eval --run-id {args.run_id}")
        print(f"run {args.run_id}: base model vs fine-tuned on its eval split")
        print(f"{'metric':<22}{'base':>10}{'fine-tuned':>12}{'change':>10}")
        for r in rows:
            mark = {True: "  better", False: "  worse", None: ""}[r["better"]]
            print(f"{r['metric']:<22}{fmt_number(r['base']):>10}{fmt_number(r['fine_tuned']):>12}{fmt_number(r['delta']):>10}{mark}")
        return
    if args.compare is not None:
        from training.evals import request_set_evals

        compared = request_set_evals(db, args.compare or None)
        if not compared:
            raise UserError("No completed request-set evaluation" + (f" on {args.compare!r}" if args.compare else "")
                            + " yet: moodshelf eval --backend base --requests grid --count 20")
        print_comparison(compared)
        return
    evs = list(reversed(list_evals(db)))
    if not evs:
        print("no evaluations yet: moodshelf eval --run-id N (or --backend base)")
        return
    print_eval_table(evs)


def cmd_purge(args: argparse.Namespace) -> None:
    from datetime import datetime, timezone

    from db.retention import RetentionError, parse_age, purge_reader_requests

    try:
        age = parse_age(args.older_than)
    except RetentionError as e:
        raise UserError(str(e)) from None
    before = datetime.now(timezone.utc) - age
    removed = purge_reader_requests(_db(), before)
    when = f"older than {args.older_than.strip()} (stored before {before:%Y-%m-%d %H:%M} UTC)"
    if not any(removed.values()):
        print(f"nothing to remove: no comparisons or arena battles {when}")
        return
    print(f"removed {removed['comparisons']} comparisons and {removed['arena battles']} arena battles with their "
          f"votes, {when}")


# -- serve / demo ----------------------------------------------------------------------------------------------
def _check_bind(args: argparse.Namespace) -> None:
    """Refuse a network bind without a login before anything else happens (see app/ui.check_bind)."""
    import os

    from app.ui import check_bind, parse_auth

    check_bind(args.host, parse_auth(os.environ.get("MOODSHELF_AUTH")), args.allow_open_admin)


def cmd_serve(args: argparse.Namespace) -> None:
    from app.ui import serve

    check_serve_settings(args.port)
    _check_bind(args)
    check_port_free(args.host, args.port)
    serve(_db(), host=args.host, port=args.port, base_model=args.base_model, allow_open_admin=args.allow_open_admin)


