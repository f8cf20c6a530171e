"""Merged export for serving: the LoRA adapter folded into a full-precision copy of its base model.

    moodshelf merge 3                 # -> data/runs/3/merged (a plain transformers checkpoint)

The adapter was trained on a 4-bit base, but merging into 4-bit weights would round the update away, so
the base is loaded in fp32, on a GPU too (a bf16 base would round small LoRA updates and export a bf16
checkpoint; the H100 run of tests/test_training.py caught that), and merge_and_unload() adds the LoRA
product to it.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from db.engine import Database
from db.models import TrainingRun
from training.base_model import load_tokenizer, resolve_base_model


def merge_run(db: Database, run_id: int, out_dir: str | Path | None = None) -> Path:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    with db.session() as s:
        run = s.get(TrainingRun, run_id)
    if run is None or not run.adapter_path:
        raise ValueError(f"Run {run_id} has no adapter to merge (is it finished?).")
    out = Path(out_dir) if out_dir else Path(run.output_dir) / "merged"
    base_path = resolve_base_model(run.base_model)
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, run.adapter_path).merge_and_unload()
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    merged.save_pretrained(tmp, safe_serialization=True)
    load_tokenizer(run.adapter_path).save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out
