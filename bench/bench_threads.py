"""Generation beside a training run on the same cores: each alone, together uncapped, together with the caps.

    python bench/bench_threads.py                    # ~3 minutes on 2 idle CPU cores
    python bench/bench_threads.py --seconds 40 --out bench/results/threads_cpu.txt

Two worker processes, started and loaded first, then measured over the same `--seconds` window:
- train: QLoRA steps on SmolLM2-135M as training/sft.py runs them (4-bit NF4 base, LoRA r=16 on every linear
  layer, training/config.py defaults), batch 4 x 256 tokens; figure: seconds per optimizer step;
- generate: the app's local engine (training/inference.LocalModel), 96-token answers one after another;
  figure: tokens/s.
Scenarios: each alone with every core (torch's default), both together with every core each (what happened
before issue 11: OpenMP pools spinning against each other), and both together with training/threads.py's caps
(training cores - 1, generation the rest).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["Recommend 3 books for a tired nurse looking for calm.",
           "Books for a grieving father who likes the sea.",
           "Something hopeful for a programmer burned out by deadlines, please."]


def role_train(threads: int, seconds: float, base_model: str) -> dict:
    import torch
    from peft import get_peft_model

    from training.base_model import resolve_base_model
    from training.config import TrainConfig
    from training.sft import load_model_for_training

    torch.set_num_threads(threads)
    cfg = TrainConfig(base_model=base_model)
    model, peft_config, _ = load_model_for_training(cfg, str(resolve_base_model(base_model)))
    model = get_peft_model(model, peft_config)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    torch.manual_seed(0)
    batch = torch.randint(10, 4000, (4, 256))

    def step():
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()

    step()  # warm-up: first-call kernel setup
    ready()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"role": "train", "threads": threads, "steps": len(times), "s_per_step": sum(times) / len(times)}


def role_generate(threads: int, seconds: float, base_model: str) -> dict:
    from training.batching import BatchEngine, StreamStats
    from training.inference import LocalModel

    lm = LocalModel.load(base_model)
    lm._engine = BatchEngine(lm._model_for, lm.tokenizer, threads_now=lambda: threads)
    lm.generate("Hello", max_new_tokens=8)  # warm-up
    ready()
    tokens, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        stats = StreamStats()
        lm.generate(PROMPTS[i % len(PROMPTS)], max_new_tokens=96, stats=stats)
        tokens += stats.tokens
        i += 1
    wall = time.perf_counter() - start
    lm.engine.close()
    return {"role": "generate", "threads": threads, "answers": i, "tok_s": tokens / wall}


def ready() -> None:
    """Tell the parent this worker is loaded, then wait for its go (so both measure the same window)."""
    print("ready", flush=True)
    sys.stdin.readline()


def run(scenario: list[tuple[str, int]], seconds: float, base_model: str) -> list[dict]:
    procs = [subprocess.Popen([sys.executable, __file__, "--role", role, "--threads", str(n), "--seconds",
                               str(seconds), "--base-model", base_model],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              cwd=ROOT)
             for role, n in scenario]
    for p in procs:
        line = p.stdout.readline()
        if line.strip() != "ready":
            raise SystemExit(f"worker failed to start: {line!r}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    for p in procs:
        out, _ = p.communicate()
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--role", choices=["train", "generate"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--base-model", default="smollm2-135m")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if args.role:
        fn = role_train if args.role == "train" else role_generate
        print(json.dumps(fn(args.threads, args.seconds, args.base_model)), flush=True)
        return

    from training.threads import cores, generation_threads, training_threads

    n = cores()
    scenarios = {
        "train alone (all cores)": [("train", n)],
        "generate alone (all cores)": [("generate", n)],
        "together, uncapped (all cores each)": [("train", n), ("generate", n)],
        f"together, capped (train {training_threads(n)}, generate {generation_threads(True, n)})":
            [("train", training_threads(n)), ("generate", generation_threads(True, n))],
    }
    lines = [f"moodshelf thread sharing bench — {datetime.now():%Y-%m-%d %H:%M}, {n} cores, {args.base_model}, "
             f"{args.seconds:.0f} s per scenario, load average {os.getloadavg()[0]:.1f} at start", "",
             f"{'scenario':<44} {'train s/step':>12} {'generate tok/s':>15}"]
    print("\n".join(lines), flush=True)
    for name, scenario in scenarios.items():
        res = {r["role"]: r for r in run(scenario, args.seconds, args.base_model)}
        train = f"{res['train']['s_per_step']:.2f}" if "train" in res else ""
        gen = f"{res['generate']['tok_s']:.1f}" if "generate" in res else ""
        lines.append(f"{name:<44} {train:>12} {gen:>15}")
        print(lines[-1], flush=True)
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
