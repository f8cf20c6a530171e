"""The local generation engine (training/inference.py, training/batching.py) on the tiny random model: merged
adapters answer as peft does, batched rows as rows alone, each caller streams its own answer with its own stop
tokens, budget and row processor, and one row's failure stays its own."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import pytest
import torch

from training import int8_linear
from training.base_model import stop_token_ids
from training.inference import LocalModel, StreamStats, cpu_has_native_bf16, inference_dtype

PROMPTS = ["Recommend 3 books for a tired nurse looking for calm.", "A novel about the sea, please.",
           "불안한 직장인에게 위로가 되는 책 3권을 추천해줘.", "Books like The Little Prince?"]


@pytest.fixture(scope="module")
def lm(tiny_model_dir):
    return LocalModel.load(tiny_model_dir, dtype=torch.float32)


@pytest.fixture(scope="module")
def adapter_dir(tiny_model_dir, tmp_path_factory):
    """A LoRA on every linear layer with random non-zero weights (what training/config.py's defaults target)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("lora")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                           LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(path)
    return str(path)


class ForceTokens:
    """A row processor that makes the model write `tokens`, whatever it wanted (a scripted answer)."""

    def __init__(self, tokens: list[int]):
        self.tokens, self.calls, self.observed = tokens, [], None

    def __call__(self, generated, scores):
        self.calls.append(len(generated))
        scores.fill_(float("-inf"))
        scores[self.tokens[len(generated)]] = 0.0
        return scores

    def observe(self, generated):
        self.observed = generated.tolist()


def collect(lm, prompt, **kw) -> tuple[list[str], StreamStats]:
    stats, deltas = StreamStats(), []
    for delta in lm.stream(prompt, stats=stats, **kw):
        if not deltas:
            stats.first_delta_at = time.perf_counter()  # when this caller saw text, to compare callers
        deltas.append(delta)
    return deltas, stats


@contextmanager
def held_worker(lm, queued: int):
    """Hold the worker at its first request's model, so the next `queued` requests wait and then join the batch
    at its first step: batching without relying on timing."""
    lm._models_lock.acquire()
    try:
        yield
        deadline = time.monotonic() + 30
        while lm.waiting() < queued and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lm.waiting() == queued
    finally:
        lm._models_lock.release()


def run_together(lm, calls: list[dict]) -> list[tuple[list[str], StreamStats] | BaseException]:
    """Start every call on its own thread, in order, while the worker is held; return what each caller got."""
    results: list = [None] * len(calls)

    def call(i):
        try:
            results[i] = collect(lm, **calls[i])
        except BaseException as e:  # noqa: BLE001
            results[i] = e

    threads = []
    with held_worker(lm, queued=len(calls) - 1):
        for i in range(len(calls)):
            threads.append(threading.Thread(target=call, args=(i,)))
            threads[-1].start()
            deadline = time.monotonic() + 30  # arrival order = call order; the first is the worker's
            while (lm.waiting(), lm.engine.running()) != (i, 1) and time.monotonic() < deadline:
                time.sleep(0.005)
    for t in threads:
        t.join(60)
    return results


def test_merged_adapter_answers_as_the_unmerged_peft_model(lm, adapter_dir, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir).eval()
    lm.add_adapter("lora", adapter_dir)
    for prompt in PROMPTS[:2]:
        inputs = lm.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                                  return_tensors="pt", return_dict=True)
        with torch.inference_mode():
            out = peft_model.generate(**inputs, max_new_tokens=16, do_sample=False, eos_token_id=stop_token_ids(lm.tokenizer),
                                      pad_token_id=lm.tokenizer.pad_token_id)
        expected = lm.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        assert lm.generate(prompt, adapter="lora", max_new_tokens=16) == expected
    assert lm.generate(PROMPTS[0], adapter="lora", max_new_tokens=16) != lm.generate(PROMPTS[0], max_new_tokens=16)
    assert not any(type(m).__name__.startswith("Lora") for m in lm._merged["lora"].modules())  # merged, no peft


def test_batched_rows_stream_the_answers_they_get_alone(lm):
    budgets = [5, 12, 8, 20]  # rows leave the batch at different steps
    alone = [lm.generate(p, max_new_tokens=n) for p, n in zip(PROMPTS, budgets)]
    results = run_together(lm, [dict(prompt=p, max_new_tokens=n) for p, n in zip(PROMPTS, budgets)])
    for (deltas, stats), expected, n in zip(results, alone, budgets):
        assert "".join(deltas) == expected
        assert len(deltas) > 1 and all("\ufffd" not in d for d in deltas)  # streamed piece by piece, whole chars
        assert stats.batch_size == 4 and stats.truncated and stats.tokens == n
        assert stats.ttft_s is not None and stats.total_s >= stats.ttft_s
    assert [stats.ahead for _, stats in results] == [0, 1, 2, 3]
    assert lm.waiting() == 0


def test_each_row_ends_at_its_own_stop_token_or_budget(lm):
    tok = lm.tokenizer
    words = tok.encode(" quiet river garden letters harbor island lantern library", add_special_tokens=False)
    stop = stop_token_ids(tok)[-1]
    stopping, running = ForceTokens(words[:3] + [stop]), ForceTokens(words)
    results = run_together(lm, [dict(prompt=PROMPTS[0], max_new_tokens=20, row_processor=stopping),
                                dict(prompt=PROMPTS[1], max_new_tokens=5, row_processor=running)])
    assert not any(isinstance(r, BaseException) for r in results), results
    (first, s1), (second, s2) = results
    assert not isinstance(results[0], BaseException), repr(results[0])
    assert "".join(first) == tok.decode(words[:3]) and not s1.truncated and s1.tokens == 3
    assert "".join(second) == tok.decode(words[:5]) and s2.truncated and s2.tokens == 5
    # __call__ before every token but the last; observe() once with the whole answer
    assert stopping.calls == [0, 1, 2, 3] and stopping.observed == words[:3] + [stop]
    assert running.calls == [0, 1, 2, 3, 4] and running.observed == words[:5]


def test_korean_answer_cut_inside_a_character_never_streams_a_broken_one(lm):
    tok = lm.tokenizer
    ids = tok.encode("1. 불편한 편의점 - 김호연\n - 추천 이유: 따뜻한 위로", add_special_tokens=False)
    cut = next(k for k in range(1, len(ids)) if tok.decode(ids[:k]).endswith("\ufffd"))  # mid-syllable
    deltas, stats = collect(lm, "추천해 줘", max_new_tokens=cut, row_processor=ForceTokens(ids))
    assert "".join(deltas) == tok.decode(ids[:cut]).rstrip("\ufffd") and stats.truncated
    assert all("\ufffd" not in d for d in deltas)


def test_constrained_row_names_only_catalog_books_beside_a_free_row(lm, catalog_db):
    from datagen.validation import parse_books
    from training.constrained import RowConstraint, TitleTrie, catalog_entries

    tok = lm.tokenizer
    lines = dict(catalog_entries(catalog_db, "en"))
    trie = TitleTrie.build(tok, lines.items())
    newline = tok.encode("\n", add_special_tokens=False)[0]

    class Nudged(RowConstraint):
        # A random model rarely ends a line; a nudge towards line breaks lets it reach all three books.
        def __call__(self, generated, scores):
            scores[newline] += 9.0
            return super().__call__(generated, scores)

    row = Nudged(trie, tok, n_books=3, eos_token_id=stop_token_ids(tok))
    free_alone = lm.generate(PROMPTS[1], max_new_tokens=40)
    results = run_together(lm, [dict(prompt=PROMPTS[0], max_new_tokens=300, row_processor=row),
                                dict(prompt=PROMPTS[1], max_new_tokens=40)])
    (constrained, s1), (free, s2) = results
    text = "".join(constrained)
    books = parse_books(text, "en")
    assert len(books) == 3 and len(row.named_books) == 3 and not row.cut_short, text
    assert [f"{b.title} - {b.author}" for b in books] == [lines[i] for i in row.named_books]
    assert row.state == "ended" and not s1.truncated
    assert "".join(free) == free_alone and s2.batch_size == 2


def test_a_failing_row_processor_fails_its_own_answer_only(lm):
    class Broken:
        def __call__(self, generated, scores):
            if len(generated) == 3:
                raise ValueError("processor broke")
            return scores

    alone = lm.generate(PROMPTS[1], max_new_tokens=10)
    results = run_together(lm, [dict(prompt=PROMPTS[0], max_new_tokens=10, row_processor=Broken()),
                                dict(prompt=PROMPTS[1], max_new_tokens=10)])
    assert isinstance(results[0], ValueError) and "processor broke" in str(results[0])
    assert "".join(results[1][0]) == alone


def test_adapters_take_turns_in_arrival_order(lm, adapter_dir):
    lm.add_adapter("lora", adapter_dir)
    results = run_together(lm, [dict(prompt=PROMPTS[0], max_new_tokens=6),
                                dict(prompt=PROMPTS[1], max_new_tokens=6, adapter="lora"),
                                dict(prompt=PROMPTS[2], max_new_tokens=6)])
    # The third (base) request must not overtake the adapter's by joining the running base batch.
    assert [stats.batch_size for _, stats in results] == [1, 1, 1]
    assert results[0][1].first_delta_at < results[1][1].first_delta_at < results[2][1].first_delta_at
    assert "".join(results[1][0]) == lm.generate(PROMPTS[1], max_new_tokens=6, adapter="lora")


def test_a_caller_that_stops_reading_frees_its_row(lm):
    stream = lm.stream(PROMPTS[0], max_new_tokens=200)
    next(stream)
    stream.close()  # the page was closed: the worker drops the row at its next step
    assert lm.generate(PROMPTS[1], max_new_tokens=5)
    deadline = time.monotonic() + 10
    while lm.engine._active and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not lm.engine._active and lm.waiting() == 0


def test_released_model_reloads_on_the_next_request(tiny_model_dir, adapter_dir):
    lm = LocalModel.load(tiny_model_dir, dtype=torch.float32)
    lm.add_adapter("lora", adapter_dir)
    before = lm.generate(PROMPTS[0], max_new_tokens=8), lm.generate(PROMPTS[0], adapter="lora", max_new_tokens=8)
    lm.release()
    assert lm.model is None and not lm._merged
    after = lm.generate(PROMPTS[0], max_new_tokens=8), lm.generate(PROMPTS[0], adapter="lora", max_new_tokens=8)
    assert after == before and lm.model is not None


def test_a_model_that_cannot_load_says_so_to_every_waiting_caller(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    lm = LocalModel.load(str(copy), dtype=torch.float32)
    lm.release()
    shutil.rmtree(copy)
    with pytest.raises(Exception) as err:
        lm.generate(PROMPTS[0], max_new_tokens=4)
    assert str(copy) in str(err.value) or "model" in str(err.value).lower()
    with pytest.raises(KeyError, match="not loaded"):
        lm.generate(PROMPTS[0], adapter="nope")


def test_bf16_logits_stay_close_to_fp32(tiny_model_dir, lm):
    from transformers import AutoModelForCausalLM

    fp32 = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    bf16 = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    ids = lm.tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)["input_ids"]
    with torch.inference_mode():
        a, b = fp32(ids).logits.float(), bf16(ids).logits.float()
    assert (a - b).abs().max() < 0.05 * a.abs().max()
    assert (a.softmax(-1) - b.softmax(-1)).abs().sum(-1).max() < 0.1  # the distributions, not only the scale
    assert inference_dtype("cpu") == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)


@pytest.mark.skipif(not int8_linear.available(), reason="this torch has no weight-only int8 CPU kernel")
def test_int8_weights_keep_each_layer_close_and_skip_widths_the_kernel_cannot_take():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 30, bias=False),
                                torch.nn.Linear(30, 8))  # 30 inputs: not a multiple of 16, kept as it is
    x = torch.randn(5, 64)
    with torch.inference_mode():
        want = model(x)
        assert int8_linear.quantize_linears(model, torch.bfloat16) == 2
        assert [type(m).__name__ for m in model] == ["Int8Linear", "ReLU", "Int8Linear", "Linear"]
        got = model(x)
    assert got.dtype == x.dtype
    assert (got - want).abs().max() < 0.03 * want.abs().max()


@pytest.mark.skipif(not int8_linear.available(), reason="this torch has no weight-only int8 CPU kernel")
def test_int8_served_model_answers_like_the_full_precision_one(tiny_model_dir, lm):
    q = LocalModel.load(tiny_model_dir, dtype=torch.bfloat16, int8=True)
    assert q.int8 and any(type(m).__name__ == "Int8Linear" for m in q.model.modules())
    ids = lm.tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)["input_ids"]
    with torch.inference_mode():
        a, b = lm.model(ids).logits.float(), q.model(ids).logits.float()
    assert (a.softmax(-1) - b.softmax(-1)).abs().sum(-1).max() < 0.15
    assert q.generate(PROMPTS[0], max_new_tokens=6)  # the served path writes text


def test_thread_split_gives_training_most_cores_and_generation_the_rest(monkeypatch):
    from workers.process import worker_env
    from training import threads

    assert threads.generation_threads(False, n_cores=2) == 2 and threads.generation_threads(True, n_cores=2) == 1
    assert threads.training_threads(2, sharing=True) == 1 and threads.training_threads(1, sharing=True) == 1
    assert threads.generation_threads(True, n_cores=8) + threads.training_threads(8, sharing=True) == 8
    # Where nothing generates (the CLI, the demo), a run takes every core; the app's runs inherit the sharing.
    assert threads.training_threads(2, sharing=False) == 2
    monkeypatch.setenv(threads.SHARE_ENV, "0")  # restored (unset) after the test
    assert threads.training_threads(2) == 2
    threads.share_cores()
    assert threads.training_threads(2) == 1
    assert worker_env("sqlite://")[threads.SHARE_ENV] == "1"



def test_models_load_and_merge_off_the_callers_thread(tiny_model_dir, adapter_dir, monkeypatch):
    """The caller's (often the main) thread never runs the loading: a second live thread that has used torch's
    OpenMP pool would slow the generation worker ~3x (training/threads.off_main_thread)."""
    from training import threads

    seen = []
    real = LocalModel._load_base
    monkeypatch.setattr(LocalModel, "_load_base", lambda self, dtype: seen.append(threading.current_thread()) or
                        real(self, dtype))
    m = LocalModel.load(tiny_model_dir, dtype=torch.float32)
    m.add_adapter("a", adapter_dir)
    assert len(seen) == 2 and threading.current_thread() not in seen
    assert threads.off_main_thread(lambda: 7) == 7
    with pytest.raises(ValueError, match="bad"):
        threads.off_main_thread(lambda: (_ for _ in ()).throw(ValueError("bad")))

def test_training_watch_sees_a_running_run(sqlite_db):
    from db.models import TrainingRun
    from training.threads import TrainingWatch

    watch = TrainingWatch(sqlite_db, every_s=0.0)
    assert not watch()
    with sqlite_db.begin() as s:
        s.add(TrainingRun(name="r", status="running", base_model="x"))
    assert watch()


def test_a_queued_answer_knows_its_place_and_about_when_it_starts(lm):
    from training.batching import BatchEngine, Row

    engine = BatchEngine(model_for=lambda key: None, tokenizer=lm.tokenizer)

    def row(key, generated=0, budget=200):
        r = Row(prompt_ids=[1], model_key=key, max_new_tokens=budget, stop_ids={2})
        r.generated = [5] * generated
        return r

    writing = row(None, generated=40)
    lora_1, base, lora_2 = row("lora"), row(None), row("lora")
    engine._active, engine._queue = [writing], __import__("collections").deque([lora_1, base, lora_2])
    engine._step_s = 0.1
    engine._estimate()  # no answer has finished: each row's budget (200 tokens) stands in, as an upper bound
    assert writing.stats.left_s == pytest.approx(16.0) and writing.stats.estimate_is_bound
    assert lora_1.stats.wait_s == pytest.approx(16.0) and base.stats.wait_s == pytest.approx(36.0)

    engine._answer_tokens = 100.0  # answers turn out about 100 tokens long
    engine._estimate()
    assert writing.stats.left_s == pytest.approx(6.0) and not writing.stats.estimate_is_bound
    assert [r.stats.ahead_now for r in (lora_1, base, lora_2)] == [1, 2, 3]
    # lora_2 starts with lora_1 (one model's requests are decoded together); base waits for the lora turn too.
    assert [r.stats.wait_s for r in (lora_1, base, lora_2)] == pytest.approx([6.0, 16.0, 6.0])


def test_waiting_answers_see_their_place_in_the_queue_live(lm):
    lm.engine._answer_tokens = None  # the module's model has answered before: measure these answers only
    stats = [StreamStats() for _ in range(3)]
    readers = []
    with held_worker(lm, queued=2):  # the first request holds the worker (its model), the others queue
        for i, s in enumerate(stats):
            readers.append(threading.Thread(target=lambda s=s, i=i: list(lm.stream(PROMPTS[i], max_new_tokens=4,
                                                                                     stats=s)), daemon=True))
            readers[-1].start()
            deadline = time.monotonic() + 30
            while (lm.waiting(), lm.engine.running()) != (i, 1) and time.monotonic() < deadline:
                time.sleep(0.005)
        assert [s.ahead_now for s in stats] == [0, 1, 2] and not any(s.writing for s in stats)
    for reader in readers:
        reader.join(60)
    assert all(s.writing and s.ahead_now == 0 for s in stats)
    assert lm.engine._step_s is not None and 1 <= lm.engine._answer_tokens <= 4
