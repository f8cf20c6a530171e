"""Why the embedded model is converted once: load time of our safetensors checkpoint vs loading the GGUF
file through transformers' GGUF loader each time (what a script that skipped the conversion would do),
measured in the same process, plus a check that both give the same logits.

    python bench/bench_model_load.py            # uses $MOODSHELF_HOME (converts first if needed)
    python bench/bench_model_load.py --repeats 5
"""
from __future__ import annotations

import argparse
import statistics
import time


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.base_model import PRESETS, find_gguf, resolve_base_model

    gguf = find_gguf(PRESETS["smollm2-135m"])
    converted = resolve_base_model("smollm2-135m")  # one-time conversion happens here, not in the timing
    ours, m1 = timed(lambda: AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32), args.repeats)
    base, m2 = timed(lambda: AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                                  dtype=torch.float32), args.repeats)
    tok = AutoTokenizer.from_pretrained(converted)
    ids = tok("Recommend a calming book for a rainy day.", return_tensors="pt").input_ids
    with torch.no_grad():
        diff = (m1(ids).logits - m2(ids).logits).abs().max().item()
    print(f"{'load SmolLM2-135M (median of ' + str(args.repeats) + ')':<44}{'seconds':>10}")
    print(f"{'moodshelf: converted safetensors':<44}{ours:>10.2f}")
    print(f"{'baseline: GGUF through transformers':<44}{base:>10.2f}")
    print(f"{'speed-up':<44}{base / ours:>9.1f}x")
    print(f"{'max |logit difference|':<44}{diff:>10.2e}")


if __name__ == "__main__":
    main()
