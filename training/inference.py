"""Local inference: the base model loaded once, each fine-tuned adapter merged into its own copy, answers
decoded in batches by one worker thread and streamed to each caller.

    lm = LocalModel.load("smollm2-135m")
    lm.add_adapter("run-3", "data/runs/3/adapter")      # merged now (a second or two for a 135M model)
    for chunk in lm.stream("Recommend 3 books...", adapter="run-3"):   # adapter=None: the base model
        print(chunk, end="")

Speed (bench/bench_inference.py, bench/results/inference_cpu.txt):
- merged weights: peft's unmerged LoRA adds two small matmuls to every linear layer, ~50% per token; each
  adapter is merged into a full-precision copy of the base (peft merge_and_unload) and kept per adapter name;
- bf16 where the hardware computes it natively (CUDA with bf16; a CPU with AVX512-BF16 or AMX, where oneDNN
  uses it), fp32 otherwise; on CPU with bf16, the linear layers' weights in int8 (training/int8_linear.py):
  a quarter of the fp32 bytes read per token, and single-row bf16 matmuls are slow on CPU;
- continuous batching (training/batching.py): callers asking at once share forward passes, each still
  streaming its own answer (per-row stop tokens, budget, temperature and row processor, e.g. the
  catalog constraint of training/constrained.RowConstraint);
- thread caps (training/threads.py): generation gives cores to a running training run instead of fighting it.
"""
from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

from training import threads
from training.base_model import explain_load_error, load_tokenizer, resolve_base_model, stop_token_ids
from training.batching import BatchEngine, Row, StreamStats

__all__ = ["LocalModel", "StreamStats", "inference_dtype", "utf8_safe_streamer"]

log = logging.getLogger(__name__)


def utf8_safe_streamer(tokenizer, **kw):
    """A TextIteratorStreamer that never ends on a broken character (for code that calls HF generate itself;
    LocalModel decodes with batching.Utf8Text). A byte-level tokenizer spends several tokens on one Hangul
    syllable, and a partial one decodes as U+FFFD; the streamer holds text back until a space mid-answer, but
    flushes everything at the end — so a Korean answer cut at max_new_tokens would end in '�'. The incomplete
    character at the very end is dropped instead."""
    from transformers import TextIteratorStreamer

    class Utf8SafeStreamer(TextIteratorStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            super().on_finalized_text(text.rstrip("\ufffd") if stream_end else text, stream_end)

    return Utf8SafeStreamer(tokenizer, **kw)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: oneDNN runs bf16 matmuls natively (elsewhere bf16 is emulated, slower than fp32)."""
    import torch

    if torch.backends.cpu.get_cpu_capability() in ("AVX512_BF16", "AMX"):  # names of newer torch builds
        return True
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def inference_dtype(device: str):
    """bf16 where the device computes it natively, fp32 otherwise."""
    import torch

    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


@dataclass(eq=False)
class LocalModel:
    base_model: str
    model: object                      # the base model as served (adapter=None); None once released
    tokenizer: object
    adapters: dict[str, str] = field(default_factory=dict)   # name -> adapter directory
    dtype: object = None               # what models are served in; None: the base model's own dtype
    int8: bool = False                 # linear weights in int8 (CPU, bf16 activations): see int8_linear
    _merged: dict[str, object] = field(default_factory=dict)
    _models_lock: threading.Lock = field(default_factory=threading.Lock)
    _engine: BatchEngine | None = None

    @classmethod
    def load(cls, base_model: str, *, dtype=None, int8: bool | None = None) -> "LocalModel":
        """Load the base model (a preset name or a directory) in `dtype`, default: inference_dtype();
        `int8` (default: on CPU in bf16, where the kernel exists): linear weights in int8."""
        import torch

        from training import int8_linear

        tok = load_tokenizer(resolve_base_model(base_model))
        lm = cls(base_model=base_model, model=None, tokenizer=tok, dtype=dtype)
        if lm.dtype is None:
            lm.dtype = inference_dtype("cuda" if torch.cuda.is_available() else "cpu")
        if int8 is None:
            int8 = not torch.cuda.is_available() and lm.dtype == torch.bfloat16 and int8_linear.available()
        lm.int8 = bool(int8)
        # Not on the caller's (often the main) thread: see threads.off_main_thread.
        lm.model = threads.off_main_thread(lm._load_served_base)
        return lm

    def _load_served_base(self):
        import torch

        return self._serve(self._load_base(torch.float32 if self.int8 else self.dtype))

    def _serve(self, model):
        """A loaded (or merged) full-precision model made ready to serve: int8 weights, then the serving dtype."""
        if self.int8:
            from training.int8_linear import quantize_linears

            quantize_linears(model, self.dtype)  # from the fp32 weights, before the rest is cast
        if self.dtype is not None:
            model = model.to(self.dtype)
        return model.eval()

    def _load_base(self, dtype):
        import torch
        from transformers import AutoModelForCausalLM

        path = resolve_base_model(self.base_model)
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        except Exception as e:  # noqa: BLE001
            raise explain_load_error(self.base_model, e) from e
        if torch.cuda.is_available():
            model = model.to("cuda")
        return model.eval()

    # -- models --------------------------------------------------------------------------------------------------

    def add_adapter(self, name: str, path: str) -> None:
        """Merge an adapter into a copy of the base under `name` (now, so a bad adapter fails here)."""
        if name in self._merged:
            return
        self.adapters[name] = path
        try:
            threads.off_main_thread(lambda: self._model_for(name))
        except BaseException:
            self.adapters.pop(name, None)
            raise

    def _model_for(self, adapter: str | None):
        """The model serving `adapter` (None: the base), reloaded or merged if it is not in memory."""
        import torch

        with self._models_lock:
            if adapter is None:
                if self.model is None:  # released for a training run: it reloads on the next request
                    self.model = self._load_served_base()
                return self.model
            if adapter in self._merged:
                return self._merged[adapter]
            if adapter not in self.adapters:
                raise KeyError(f"Adapter '{adapter}' is not loaded.")
            from peft import PeftModel

            # Merged in fp32 (adding a low-rank update to bf16 weights would round it away), then cast.
            t0 = time.perf_counter()
            base = self._load_base(torch.float32)
            merged = self._serve(PeftModel.from_pretrained(base, self.adapters[adapter]).merge_and_unload())
            log.info("Merged adapter %s into %s in %.1f s", adapter, self.base_model, time.perf_counter() - t0)
            self._merged[adapter] = merged
            return merged

    def release(self) -> None:
        """Free memory before a training run starts on the same device; the next request reloads."""
        import torch

        with self._models_lock:
            self.model = None
            self._merged.clear()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- generation ------------------------------------------------------------------------------------------------

    @property
    def engine(self) -> BatchEngine:
        if self._engine is None:
            self._engine = BatchEngine(self._model_for, self.tokenizer)
        return self._engine

    def waiting(self) -> int:
        """Answers queued and not started yet (what a column shows while it waits its turn)."""
        return self._engine.waiting() if self._engine is not None else 0

    def stream(self, prompt: str | list[dict], adapter: str | None = None, *, max_new_tokens: int = 320,
               stats: StreamStats | None = None, temperature: float = 0.0, row_processor=None) -> Iterator[str]:
        """Stream the answer to a prompt (a user message) or a list of chat messages.

        `row_processor`: called as row_processor(generated_ids, scores) before each of this answer's tokens
        (it may mask scores in place), and row_processor.observe(all_generated_ids) once at the end, e.g. a
        training/constrained.RowConstraint. An error it raises ends this answer only and is raised here."""
        if adapter is not None and adapter not in self.adapters:
            raise KeyError(f"Adapter '{adapter}' is not loaded.")
        stats = stats if stats is not None else StreamStats()
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        prompt_ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=True)["input_ids"]
        row = Row(prompt_ids=list(prompt_ids), model_key=adapter, max_new_tokens=max_new_tokens,
                  stop_ids=set(stop_token_ids(self.tokenizer)), temperature=temperature,
                  row_processor=row_processor, stats=stats)
        t0 = time.perf_counter()
        self.engine.submit(row)
        try:
            while True:
                kind, value = row.events.get()
                stats.total_s = time.perf_counter() - t0
                if kind == "error":
                    raise value  # type: ignore[misc]
                if kind == "end":
                    return
                if stats.ttft_s is None:
                    stats.ttft_s = stats.total_s  # from the request, queue wait included: what the user waits
                yield value  # type: ignore[misc]
        finally:
            row.cancelled = True  # the caller stopped reading (or the answer ended): the worker drops the row

    def generate(self, prompt: str | list[dict], adapter: str | None = None, **kw) -> str:
        return "".join(self.stream(prompt, adapter, **kw))

