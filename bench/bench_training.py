"""Training throughput: moodshelf's trainer next to a plain TRL + peft script with default settings (what a
notebook would write), same model, data, steps, batch size, learning rate and seed, in the same run.
Reports non-padding tokens per second, peak memory and eval loss; then 4-bit vs 16/32-bit memory and
step time for our trainer.

    python bench/bench_training.py --steps 20            # default model, ~10 minutes on 2 CPU cores
    python bench/bench_training.py --steps 20 --no-precision

Target: ours >= 1.3x the baseline's tokens/s at an eval loss within 2%.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

BASELINE = r'''
import json, sys, time, resource, torch
from datasets import Dataset
from peft import LoraConfig, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
from trl import SFTConfig, SFTTrainer

model_path, data_path, steps, batch, lr, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
data = json.load(open(data_path))
tok = AutoTokenizer.from_pretrained(model_path)
gpu = torch.cuda.is_available()
# What a notebook writes: bf16 compute on a GPU, fp32 on CPU (SFTConfig's bf16=True default autocasts anyway).
model = AutoModelForCausalLM.from_pretrained(model_path, quantization_config=BitsAndBytesConfig(
    load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
    bnb_4bit_compute_dtype=torch.bfloat16 if gpu else torch.float32), device_map={"": 0 if gpu else "cpu"})
model = prepare_model_for_kbit_training(model)
args = SFTConfig(output_dir=data_path + ".out", max_steps=steps, per_device_train_batch_size=batch,
                 learning_rate=lr, seed=seed, report_to="none", save_strategy="no", use_cpu=not gpu, logging_steps=1,
                 per_device_eval_batch_size=batch)
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(data["train"]),
                     eval_dataset=Dataset.from_list(data["eval"]), processing_class=tok,
                     peft_config=LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
t0 = time.perf_counter()
trainer.train()
elapsed = time.perf_counter() - t0
tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
ev = trainer.evaluate()["eval_loss"]
peak = torch.cuda.max_memory_allocated() / 2**20 if gpu else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT", json.dumps({"tokens_per_s": tokens / elapsed, "eval_loss": ev, "peak_mb": peak, "seconds": elapsed,
      "gradient_checkpointing": args.gradient_checkpointing}))
'''


def ours(db, cfg) -> dict:
    from db.models import RunMetric, TrainingRun
    from training.runs import create_run, start_run, wait_for_run

    run_id = create_run(db, cfg, name=f"bench {cfg.quantization}")
    start_run(db, run_id)
    run = wait_for_run(db, run_id, poll_s=1)
    assert run.status == "completed", run.error
    with db.session() as s:
        run = s.get(TrainingRun, run_id)
        metrics = list(s.query(RunMetric).filter_by(run_id=run_id).order_by(RunMetric.step))
    log = Path(run.log_path).read_text()
    # Tokens actually trained on: the last logged num_tokens (TRL counts non-padding tokens).
    tokens = max(float(x.split("'num_tokens': '")[1].split("'")[0]) for x in log.splitlines()
                 if "'num_tokens': '" in x)
    return {"tokens_per_s": tokens / run.runtime_seconds, "eval_loss": run.eval_loss, "peak_mb": run.peak_memory_mb,
            "seconds": run.runtime_seconds, "step_s": run.runtime_seconds / cfg.max_steps,
            "steps_logged": len(metrics)}


def describe(cfg) -> str:
    from training.config import resolve_compute_dtype
    from training.memory import resolve_device

    dtype = resolve_compute_dtype(cfg.compute_dtype, resolve_device("auto"))
    return (f"{dtype}, grad. ckpt {'on' if cfg.gradient_checkpointing else 'off'}, "
            f"dropout {cfg.lora_dropout:g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--no-precision", action="store_true", help="skip the 4-bit vs 16/32-bit comparison")
    ap.add_argument("--model", default="smollm2-135m",
                    help="preset, hub id or local path (a GPU machine without the GGUF: bench/random_model.py)")
    ap.add_argument("--padding-free", action="store_true", help="our trainer with padding-free batches")
    ap.add_argument("--baseline-dropout", action="store_true",
                    help="also our trainer with the baseline's LoRA dropout (0.05), to separate the two effects")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each trainer, alternating; the table is the mean")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="moodshelf-bench-train-")
    os.environ["MOODSHELF_HOME"] = home
    os.environ.pop("DATABASE_URL", None)
    from datagen.catalog import load_builtin_catalog
    from datagen.job_config import JobConfig
    from datagen.jobs import create_job, run_job
    from db.engine import open_db
    from training.base_model import resolve_base_model
    from training.config import TrainConfig
    from training.data import assign_splits, load_examples

    db = open_db()
    load_builtin_catalog(db)
    run_job(db, create_job(db, JobConfig(language="en", count=args.count, auto_approve=True)))
    model_path = resolve_base_model(args.model)
    ids = assign_splits(db, eval_fraction=0.1, seed=42)
    data_path = Path(home) / "data.json"
    data_path.write_text(json.dumps({"train": load_examples(db, ids.train), "eval": load_examples(db, ids.eval)}))

    base_cfg = TrainConfig(base_model=model_path, max_steps=args.steps, batch_size=args.batch_size,
                           learning_rate=args.lr, save_steps=0, logging_steps=1,
                           eval_steps=-1)  # eval at the end, like the baseline
    def baseline() -> dict:
        out = subprocess.run([sys.executable, "-c", BASELINE, model_path, str(data_path), str(args.steps),
                              str(args.batch_size), str(args.lr), "42"], capture_output=True, text=True)
        line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            sys.exit("baseline failed:\n" + out.stderr[-3000:])
        return json.loads(line[7:])

    # Ours and the baseline alternate (A B A B ...), so a slow spell on a shared machine hits both; the load
    # average before each run is printed so a disturbed run can be seen.
    runs: dict[str, list[dict]] = {}
    configs = {f"moodshelf defaults ({describe(base_cfg)})": base_cfg}
    if args.padding_free:
        pf_cfg = TrainConfig(**{**base_cfg.to_dict(), "padding_free": True})
        configs[f"moodshelf padding-free ({describe(pf_cfg)})"] = pf_cfg
    if args.baseline_dropout:
        dr_cfg = TrainConfig(**{**base_cfg.to_dict(), "lora_dropout": 0.05})
        configs[f"moodshelf, LoRA dropout 0.05 ({describe(dr_cfg)})"] = dr_cfg
    base_name = "baseline: TRL + peft defaults (gradient_checkpointing=True)"
    for rep in range(args.repeats):
        for name, cfg in [*configs.items(), (base_name, None)]:
            load = os.getloadavg()[0]
            r = ours(db, cfg) if cfg is not None else baseline()
            r.pop("gradient_checkpointing", None)
            runs.setdefault(name, []).append(r)
            print(f"run {rep + 1}: {name:<58} {r['tokens_per_s']:7.1f} tokens/s  eval loss {r['eval_loss']:.4f}  "
                  f"(load average before: {load:.2f})", flush=True)
    rows = {name: {k: sum(r[k] for r in rs) / len(rs) for k in ("tokens_per_s", "eval_loss", "peak_mb", "seconds")}
            for name, rs in runs.items()}

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({os.cpu_count()} cores)"
    print(f"\nQLoRA SFT, {args.model} nf4, {args.steps} steps x batch {args.batch_size}, lr {args.lr}, {device}")
    print(f"mean of {args.repeats} alternating runs each")
    print(f"{'':<62}{'tokens/s':>10}{'eval loss':>11}{'peak MiB':>10}{'seconds':>9}")
    for name, r in rows.items():
        print(f"{name:<62}{r['tokens_per_s']:>10.1f}{r['eval_loss']:>11.4f}{r['peak_mb']:>10.0f}{r['seconds']:>9.1f}")
    base_r = rows[next(reversed(rows))]
    for name, ours_r in list(rows.items())[:-1]:
        speedup = ours_r["tokens_per_s"] / base_r["tokens_per_s"]
        loss_gap = abs(ours_r["eval_loss"] - base_r["eval_loss"]) / base_r["eval_loss"]
        print(f"{name.split(' (')[0]}: speed-up {speedup:.2f}x (target >= 1.3x), eval loss difference "
              f"{loss_gap:.1%} (target <= 2%): {'met' if speedup >= 1.3 and loss_gap <= 0.02 else 'NOT met'}")

    if not args.no_precision:
        print(f"\nour trainer by base precision ({args.steps} steps x batch {args.batch_size}, "
              f"{describe(base_cfg)}; unquantized weights are stored in the compute dtype)")
        print(f"{'':<24}{'peak MiB':>10}{'s/step':>9}{'eval loss':>11}")
        for q in ("nf4", "int8", "none"):
            r = rows[next(iter(rows))] if q == "nf4" else ours(db, TrainConfig(**{**base_cfg.to_dict(), "quantization": q}))
            label = {"nf4": "4-bit NF4", "int8": "8-bit", "none": "unquantized"}[q]
            print(f"{label:<24}{r['peak_mb']:>10.0f}{r['seconds'] / args.steps:>9.2f}{r['eval_loss']:>11.4f}")


if __name__ == "__main__":
    main()
