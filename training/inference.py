"""Local inference: the base model loaded once, fine-tuned adapters attached by name, streamed answers.

    lm = LocalModel.load("smollm2-135m")
    lm.add_adapter("run-3", "data/runs/3/adapter")
    for chunk in lm.stream("Recommend 3 books...", adapter="run-3"):   # adapter=None: the base model
        print(chunk, end="")

One model instance is shared by every request in the app, and peft's active adapter is per model, so
generations take turns: one worker thread runs them in arrival order (FIFO, so no request waits behind
a later one), while each caller reads its own streamer. The UI threads never run `generate` themselves,
and API backends stream alongside a local generation (see training/backends.py).
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from training.base_model import explain_load_error, load_tokenizer, resolve_base_model, stop_token_ids


@dataclass
class StreamStats:
    ttft_s: float | None = None
    total_s: float = 0.0
    tokens: int = 0
    prompt_tokens: int = 0
    truncated: bool = False   # the answer reached max_new_tokens without an end token: cut short


def utf8_safe_streamer(tokenizer, **kw):
    """A TextIteratorStreamer that never ends on a broken character. A byte-level tokenizer spends several
    tokens on one Hangul syllable, and a partial one decodes as U+FFFD; the streamer holds text back until a
    space mid-answer, but flushes everything at the end — so a Korean answer cut at max_new_tokens would end
    in '�'. The incomplete character at the very end is dropped instead."""
    from transformers import TextIteratorStreamer

    class Utf8SafeStreamer(TextIteratorStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False):
            super().on_finalized_text(text.rstrip("\ufffd") if stream_end else text, stream_end)

    return Utf8SafeStreamer(tokenizer, **kw)


@dataclass
class LocalModel:
    base_model: str
    model: object
    tokenizer: object
    adapters: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _jobs: "queue.Queue[Callable[[], None]]" = field(default_factory=queue.Queue)
    _worker: threading.Thread | None = None
    _worker_lock: threading.Lock = field(default_factory=threading.Lock)

    def waiting(self) -> int:
        """Generations queued behind the one running (what a column shows while it waits its turn)."""
        return self._jobs.qsize()

    def _submit(self, job: Callable[[], None]) -> None:
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="local-generation", daemon=True)
                self._worker.start()
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            job()

    @classmethod
    def load(cls, base_model: str) -> "LocalModel":
        import torch
        from transformers import AutoModelForCausalLM

        path = resolve_base_model(base_model)
        tok = load_tokenizer(path)
        dtype = torch.bfloat16 if torch.cuda.is_available() else torch.float32
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
        except Exception as e:  # noqa: BLE001
            raise explain_load_error(base_model, e) from e
        if torch.cuda.is_available():
            model = model.to("cuda")
        model.eval()
        return cls(base_model=base_model, model=model, tokenizer=tok)

    def add_adapter(self, name: str, path: str) -> None:
        from peft import PeftModel

        if name in self.adapters:  # checked before the lock, which a running generation holds
            return
        with self.lock:
            if name in self.adapters:
                return
            if not self.adapters:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name)
            else:
                self.model.load_adapter(path, adapter_name=name)
            self.model.eval()
            self.adapters[name] = path

    def _messages(self, prompt: str) -> list[dict]:
        return [{"role": "user", "content": prompt}]

    def stream(self, prompt: str | list[dict], adapter: str | None = None, *, max_new_tokens: int = 320,
               stats: StreamStats | None = None, temperature: float = 0.0,
               row_processor=None) -> Iterator[str]:
        """Stream the answer to a prompt (a user message) or a list of chat messages. `row_processor`: a
        training/constrained.RowConstraint (catalog-constrained decoding of this answer), or None."""
        import contextlib

        import torch

        if adapter is not None and adapter not in self.adapters:
            raise KeyError(f"Adapter '{adapter}' is not loaded.")
        stats = stats or StreamStats()
        if self.model is None:
            raise RuntimeError("The local model was released (a training run needs the memory); it reloads on "
                               "the next request.")
        messages = self._messages(prompt) if isinstance(prompt, str) else prompt
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                    return_tensors="pt", return_dict=True)
        inputs = {k: v.to(self.model.device) for k, v in inputs.items()}
        stats.prompt_tokens = int(inputs["input_ids"].shape[-1])
        streamer = utf8_safe_streamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        stop_ids = stop_token_ids(self.tokenizer)
        gen_kwargs = dict(**inputs, streamer=streamer, max_new_tokens=max_new_tokens,
                          pad_token_id=self.tokenizer.pad_token_id, eos_token_id=stop_ids)
        processor = None
        if row_processor is not None:
            from training.constrained import ConstrainedLogitsProcessor

            processor = ConstrainedLogitsProcessor([row_processor], prompt_length=stats.prompt_tokens)
            gen_kwargs["logits_processor"] = [processor]
        if temperature > 0:
            gen_kwargs.update(do_sample=True, temperature=temperature, top_p=0.9)
        else:
            gen_kwargs.update(do_sample=False)

        errors: list[BaseException] = []
        finished = threading.Event()  # generate() ends the streamer before it returns: stats come after

        def run():
            try:
                # The lock keeps add_adapter/release from changing the model under a running generation.
                with self.lock:
                    if self.model is None:
                        raise RuntimeError("The local model was released while this request waited; try again.")
                    if adapter is None and self.adapters:
                        ctx = self.model.disable_adapter()
                    else:
                        ctx = contextlib.nullcontext()
                        if adapter is not None:
                            self.model.set_adapter(adapter)
                    with ctx, torch.inference_mode():
                        out = self.model.generate(**gen_kwargs)
                if processor is not None:
                    processor.finish(out)   # the last token never reaches a processor
                new = out[0, stats.prompt_tokens:].tolist()
                # Cut short: the budget was spent and the last token is not an end token.
                stats.truncated = len(new) >= max_new_tokens and bool(new) and new[-1] not in stop_ids
            except BaseException as e:  # surfaced to the caller below
                errors.append(e)
                streamer.end()
            finally:
                finished.set()

        t0 = time.perf_counter()
        # TTFT counts from the request, queue wait included: that is what the user waits for.
        self._submit(run)
        text = ""
        for chunk in streamer:
            if chunk:
                if stats.ttft_s is None:
                    stats.ttft_s = time.perf_counter() - t0
                text += chunk
                stats.total_s = time.perf_counter() - t0
                yield chunk
        finished.wait()
        stats.total_s = time.perf_counter() - t0
        # Re-encoding the whole answer once: per-chunk encoding would over-count merged tokens.
        stats.tokens = len(self.tokenizer.encode(text, add_special_tokens=False))
        if errors:
            raise errors[0]

    def generate(self, prompt: str, adapter: str | None = None, **kw) -> str:
        return "".join(self.stream(prompt, adapter, **kw))

    def release(self) -> None:
        """Free memory before a training run starts on the same device."""
        import gc

        import torch

        with self.lock:
            self.model = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
