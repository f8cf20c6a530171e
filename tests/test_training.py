"""Training on a tiny random model through the real path: create_run -> worker process -> DB metrics ->
PEFT adapter that plain peft can load."""
import os
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import select

from datagen.job_config import JobConfig
from datagen.jobs import create_job, run_job
from db.models import RunMetric, TrainingRun
from training.config import TrainConfig
from training.data import DatasetError, assign_splits
from training.runs import create_run, reconcile_runs, start_run, wait_for_run


@pytest.fixture
def samples_db(catalog_db):
    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=24, seed=1, auto_approve=True)))
    return catalog_db


def _tiny_cfg(model_dir, **kw):
    base = dict(base_model=model_dir, max_steps=4, batch_size=2, max_length=256, eval_fraction=0.2, lora_r=4,
                lora_alpha=8, learning_rate=1e-3)
    base.update(kw)
    return TrainConfig(**base)


def test_qlora_run_in_worker_process_logs_metrics_and_saves_a_peft_adapter(samples_db, tiny_model_dir):
    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir))
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "completed", run.error
    with samples_db.session() as s:
        metrics = list(s.scalars(select(RunMetric).where(RunMetric.run_id == run_id).order_by(RunMetric.step)))
        run = s.get(TrainingRun, run_id)
    assert [m.step for m in metrics] == [1, 2, 3, 4]
    assert all(m.loss is not None and m.learning_rate is not None and m.peak_memory_mb for m in metrics)
    assert any(m.eval_loss is not None for m in metrics)
    assert os.path.exists(os.path.join(run.output_dir, "config.yaml"))
    # the adapter is standard PEFT: loadable without moodshelf
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    assert PeftConfig.from_pretrained(run.adapter_path).r == 4
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run.adapter_path)
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_train_and_eval_splits_never_overlap_and_stay_put(samples_db):
    first = assign_splits(samples_db, eval_fraction=0.25, seed=1)
    assert first.eval and not set(first.train) & set(first.eval)
    again = assign_splits(samples_db, eval_fraction=0.5, seed=2)  # new settings never move a sample
    assert set(again.eval) == set(first.eval)


def test_no_approved_samples_is_a_clear_error(catalog_db):
    with pytest.raises(DatasetError, match="No approved samples"):
        create_run(catalog_db, TrainConfig())


def test_empty_eval_split_is_a_clear_error(catalog_db):
    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=1, auto_approve=True)))
    with pytest.raises(DatasetError):
        create_run(catalog_db, TrainConfig(eval_fraction=0.01))


def test_unknown_target_module_fails_the_run_with_the_available_names(samples_db, tiny_model_dir):
    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir, target_modules="query_key_value"))
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "failed"
    assert "query_key_value" in run.error and "q_proj" in run.error


def test_dead_worker_is_marked_failed_with_its_log_tail(samples_db, tiny_model_dir):
    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir))
    log = os.path.join(os.environ["MOODSHELF_HOME"], "runs", str(run_id), "train.log")
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('worker started', flush=True); time.sleep(60)"],
                            stdout=open(log, "w"), start_new_session=True)
    deadline = time.time() + 20
    while "worker started" not in open(log).read() and time.time() < deadline:
        time.sleep(0.1)
    with samples_db.begin() as s:
        run = s.get(TrainingRun, run_id)
        run.pid, run.status = proc.pid, "running"
    assert reconcile_runs(samples_db) == []
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert reconcile_runs(samples_db) == [run_id]
    with samples_db.session() as s:
        run = s.get(TrainingRun, run_id)
    assert run.status == "failed" and "worker started" in run.error


def test_stopped_run_saves_its_adapter_and_resumes_from_its_checkpoint(samples_db, tiny_model_dir):
    from training.runs import request_stop, resume_run

    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir, max_steps=8, save_steps=100, eval_fraction=0.0))
    request_stop(samples_db, run_id)  # stop at the first step: "Stop & save"
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "stopped" and os.path.exists(os.path.join(run.adapter_path, "adapter_config.json"))
    ckpts = [d for d in os.listdir(os.path.join(run.output_dir, "checkpoints")) if d.startswith("checkpoint-")]
    assert ckpts == ["checkpoint-1"]
    resume_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "completed", run.error
    assert "resuming from" in open(run.log_path).read()
    with samples_db.session() as s:
        steps = list(s.scalars(select(RunMetric.step).where(RunMetric.run_id == run_id).order_by(RunMetric.step)))
    assert steps == list(range(1, 9))  # continued at step 2, no step logged twice


def test_merged_export_matches_the_adapter_and_loads_without_peft(samples_db, tiny_model_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from training.export import merge_run

    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir, quantization="none", max_steps=2))
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "completed", run.error
    out = merge_run(samples_db, run_id)
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), run.adapter_path).eval()
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, tuned(ids).logits, atol=1e-4)
        assert not torch.allclose(merged(ids).logits, base(ids).logits, atol=1e-4)  # the update is really in
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_sweep_runs_each_setting_and_compares_them(samples_db, tiny_model_dir, capsys):
    from app.cli import main
    from training.sweep import sweep_table

    assert main(["sweep", "--base-model", tiny_model_dir, "--max-steps", "2", "--batch-size", "2",
                 "--max-length", "256", "--grid", "lora_r=2,16", "--name", "rank"]) == 0
    rows = sweep_table(samples_db, "rank")
    assert [r["setting"] for r in rows] == ["lora_r=2", "lora_r=16"]
    assert all(r["status"] == "completed" and r["train_loss"] and r["peak_memory_mb"] for r in rows)
    assert rows[1]["trainable_params"] == 8 * rows[0]["trainable_params"]  # LoRA params scale with r
    assert rows[1]["adapter_mb"] > rows[0]["adapter_mb"]
    assert "trainable_params" in capsys.readouterr().out


def test_bad_sweep_grid_is_refused_before_any_run(samples_db, capsys):
    from app.cli import main

    assert main(["sweep", "--grid", "lora_rank=8,16", "--grid", "lora_r=0,8"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'lora_rank'" in err
    with samples_db.session() as s:
        assert s.scalars(select(TrainingRun)).first() is None


def test_two_process_cpu_ddp_through_accelerate_launch(samples_db, tiny_model_dir):
    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir, num_processes=2, accelerate_config="cpu_ddp",
                                               max_steps=3))
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    log = open(run.log_path).read()
    assert run.status == "completed", run.error or log[-3000:]
    with samples_db.session() as s:
        steps = list(s.scalars(select(RunMetric.step).where(RunMetric.run_id == run_id).order_by(RunMetric.step)))
    assert steps == [1, 2, 3]  # one writer, not two
    assert "rank 0 of world_size=2" in log and "rank 1 of world_size=2" in log
    from peft import PeftConfig

    assert PeftConfig.from_pretrained(run.adapter_path).r == 4


def test_bad_distributed_settings_are_refused():
    from training.config import ConfigError

    with pytest.raises(ConfigError) as e:
        TrainConfig(num_processes=0, accelerate_config="nope").validate()
    assert "num_processes must be >= 1" in str(e.value) and "'nope' is neither a shipped config" in str(e.value)
    with pytest.raises(ConfigError, match="ZeRO-3 cannot shard"):
        TrainConfig(accelerate_config="deepspeed_zero3").validate()


def test_max_length_shorter_than_the_prompt_fails_with_a_clear_message(samples_db, tiny_model_dir):
    run_id = create_run(samples_db, _tiny_cfg(tiny_model_dir, max_length=40))
    start_run(samples_db, run_id)
    run = wait_for_run(samples_db, run_id, poll_s=0.5)
    assert run.status == "failed"
    assert "max_length 40 is shorter than the prompt" in run.error and "raise max_length to at least" in run.error
