"""Local inference speed: today's path, plain generate on a merged model, and the new engine, in one run.

    python bench/bench_inference.py                       # ~3 minutes on 2 idle CPU cores
    python bench/bench_inference.py --full                # also 8 concurrent requests on the one-at-a-time paths
    python bench/bench_inference.py | tee bench/results/inference_cpu.txt

SmolLM2-135M with a LoRA adapter (r=16 on every linear layer, training/config.py's defaults; random non-zero B
weights: speed does not depend on what the adapter learned), 96 greedy tokens per request (end tokens banned
so every path writes exactly 96), N requests sent at once from N threads, each streaming its answer:

(a) today's path (before issue 11): fp32 base + unmerged peft adapter, one worker thread running HF generate
    with a TextIteratorStreamer per request, in arrival order;
(b) plain `transformers` generate on the merged fp32 model, same worker;
(c) the new engine, training/inference.LocalModel (merged; bf16 where native, with int8 linear weights on CPU;
    continuous batching).

Columns: one stream tokens/s (N=1: 96 / answer time), aggregate tokens/s (all tokens / wall time from the
first request to the last answer), mean and max time to first token (queue wait included).
"""
from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NEW_TOKENS = 96
REQUESTS = ["Recommend 3 books for a tired nurse looking for calm.",
            "I feel anxious before exams. Which novels could help me relax?",
            "A teacher after a long week wants something funny and light.",
            "불안한 직장인에게 위로가 되는 책 3권을 추천해줘.",
            "Books for a grieving father who likes the sea.",
            "Something hopeful for a programmer burned out by deadlines, please.",
            "우울한 대학생에게 용기를 주는 소설을 추천해줘.",
            "Recommend cozy mysteries for a retired librarian on a rainy weekend."]


def make_adapter(base_path: str, out: str) -> str:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from training.config import TrainConfig

    cfg = TrainConfig()
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32),
                           LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                                      init_lora_weights=False))  # random A and B: a real, non-zero update
    model.save_pretrained(out)
    return out


class OneAtATime:
    """The old LocalModel's way: a worker thread runs HF generate per request, in turn; callers read streamers."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.jobs: "queue.Queue" = queue.Queue()
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        while (job := self.jobs.get()) is not None:
            job()

    def close(self):
        self.jobs.put(None)
        self.thread.join()

    def stream(self, prompt: str, stop_ids: list[int]):
        import torch

        from training.inference import utf8_safe_streamer

        inputs = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)
        streamer = utf8_safe_streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)

        def run():
            with torch.inference_mode():
                self.model.generate(**inputs, streamer=streamer, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                    do_sample=False, eos_token_id=stop_ids, pad_token_id=self.tokenizer.pad_token_id)

        self.jobs.put(run)
        yield from streamer


class BanStop:
    """Row processor for the engine: end tokens banned, as min_new_tokens does for generate."""

    def __init__(self, stop_ids):
        self.stop_ids = list(stop_ids)

    def __call__(self, generated, scores):
        scores[self.stop_ids] = float("-inf")
        return scores


def measure(stream_fn, n: int) -> dict:
    """N requests at once, each on its own thread; per-request TTFT and time, and the wall time of all."""
    results: list[dict] = [{} for _ in range(n)]
    t0 = time.perf_counter()

    def call(i):
        first, text = None, ""
        for chunk in stream_fn(REQUESTS[i % len(REQUESTS)]):
            if chunk and first is None:
                first = time.perf_counter() - t0
            text += chunk
        results[i] = {"ttft": first, "total": time.perf_counter() - t0, "text": text}

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttfts = [r["ttft"] for r in results]
    return {"n": n, "wall": wall, "one": NEW_TOKENS / results[0]["total"] if n == 1 else None,
            "agg": n * NEW_TOKENS / wall, "ttft_mean": statistics.mean(ttfts), "ttft_max": max(ttfts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="smollm2-135m")
    ap.add_argument("--full", action="store_true", help="8 concurrent requests on the one-at-a-time paths too")
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training import threads
    from training.base_model import load_tokenizer, resolve_base_model, stop_token_ids
    from training.inference import LocalModel, cpu_has_native_bf16

    started = time.perf_counter()
    base_path = str(resolve_base_model(args.base_model))
    tok = load_tokenizer(base_path)
    stop_ids = stop_token_ids(tok)
    tmp = tempfile.mkdtemp(prefix="bench-inference-")
    adapter = threads.off_main_thread(lambda: make_adapter(base_path, os.path.join(tmp, "adapter")))

    # Every path loads off the main thread, as the app does (training/threads.off_main_thread says why).
    old_model = threads.off_main_thread(lambda: PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), adapter).eval())
    merged_fp32 = threads.off_main_thread(lambda: PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32), adapter).merge_and_unload().eval())
    lm = LocalModel.load(base_path)
    t = time.perf_counter()
    lm.add_adapter("bench", adapter)
    merge_s = time.perf_counter() - t

    old, plain = OneAtATime(old_model, tok), OneAtATime(merged_fp32, tok)
    paths = {
        "(a) today: fp32 + unmerged LoRA, HF generate, one at a time": lambda p: old.stream(p, stop_ids),
        "(b) HF generate, merged fp32, one at a time": lambda p: plain.stream(p, stop_ids),
        f"(c) new engine: merged {str(lm.dtype).removeprefix('torch.')}{' + int8 weights' if lm.int8 else ''}, "
        "continuous batching":
            lambda p: lm.stream(p, adapter="bench", max_new_tokens=NEW_TOKENS, row_processor=BanStop(stop_ids)),
    }
    # the engine's worker must not be left inside torch at exit (a daemon thread there aborts the process)
    closers = dict(zip(paths, (old.close, plain.close, lm.engine.close)))
    lines = [f"moodshelf local inference bench — {datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} CPUs, "
             f"torch {torch.__version__}, threads {torch.get_num_threads()}, native bf16: {cpu_has_native_bf16()}, "
             f"load average {os.getloadavg()[0]:.1f} at start",
             f"SmolLM2-135M ({args.base_model}) + LoRA r=16 all linear layers (random), {NEW_TOKENS} greedy tokens "
             f"per request; merging the adapter took {merge_s:.1f} s", ""]
    header = f"{'path':<72} {'N':>2} {'one stream':>10} {'aggregate':>10} {'TTFT mean':>10} {'TTFT max':>9}"
    lines += [header, f"{'':<72} {'':>2} {'tok/s':>10} {'tok/s':>10} {'s':>10} {'s':>9}"]
    print("\n".join(lines), flush=True)
    table: dict[str, dict[int, dict]] = {}
    for name, fn in paths.items():
        for _ in fn("Hello"):  # warm-up: first calls pay one-off kernel setup
            pass
        table[name] = {}
        one_at_a_time = not name.startswith("(c)")
        for n in (1, 4, 8):
            if n == 8 and one_at_a_time and not args.full:
                row = f"{name if n == 1 else '':<72} {n:>2} {'':>10} {'= N=4':>10} (served in turn: --full measures it)"
            else:
                r = table[name][n] = measure(fn, n)
                one = f"{r['one']:.1f}" if r["one"] else ""
                row = (f"{name if n == 1 else '':<72} {n:>2} {one:>10} {r['agg']:>10.1f} {r['ttft_mean']:>10.2f} "
                       f"{r['ttft_max']:>9.2f}")
            lines.append(row)
            print(row, flush=True)
        # Its worker thread goes before the next path runs: two live threads that both use torch's OpenMP pool
        # slow each other ~3x on 2 cores even when one is idle (training/threads.off_main_thread).
        closers[name]()
    a, c = list(table.values())[0], list(table.values())[2]
    summary = ["", f"new vs today: one stream {c[1]['one'] / a[1]['one']:.1f}x (target >= 2x); "
                   f"aggregate at 4 concurrent {c[4]['agg'] / a[4]['agg']:.1f}x (target >= 4x); "
                   f"load average {os.getloadavg()[0]:.1f} at end; {time.perf_counter() - started:.0f} s in all"]
    print("\n".join(summary))
    if args.out:
        args.out.write_text("\n".join(lines + summary) + "\n")


if __name__ == "__main__":
    main()
