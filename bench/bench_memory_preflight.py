"""Memory preflight vs measurement: for several training configs of the embedded default model
(SmolLM2-135M) on CPU, the estimate from training/memory.py next to the peak memory the worker itself
recorded (run_metrics.peak_memory_mb, the process's peak RSS) in the same run, and the error.

    python bench/bench_memory_preflight.py                 # the default set (~6-8 min on 2 cores)
    python bench/bench_memory_preflight.py --only 1,4      # a subset, by row number
    python bench/bench_memory_preflight.py --steps 3
    python bench/bench_memory_preflight.py --only 16      # the demo's own run (training/config_hub/demo.yaml)

Each config is a real run through the project's path -- create_run() in a throwaway MOODSHELF_HOME with
offline-generated approved samples (100 by default, as `moodshelf demo` makes), then `python -m training.sft
--run-id N` in a fresh process (so one config's allocations never inflate the next one's peak), one at a time.
Runs use eval_fraction=0 to save time (the eval pass holds no activations or gradients and stays below the
training peak), except the demo's row, which is the demo's config file as it is (eval_fraction 0.1) with only
max_steps set to --steps. The estimate gets the
tokenized lengths of the training split; with max_length above the longest example it assumes the
longest batch, which a 2-step run may not draw (so it can read a little high there).
Target: within +-20% of the measured peak.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# name, TrainConfig overrides
CONFIGS: list[tuple[str, dict]] = [
    ("nf4 b1 L256", dict(batch_size=1, max_length=256)),
    ("nf4 b2 L256", dict(batch_size=2, max_length=256)),
    ("nf4 b4 L256", dict(batch_size=4, max_length=256)),
    ("nf4 b2 L512", dict(batch_size=2, max_length=512)),
    ("nf4 b4 L512 (defaults)", dict(batch_size=4, max_length=512)),
    ("nf4 b4 L512 grad-ckpt", dict(batch_size=4, max_length=512, gradient_checkpointing=True)),
    ("nf4 b2 L256 r8", dict(batch_size=2, max_length=256, lora_r=8, lora_alpha=16)),
    ("nf4 b2 L256 r64", dict(batch_size=2, max_length=256, lora_r=64, lora_alpha=128)),
    ("none b2 L256", dict(batch_size=2, max_length=256, quantization="none")),
    ("none b2 L512 grad-ckpt", dict(batch_size=2, max_length=512, quantization="none",
                                    gradient_checkpointing=True)),
]
# Not used to fit the constants in training/memory.py: run with --extra to check the formula out of sample.
EXTRA: list[tuple[str, dict]] = [
    ("none b4 L256", dict(batch_size=4, max_length=256, quantization="none")),
    ("nf4 b2 L256 grad-ckpt", dict(batch_size=2, max_length=256, gradient_checkpointing=True)),
    ("nf4 b2 L256 attn, no dropout", dict(batch_size=2, max_length=256, target_modules="attention",
                                          lora_dropout=0.0)),
    ("none b1 L512", dict(batch_size=1, max_length=512, quantization="none")),
    ("nf4 b4 L512 r64", dict(batch_size=4, max_length=512, lora_r=64, lora_alpha=128)),
]
DEMO_CONFIG = ROOT / "training" / "config_hub" / "demo.yaml"
DEMO_ROW = ("demo (config_hub/demo.yaml)", None)  # always offered (with --only), read from the file


def converted_model(home: Path) -> Path:
    """The converted SmolLM2 checkpoint: reuse one from $MOODSHELF_HOME (or ./data) if there, else convert once."""
    from db.settings import Settings
    from training.base_model import resolve_base_model

    mine = Settings.from_env().models_dir / "smollm2-135m"
    target = home / "models" / "smollm2-135m"
    target.parent.mkdir(parents=True, exist_ok=True)
    if (mine / "config.json").exists() and any(mine.glob("*.safetensors")):
        target.symlink_to(mine, target_is_directory=True)
        return target
    os.environ["MOODSHELF_HOME"] = str(home)
    return Path(resolve_base_model("smollm2-135m"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps per run")
    ap.add_argument("--only", default="", help="comma-separated row numbers (1-based) to run")
    ap.add_argument("--extra", action="store_true", help="also run the held-out configs")
    ap.add_argument("--keep", action="store_true", help="keep the throwaway MOODSHELF_HOME (its path is printed)")
    ap.add_argument("--samples", type=int, default=100, help="approved samples to generate (the demo makes 100)")
    ap.add_argument("--model", type=Path, help="a model directory to use instead of the converted default "
                    "(a GPU machine without the GGUF: bench/random_model.py)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="moodshelf-membench-"))
    model_dir = args.model.resolve() if args.model else converted_model(home)
    os.environ.update(MOODSHELF_HOME=str(home), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    os.environ.pop("DATABASE_URL", None)

    from sqlalchemy import func, select
    from transformers import AutoConfig

    from datagen.catalog import load_builtin_catalog
    from datagen.job_config import JobConfig
    from datagen.jobs import create_job, run_job
    from db.engine import open_db
    from db.models import RunMetric, TrainingRun
    from training.base_model import load_tokenizer
    from training.config import TrainConfig
    from training.data import assign_splits, load_examples
    from training.memory import example_lengths, estimate_peak_memory, resolve_device
    from training.runs import create_run

    db = open_db()
    load_builtin_catalog(db)
    run_job(db, create_job(db, JobConfig(language="en", count=args.samples, seed=1, auto_approve=True)))
    # The demo's split (a tenth held out): its row evaluates on it; the other rows train on the rest only.
    split = assign_splits(db, eval_fraction=0.1, seed=42, language="en")
    lengths = example_lengths(load_tokenizer(str(model_dir)), load_examples(db, split.train))
    model_config = AutoConfig.from_pretrained(model_dir)
    device = resolve_device("auto")  # the worker trains on the GPU when there is one
    print(f"MOODSHELF_HOME={home}; device {device}")
    print(f"{len(lengths)} training examples, {min(lengths)}-{max(lengths)} tokens; "
          f"{args.steps} steps per run; peak = max run_metrics.peak_memory_mb (CPU: peak RSS, "
          f"CUDA: torch.cuda.max_memory_allocated)\n", flush=True)

    rows = list(enumerate(CONFIGS + EXTRA + [DEMO_ROW], 1))
    if not args.extra:
        rows = [r for r in rows if r[1] not in EXTRA]
    if args.only:
        keep = {int(x) for x in args.only.split(",")}
        rows = [r for r in rows if r[0] in keep]
    header = (f"{'#':>2}  {'config':<30}{'batch':>10}{'estimate MiB':>14}{'measured MiB':>14}{'error':>8}"
              f"{'seconds':>9}")
    print(header, flush=True)
    results = []
    t_all = time.perf_counter()
    for n, (name, overrides) in rows:
        if overrides is None:  # the demo's row: its file, as `moodshelf demo` trains it
            cfg = TrainConfig.from_yaml(DEMO_CONFIG).replace(base_model=str(model_dir), max_steps=args.steps)
        else:
            cfg = TrainConfig(base_model=str(model_dir), max_steps=args.steps, eval_fraction=0.0, language="en",
                              logging_steps=1, **overrides)
        est = estimate_peak_memory(cfg, model_config, lengths, device=device)
        run_id = create_run(db, cfg, name=name)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "training.sft", "--run-id", str(run_id)], cwd=ROOT,
                              capture_output=True, text=True)
        secs = time.perf_counter() - t0
        with db.session() as s:
            run = s.get(TrainingRun, run_id)
            measured = s.scalar(select(func.max(RunMetric.peak_memory_mb)).where(RunMetric.run_id == run_id))
        if run.status != "completed" or not measured:
            print(f"{n:>2}  {name:<30} FAILED ({run.status}): {(run.error or proc.stderr)[-400:]}", flush=True)
            continue
        err = (est.total - measured) / measured * 100
        results.append((n, name, est, measured, err, secs))
        print(f"{n:>2}  {name:<30}{f'{cfg.batch_size}x{est.seq_len}':>10}{est.total:>14,.0f}{measured:>14,.0f}"
              f"{err:>+7.1f}%{secs:>9.0f}", flush=True)

    print("\n" + header)
    for n, name, est, measured, err, secs in results:
        flag = "" if abs(err) <= 20 else "  <-- outside +-20%"
        print(f"{n:>2}  {name:<30}{f'{est.batch_size}x{est.seq_len}':>10}{est.total:>14,.0f}{measured:>14,.0f}"
              f"{err:>+7.1f}%{secs:>9.0f}{flag}")
    if results:
        worst = max(abs(r[4]) for r in results)
        inside = sum(abs(r[4]) <= 20 for r in results)
        print(f"\n{inside}/{len(results)} within +-20% (worst {worst:.1f}%); total {time.perf_counter() - t_all:.0f} s")
        terms = results[0][2].TERMS
        print(f"\nbreakdown of the estimates (MiB)\n{'#':>2}  {'config':<30}" + "".join(f"{t:>12}" for t in terms))
        for n, name, est, *_ in results:
            print(f"{n:>2}  {name:<30}" + "".join(f"{getattr(est, t):>12,.0f}" for t in terms))
    db.dispose()
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)  # the model symlink is removed, never followed


if __name__ == "__main__":
    main()
