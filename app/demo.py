"""`moodshelf demo`: the whole pipeline on embedded defaults, offline — the catalog, the embedded base model,
offline-template samples, a short QLoRA run (training/config_hub/demo.yaml), its evaluation on requests no job
drew, then the app.

    moodshelf demo                    # ends in the app at http://127.0.0.1:7860
    moodshelf demo --no-serve --eval-count 0
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from app.commands import _check_bind, _db, check_port_free, check_serve_settings
from app.progress import print_comparison, run_generation, run_training, watch_evals
from db.errors import UserError

if TYPE_CHECKING:
    from db.engine import Database


def _approved_offline_samples(db: Database, language: str) -> int:
    from sqlalchemy import func, select

    from db.models import Sample

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Sample).where(
            Sample.provider == "offline", Sample.language == language, Sample.status == "approved"))


def _completed_run(db: Database, name: str) -> int | None:
    from sqlalchemy import select

    from db.models import TrainingRun

    with db.session() as s:
        return s.scalar(select(TrainingRun.id).where(TrainingRun.name == name, TrainingRun.status == "completed")
                        .order_by(TrainingRun.id.desc()).limit(1))


def demo_evaluation(db: Database, run_id: int, language: str, count: int, max_new_tokens: int = 320) -> None:
    """The base model and the demo run on `count` grid requests no generation job drew, constrained decoding on
    and off, in one worker; printed as the comparison table. A finished evaluation of the same run on the same
    request set is shown again instead of being run twice."""
    from training.eval_config import EvalConfig
    from training.evals import create_eval, request_set_evals, start_evals
    from training.request_sets import grid_set_name, unused_seed

    request_set = grid_set_name([language], count, unused_seed(db))
    wanted = [(backend, constrained) for backend in ("base", f"run:{run_id}") for constrained in (True, False)]
    done = {(ev.backend["name"], bool(ev.config.get("constrained"))): ev for ev in request_set_evals(db, request_set)
            if ev.training_run_id == run_id}
    if all(key in done for key in wanted):
        print(f"      run {run_id} was evaluated on {request_set} already: showing that (--retrain to train and "
              "evaluate again)")
        print_comparison([done[key] for key in wanted])
        return
    # run_id on the base model's evaluations too: the base is the run's own, so the rows compare like with like.
    ids = [create_eval(db, EvalConfig(backend=backend, run_id=run_id, requests="grid", language=language,
                                      count=count, constrained=constrained, max_new_tokens=max_new_tokens))
           for backend, constrained in wanted if (backend, constrained) not in done]
    start_evals(db, ids)
    watch_evals(db, ids)
    print("      (the Evaluate tab shows this table; again: moodshelf evals --compare)")


def cmd_demo(args: argparse.Namespace) -> None:
    from datagen.catalog import count_books, load_builtin_catalog
    from datagen.job_config import JobConfig
    from datagen.jobs import create_job
    from training.base_model import resolve_base_model
    from training.config import DEMO_PRESET, TrainConfig

    # The run's settings are a preset (training/config_hub/demo.yaml); --max-steps, --batch-size and --language
    # override it.
    preset = TrainConfig.from_yaml(DEMO_PRESET)
    max_steps = args.max_steps if args.max_steps is not None else preset.max_steps
    overrides = {"max_steps": max_steps, "language": args.language}
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    train_cfg = preset.replace(**overrides).validate()  # bad flags are found now, not after the samples
    if args.eval_count < 0 or args.eval_max_new_tokens < 1:  # found now, not after the training run
        raise UserError(f"--eval-count must be 0 or more (got {args.eval_count}) and --eval-max-new-tokens "
                        f"at least 1 (got {args.eval_max_new_tokens}).")
    if not args.no_serve:  # fail before minutes of work, not after
        check_serve_settings(args.port)
        _check_bind(args)
        check_port_free(args.host, args.port)
    evaluate = not args.no_train and args.eval_count > 0
    steps = 4 + (not args.no_train) + evaluate
    db = _db()
    print(f"[1/{steps}] catalog")
    report = load_builtin_catalog(db)
    print(f"      {report.summary()} — " + ", ".join(f"{k}: {v}" for k, v in sorted(count_books(db).items())))
    print(f"[2/{steps}] embedded base model (SmolLM2-135M-Instruct, converted once from GGUF)")
    print(f"      {resolve_base_model('smollm2-135m')}")
    print(f"[3/{steps}] {args.count} samples from the offline catalog provider (\"offline template\", seed {args.seed})")
    have = _approved_offline_samples(db, args.language)
    if have >= args.count:
        print(f"      {have} approved offline-template samples ({args.language}) from an earlier demo: reusing them")
    else:
        cfg = JobConfig(provider="offline", language=args.language, count=args.count - have, seed=args.seed + have,
                        auto_approve=True)
        run_generation(db, create_job(db, cfg))
    if not args.no_train:
        print(f"[4/{steps}] QLoRA fine-tune: 4-bit NF4 base + LoRA, {max_steps} steps (own process)")
        name = f"demo ({args.language}, {max_steps} steps" + (f", batch {args.batch_size})" if args.batch_size else ")")
        earlier = _completed_run(db, name)
        run_id = earlier
        if earlier is not None and not args.retrain:
            print(f"      run {earlier} ({name}) already completed: reusing its adapter (--retrain to train again)")
        else:
            run_id = run_training(db, train_cfg, name=name)
        if evaluate:
            print(f"[5/{steps}] evaluation: base model and run {run_id} on {args.eval_count} unseen {args.language} "
                  "grid requests, constrained decoding on and off (one worker)")
            demo_evaluation(db, run_id, args.language, args.eval_count, args.eval_max_new_tokens)
        from training.publish import publish_run, reader_name, reader_run

        publish_run(db, run_id)  # the operator's choice, made by the demo: readers get this run, not a later test
        print(f"      published run {run_id}: the Recommend tab answers as \"{reader_name(reader_run(db))}\"")
    if args.no_serve:
        print("done (--no-serve).")
        return
    print(f"[{steps}/{steps}] app at http://{args.host}:{args.port} — the readers' Recommend tab and the workbench (Compare, Arena, Generate, Curate, Train, Evaluate) on one page (Ctrl-C to stop)")
    from app.ui import serve

    serve(db, host=args.host, port=args.port, allow_open_admin=args.allow_open_admin)
