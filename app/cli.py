"""moodshelf — teach a small book-recommendation model with GPT/Claude, then compare it side by side.

    moodshelf demo                     # catalog -> offline samples -> QLoRA run -> app on :7860
    moodshelf serve --port 7860        # the Gradio app
    moodshelf generate --count 100 --language en --approve
    moodshelf train --max-steps 30     # or: --config data/runs/1/config.yaml
    moodshelf eval --run-id 1          # base model vs run 1's adapter on run 1's held-out eval split
    moodshelf publish 1                # readers' Recommend tab answers with run 1
    moodshelf eval --backend base --backend run:1 --requests grid --count 20 --compare-constrained
    moodshelf recommend --language en --emotion anxious --effect comfort --text "short poems" --backend run:1
    moodshelf catalog import library.csv --encoding cp949
    moodshelf samples export approved.jsonl --format openai
    moodshelf model prepare            # convert the embedded SmolLM2-135M once
    moodshelf purge --older-than 30d   # delete stored reader requests (comparisons, arena votes) older than 30 days

Every command upgrades the database schema first. Heavy libraries (torch, transformers, gradio) are
imported inside the commands that need them, so `--help` is instant. The train, sweep, eval and generate flags
are derived from their config models (app/config_views.py); each parser names its command with
`set_defaults(func=commands.cmd_<name>)`.
"""
from __future__ import annotations

import argparse
import sys

from app import commands, demo
from app.config_views import add_flags
from app.errors import user_errors
from training.config import DEMO_PRESET, TrainConfig

OPEN_ADMIN_HELP = ("without MOODSHELF_AUTH, bind a non-loopback --host anyway: everyone who reaches it may use the "
                   "admin tabs (generate with your keys, train, delete samples)")


def _command(sub, name: str, func, **kwargs) -> argparse.ArgumentParser:
    """A subcommand whose parsed args go to `func` (main calls args.func(args))."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(func=func)
    return p


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field: the CLI is a view of the same object as the YAML and the form."""
    p.add_argument("--config", help="YAML file with TrainConfig fields (a run's config.yaml, or a preset such as "
                                    f"{DEMO_PRESET.relative_to(DEMO_PRESET.parents[2])}); flags given here override it")
    add_flags(p, TrainConfig)


def _add_job_flags(p: argparse.ArgumentParser) -> None:
    """One flag per JobConfig field (lists as comma-separated values)."""
    from datagen.job_config import JobConfig

    add_flags(p, JobConfig, flags={"auto_approve": ("--approve",), "timeout_s": ("--timeout", "--timeout-s")})


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    """One flag per EvalConfig field; --backend may be given several times (one evaluation each)."""
    from training.eval_config import REQUEST_SOURCES, EvalConfig

    p.add_argument("--backend", dest="backends", action="append", default=None, metavar="BACKEND",
                   help=EvalConfig.model_fields["backend"].description + " (repeatable)")
    add_flags(p, EvalConfig, skip=("backend",), choices={"requests": REQUEST_SOURCES})
    p.add_argument("--compare-constrained", action="store_true",
                   help="on a request set, evaluate each local backend twice, constrained decoding on and off, "
                        "in the same worker (one model load): the comparison table shows what it changes")


def add_serve_commands(sub) -> None:
    """demo and serve: the app, with or without the offline pipeline before it."""
    p = _command(sub, "demo", demo.cmd_demo,
                 help="run the whole pipeline offline on embedded defaults, then serve the app",
                 description="Load the catalog, generate samples with the offline catalog provider, approve "
                             "the valid ones, run a short QLoRA fine-tune of the embedded SmolLM2-135M, and "
                             "serve the app (Recommend + Compare tabs). No API key or network needed.")
    p.add_argument("--count", type=int, default=100, help="samples to generate (default 100)")
    p.add_argument("--language", choices=("en", "ko"), default="en",
                   help="sample language (default en: SmolLM2-135M is an English model; use ko with a "
                        "multilingual base such as gemma-3-270m)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None,
                   help=f"QLoRA steps (default: max_steps of the demo's preset, "
                        f"{DEMO_PRESET.relative_to(DEMO_PRESET.parents[2])}; its comments say why)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="QLoRA batch size (default: the preset's 4; a smaller batch needs less memory and learns "
                        "from fewer tokens per step; the run's log prints its memory estimate)")
    p.add_argument("--no-train", action="store_true", help="skip the training run")
    p.add_argument("--eval-count", type=int, default=20,
                   help="unseen grid requests the base model and the demo run are evaluated on after training, "
                        "constrained decoding on and off (default 20; 0 skips the evaluation)")
    p.add_argument("--eval-max-new-tokens", type=int, default=320,
                   help="token budget of each evaluated answer (default 320: a whole five-book answer)")
    p.add_argument("--retrain", action="store_true", help="train again even if an earlier demo run completed")
    p.add_argument("--no-serve", action="store_true", help="stop after the pipeline instead of serving the app")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only; "
                                                       "another needs MOODSHELF_AUTH or --allow-open-admin)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--allow-open-admin", action="store_true", help=OPEN_ADMIN_HELP)

    p = _command(sub, "serve", commands.cmd_serve,
                 help="serve the Gradio app",
                 description="Serve the app on http://HOST:PORT. With MOODSHELF_AUTH=user:password set, "
                             "readers get the Recommend tab alone at /, and the workbench (Compare, Arena, "
                             "Generate, Curate, Train, Evaluate, Backends) moves to /admin/ behind a login.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only; "
                                                       "another needs MOODSHELF_AUTH or --allow-open-admin)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--base-model", default=None, help="base model for local inference (default: the demo's)")
    p.add_argument("--allow-open-admin", action="store_true", help=OPEN_ADMIN_HELP)


def add_generate_commands(sub) -> None:
    """generate and jobs: teacher samples into the database."""
    p = _command(sub, "generate", commands.cmd_generate,
                 help="generate samples with a teacher (offline templates, GPT, Claude, any "
                      "OpenAI-compatible server)",
                 description="Generate instruction/input/output samples into the database. Keys come from "
                             "OPENAI_API_KEY / ANTHROPIC_API_KEY; base URLs from OPENAI_BASE_URL, "
                             "ANTHROPIC_BASE_URL, OPENAI_COMPATIBLE_BASE_URL or --base-url.")
    _add_job_flags(p)
    p.add_argument("--resume", type=int, metavar="JOB", help="continue job JOB until it has its target count")
    p.add_argument("--detach", action="store_true", help="run in a background worker process and return")

    _command(sub, "jobs", commands.cmd_jobs, help="list generation jobs with their counts and cost")


def add_data_commands(sub) -> None:
    """catalog, samples, purge and db: what is stored."""
    p = _command(sub, "catalog", commands.cmd_catalog,
                 help="load, import and inspect the book catalog")
    csub = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    c = csub.add_parser("import", help="import a CSV (one transaction; a bad file imports nothing)")
    c.add_argument("file")
    c.add_argument("--encoding", default="utf-8", help="file encoding (utf-8 default; cp949 for many Korean exports)")
    csub.add_parser("load-builtin", help="load the catalog shipped with moodshelf")
    csub.add_parser("stats", help="count books per language and mood")

    p = _command(sub, "samples", commands.cmd_samples,
                 help="import, export, split and count samples (what the Curate tab does)")
    ssub = p.add_subparsers(dest="samples_command", required=True, metavar="ACTION")
    c = ssub.add_parser("import", help="import JSONL/JSON/CSV samples (alpaca or chat messages); a bad row => "
                                       "nothing imported, every problem listed")
    c.add_argument("file")
    c.add_argument("--model", default="", help="model label stored on the samples (default: the file name)")
    c.add_argument("--n-books", type=int, default=3, help="books expected per answer when validating (default 3)")
    c = ssub.add_parser("export", help="write approved samples as alpaca, chat-messages or OpenAI fine-tuning JSONL")
    c.add_argument("out")
    c.add_argument("--format", choices=("alpaca", "chat", "openai"), default="alpaca")
    c.add_argument("--split", choices=("train", "eval", "none"), default=None, help="only this split")
    c.add_argument("--language", choices=("en", "ko"), default=None)
    c.add_argument("--provider", default=None, help="only samples from this provider")
    c.add_argument("--system", default="", help="system message for the openai format")
    c = ssub.add_parser("split", help="give approved samples a train/eval split (seeded, stable)")
    c.add_argument("--eval-fraction", type=float, default=0.1)
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--language", choices=("en", "ko"), default="")
    c.add_argument("--redraw", action="store_true", help="draw again for samples no run has used")
    ssub.add_parser("stats", help="counts by status, provider and language; rates per model; top titles")
    ssub.add_parser("undo", help="undo the last bulk status change")

    p = _command(sub, "purge", commands.cmd_purge,
                 help="delete stored reader requests (comparisons, arena battles) older than an age",
                 description="Delete the Compare comparisons and Arena battles (with their votes) stored more "
                             "than --older-than ago, in one transaction, and say how many. What a reader "
                             "writes is sensitive: run it from cron to keep only recent requests.")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 30d, 12h or 2w (hours, days, weeks)")
    p = _command(sub, "db", commands.cmd_db, help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("upgrade", help="apply migrations (every command does this first)")


def add_train_commands(sub) -> None:
    """train, sweep, runs, publish, merge and model: fine-tuning and its base models."""
    p = _command(sub, "train", commands.cmd_train,
                 help="QLoRA fine-tune on approved samples (in its own process)",
                 description="Create a training run from approved samples and run it in a worker process. "
                             "The resolved config is written to $MOODSHELF_HOME/runs/<id>/config.yaml.")
    _add_train_flags(p)
    p.add_argument("--name", default=None, help="a name for the run")
    p.add_argument("--no-wait", action="store_true", help="start the worker and return")
    p.add_argument("--resume", type=int, metavar="RUN", help="continue a failed/stopped run from its last checkpoint")

    p = _command(sub, "sweep", commands.cmd_sweep,
                 help="run a grid of training runs one after another and compare them",
                 description="Every TrainConfig flag sets the base; each --grid setting=v1,v2 adds an axis.")
    _add_train_flags(p)
    p.add_argument("--grid", action="append", required=True, metavar="SETTING=V1,V2",
                   help="e.g. lora_r=8,128,256 or target_modules=attention,all-linear (repeatable)")
    p.add_argument("--name", default=None, help="a name for the sweep")

    _command(sub, "runs", commands.cmd_runs, help="list training runs")
    p = _command(sub, "publish", commands.cmd_publish,
                 help="make a finished run the model that answers readers on the Recommend tab",
                 description="The Recommend tab answers with the published run; without one, with the finished "
                             "run whose evaluations ground the most books, else the base model.")
    p.add_argument("run_id", type=int, nargs="?", help="the run to publish")
    p.add_argument("--none", action="store_true", help="unpublish: back to the automatic choice")
    p = _command(sub, "merge", commands.cmd_merge,
                 help="fold a run's LoRA adapter into a full-precision copy of its base (for serving)")
    p.add_argument("run", type=int)
    p.add_argument("--out", default=None, help="output directory (default: data/runs/<run>/merged)")
    p = _command(sub, "model", commands.cmd_model, help="prepare base models")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    m = msub.add_parser("prepare", help="convert a preset GGUF model to safetensors (once)")
    m.add_argument("name", nargs="?", default="smollm2-135m")


def add_eval_commands(sub) -> None:
    """eval, evals and recommend: what the models answer, scored or streamed."""
    p = _command(sub, "eval", commands.cmd_eval,
                 help="batch-evaluate backends on a held-out eval split or on a request set (in its "
                      "own process)",
                 description="Score each backend's answers to the eval samples: format compliance, grounding, "
                             "hallucinated books, mood fit, diversity, ROUGE-L, latency and, with --judge, an "
                             "LLM judge. Without --backend and with --run-id: the base model and that run's "
                             "adapter (before/after). With --requests grid (unseen requests drawn from the "
                             "request grid with a seed no generation job used) or --requests-file FILE.jsonl: "
                             "requests without reference answers, answered through the recommendation "
                             "pipeline and compared side by side (grounded, invented and repeated books, mood "
                             "fit, catalog coverage, language, latency). Backends: base, run:N, "
                             "openai:MODEL, anthropic:MODEL, openai-compatible:MODEL@URL.")
    _add_eval_flags(p)
    p.add_argument("--no-wait", action="store_true", help="start the worker and return")
    p.add_argument("--resume", type=int, metavar="EVAL", help="continue a failed or cancelled evaluation; answers "
                                                              "already scored are kept")
    p = _command(sub, "evals", commands.cmd_evals,
                 help="list evaluations and their metrics",
                 description="Every evaluation with its status and main figures; with --run-id, the "
                             "before/after table of that training run (base model vs its adapter).")
    p.add_argument("--run-id", type=int, default=None, help="show the before/after table of this training run")
    p.add_argument("--compare", nargs="?", const="", default=None, metavar="REQUEST_SET",
                   help="show the request-set comparison table (default: the latest request set)")

    p = _command(sub, "recommend", commands.cmd_recommend,
                 help="ask a model for books: the answer streams, then the books with a catalog check",
                 description="The app's Recommend tab on the command line: the request goes through the same "
                             "pipeline (retrieval, the prompt shape the model was trained on, grounding). "
                             "Backends: base, run:N (or 'run #N'), openai:MODEL, anthropic:MODEL, "
                             "openai-compatible:MODEL@URL.")
    p.add_argument("--language", choices=("en", "ko"), default="en")
    p.add_argument("--emotion", default="", help="e.g. anxious / 불안함")
    p.add_argument("--occupation", default="", help="e.g. nurse / 직장인")
    p.add_argument("--effect", dest="effects", action="append", default=None, metavar="EFFECT",
                   help="desired effect, e.g. comfort or 위로 (repeatable, or comma-separated)")
    p.add_argument("--situation", default="", help="e.g. 'the commute' / '출퇴근 지하철'")
    p.add_argument("--focus", default="", help="e.g. 'light and easy' / '가볍게 읽을 수 있음'")
    p.add_argument("--text", default="", help="anything else, in your own words")
    p.add_argument("--backend", default="base", help="who answers (default: the base model)")
    p.add_argument("--n-books", type=int, default=3, help="books to recommend (default 3)")
    p.add_argument("--base-model", default=None, help="base model for 'base' (default: the demo's)")
    p.add_argument("--max-new-tokens", type=int, default=400)
    p.add_argument("--constrained", action=argparse.BooleanOptionalAction, default=True,
                   help="local models name only catalog books, each once, N of them (default: on; "
                        "--no-constrained lets the model write freely)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="moodshelf", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve_commands(sub)
    add_generate_commands(sub)
    add_train_commands(sub)
    add_eval_commands(sub)
    add_data_commands(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with user_errors() as result:
        args.func(args)
    return result.code


if __name__ == "__main__":
    sys.exit(main())
