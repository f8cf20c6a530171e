"""Chat backends against the fake API servers (official SDKs, streaming) and the tiny local model: deltas
arrive in order, usage and cost are filled, failures become one line with no key, labels round-trip."""
import pytest

from fakes.fixtures import fake_anthropic, fake_openai  # noqa: F401
from training.backends import BackendError, BackendSpec, make_backend

KEY = "sk-test-abcdef123456"
MESSAGES = [{"role": "user", "content": "Recommend 3 books for a tired nurse looking for calm."}]


@pytest.mark.parametrize("label", ["base", "run:3 (tiny)", "run:12", "openai:gpt-4.1-mini",
                                   "anthropic:claude-haiku-4-5",
                                   "openai-compatible:my-lora@http://127.0.0.1:8000/v1"])
def test_label_round_trips(label):
    assert BackendSpec.from_label(label).label == label


@pytest.mark.parametrize("old, new", [("base model", "base"), ("run #3: tiny", "run:3 (tiny)"), ("run #12", "run:12"),
                                      ("openai: gpt-4.1-mini", "openai:gpt-4.1-mini"),
                                      ("openai-compatible: m @ http://h:8000/v1", "openai-compatible:m@http://h:8000/v1"),
                                      ("openai_compatible:m@http://h:8000/v1", "openai-compatible:m@http://h:8000/v1")])
def test_names_stored_in_the_older_spellings_still_load(old, new):
    assert BackendSpec.from_label(old) == BackendSpec.from_label(new)
    assert BackendSpec.from_label(old).label == new


def test_unknown_label_and_compatible_without_url_are_refused():
    with pytest.raises(BackendError, match="Unknown backend"):
        BackendSpec.from_label("gpt-9")
    with pytest.raises(BackendError, match="base URL"):
        BackendSpec(kind="openai-compatible", model="x")


def test_openai_backend_streams_with_usage_and_cost(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    backend = make_backend(BackendSpec(kind="openai", model="gpt-4.1-mini"), system_prompt="Answer in the format.")
    deltas = list(backend.stream(MESSAGES, max_new_tokens=300))
    assert len(deltas) > 10  # streamed, not one block
    text = "".join(deltas)
    assert text.startswith("1. ") and "Why this book:" in text
    u = backend.usage
    assert u.completion_tokens > 0 and u.prompt_tokens > 0 and u.ttft_s is not None and u.total_s >= u.ttft_s
    assert u.cost_usd == pytest.approx((u.prompt_tokens * 0.40 + u.completion_tokens * 1.60) / 1e6)
    body = fake_openai.generation_requests[-1].body
    assert body["stream"] is True and body["max_tokens"] == 300
    assert body["messages"][0] == {"role": "system", "content": "Answer in the format."}


def test_anthropic_backend_streams_with_usage_and_cost(fake_anthropic, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    backend = make_backend(BackendSpec.from_label("anthropic:claude-haiku-4-5"), system_prompt="Be brief.")
    text = backend.complete(MESSAGES, max_new_tokens=200)
    assert text.startswith("1. ") and text.count("How it may help:") == 3
    u = backend.usage
    assert u.completion_tokens > 0 and u.cost_usd == pytest.approx(
        (u.prompt_tokens * 1.0 + u.completion_tokens * 5.0) / 1e6)
    body = fake_anthropic.generation_requests[-1].body
    assert body["stream"] is True and body["system"] == "Be brief." and body["max_tokens"] == 200


def test_compatible_backend_reaches_a_url_without_key_and_has_no_price(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_KEY", raising=False)
    spec = BackendSpec.from_label(f"openai-compatible:moodshelf-run-3@{fake_openai.base_url}")
    backend = make_backend(spec)
    assert "Why this book" in backend.complete(MESSAGES)
    assert fake_openai.generation_requests[-1].body["model"] == "moodshelf-run-3"  # a vLLM LoRA module name
    assert backend.usage.cost_usd is None and backend.usage.completion_tokens > 0


def test_missing_key_says_what_to_set(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        make_backend(BackendSpec(kind="openai", model="gpt-4.1-mini"))
    with pytest.raises(BackendError, match="ANTHROPIC_API_KEY"):
        make_backend(BackendSpec(kind="anthropic", model="claude-haiku-4-5"))


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_failure_mid_stream_is_one_line_after_the_first_deltas(vendor, fake_openai, fake_anthropic, monkeypatch):
    server = fake_openai if vendor == "openai" else fake_anthropic
    monkeypatch.setenv(f"{vendor.upper()}_API_KEY", KEY)
    monkeypatch.setenv(f"{vendor.upper()}_BASE_URL", server.base_url)
    server.add_fault(fail_after=4)
    backend = make_backend(BackendSpec(kind=vendor, model="gpt-4o-mini" if vendor == "openai" else "claude-haiku-4-5"))
    got = []
    with pytest.raises(BackendError) as e:
        for d in backend.stream(MESSAGES):
            got.append(d)
    assert len(got) == 4
    assert "\n" not in str(e.value) and str(e.value).startswith(f"{vendor}:")


def test_rejected_key_is_redacted(fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    fake_openai.add_fault(status=401, message=f"Incorrect API key provided: {KEY}")
    with pytest.raises(BackendError) as e:
        make_backend(BackendSpec(kind="openai", model="gpt-4o-mini")).complete(MESSAGES)
    assert "authentication failed" in str(e.value) and "OPENAI_API_KEY" in str(e.value)
    assert KEY not in str(e.value) and "abcdef123456" not in str(e.value)


def test_unreachable_server_is_one_clear_line(free_port):
    spec = BackendSpec(kind="openai-compatible", model="m", base_url=f"http://127.0.0.1:{free_port}/v1")
    with pytest.raises(BackendError, match=r"cannot reach http://127\.0\.0\.1"):
        make_backend(spec).complete(MESSAGES)


def test_empty_request_is_refused(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # refused before any request leaves: no server needed
    with pytest.raises(BackendError, match="empty"):
        make_backend(BackendSpec(kind="openai", model="gpt-4o-mini")).complete([{"role": "user", "content": " "}])


def test_local_backend_streams_base_and_adapter_and_refuses_other_bases(tiny_model_dir, sqlite_db, adapter_run):
    from db.models import TrainingRun
    from training.inference import LocalModel

    with sqlite_db.begin() as s:
        ok = s.get(TrainingRun, adapter_run)
        other = TrainingRun(name="other", status="completed", base_model="smollm2-135m", adapter_path=ok.adapter_path)
        s.add(other)
        s.flush()
        other_id = other.id
    lm = LocalModel.load(tiny_model_dir)
    base = make_backend(BackendSpec(kind="local"), local_model=lm, system_prompt="ignored for local models")
    base_text = base.complete(MESSAGES, max_new_tokens=12)
    assert base.usage.completion_tokens > 0 and base.usage.prompt_tokens > 10 and base.usage.cost_usd == 0.0
    tuned = make_backend(BackendSpec(kind="local", adapter_run=adapter_run), local_model=lm, db=sqlite_db)
    assert tuned.complete(MESSAGES, max_new_tokens=12) != base_text  # the adapter changes the answer
    assert base.complete(MESSAGES, max_new_tokens=12) == base_text   # and the base is still the base
    with pytest.raises(BackendError, match="does not fit"):
        make_backend(BackendSpec(kind="local", adapter_run=other_id), local_model=lm, db=sqlite_db)


def test_local_columns_share_the_generation_worker_while_api_columns_stream(tiny_model_dir, fake_openai,
                                                                           monkeypatch):
    """Two local columns and one API column at once: the API column is not held up by the local ones, and the
    local ones are decoded by the shared model's one worker (batched together when they overlap), each getting
    the answer it would get alone."""
    import torch

    from training.columns import stream_columns
    from training.inference import LocalModel

    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    lm = LocalModel.load(tiny_model_dir, dtype=torch.float32)  # fp32: batched and alone agree to the bit
    alone = lm.generate([m for m in MESSAGES if m["role"] != "system"], max_new_tokens=40)
    backends = [make_backend(BackendSpec(kind="local"), local_model=lm),
                make_backend(BackendSpec(kind="local"), local_model=lm),
                make_backend(BackendSpec(kind="openai", model="gpt-4o-mini"))]
    fake_openai.add_fault(fail_after=3)  # and a failing column does not stop the others
    events = list(stream_columns(backends, MESSAGES, max_new_tokens=40))
    done = {e.column: e.error for e in events if e.done}
    assert sorted(done) == [0, 1, 2]
    assert done[0] is None and done[1] is None and "openai" in done[2]
    texts = ["".join(e.delta for e in events if e.column == c) for c in (0, 1)]
    assert texts == [alone, alone]
    assert backends[0].usage.completion_tokens > 0 and backends[1].usage.completion_tokens > 0


def test_api_columns_stream_in_parallel(fake_openai, fake_anthropic, monkeypatch):
    """Two slow API columns together take about as long as one, not the sum (measured, sequential too)."""
    import time

    from training.columns import stream_columns

    for vendor, server in (("OPENAI", fake_openai), ("ANTHROPIC", fake_anthropic)):
        monkeypatch.setenv(f"{vendor}_API_KEY", KEY)
        monkeypatch.setenv(f"{vendor}_BASE_URL", server.base_url)
        server.stream_delay = 0.01  # ~120 deltas: ~1.2 s per answer
    specs = [BackendSpec(kind="openai", model="gpt-4o-mini"), BackendSpec(kind="anthropic", model="claude-haiku-4-5")]
    t0 = time.perf_counter()
    for spec in specs:
        make_backend(spec).complete(MESSAGES)
    sequential = time.perf_counter() - t0
    backends = [make_backend(s) for s in specs]
    t0 = time.perf_counter()
    events = list(stream_columns(backends, MESSAGES))
    parallel = time.perf_counter() - t0
    print(f"two API columns: sequential {sequential:.2f} s, parallel {parallel:.2f} s")
    assert all(e.error is None for e in events if e.done)
    assert parallel < 0.75 * sequential
    firsts = [next(i for i, e in enumerate(events) if e.column == c) for c in (0, 1)]
    lasts = [max(i for i, e in enumerate(events) if e.column == c and e.delta) for c in (0, 1)]
    assert max(firsts) < min(lasts)  # the columns' deltas interleave
