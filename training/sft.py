"""The training worker: QLoRA SFT of one TrainingRun with TRL + peft + bitsandbytes, state kept in the DB.

    python -m training.sft --run-id 3        # what `moodshelf train` and the Train button launch

It never runs inside the web server: the supervisor (workers/supervisor.py) launches, owns, stops and
reconciles it as the TRAINING kind. Metrics go to run_metrics at every logging step; the adapter is saved in
standard PEFT format (PeftModel.from_pretrained loads it without moodshelf).
"""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from db.engine import Database
from db.models import RunMetric, TrainingRun
from training.config import TrainConfig, resolve_compute_dtype
from training.threads import training_threads
from workers import supervisor
from workers.supervisor import WorkerKind


def _user_error(e: BaseException) -> str:
    import torch

    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return ("Out of memory. Lower batch_size or max_length, turn on gradient_checkpointing, "
                "or use 4-bit quantization (nf4).")
    return f"{type(e).__name__}: {e}"


def _command(runs: list[TrainingRun]) -> tuple[str, list[str]]:
    (run,) = runs
    cfg = TrainConfig.from_dict(run.config)
    if cfg.num_processes > 1:
        # One launcher, N ranks: accelerate starts them; the launcher's process group is what a stop ends.
        return "accelerate.commands.launch", ["--config_file", str(cfg.accelerate_config_path()), "--num_processes",
                                              str(cfg.num_processes), "-m", "training.sft", "--run-id", str(run.id)]
    return "training.sft", ["--run-id", str(run.id)]


TRAINING = WorkerKind(label="Training run", model=TrainingRun, module="training.sft", id_flag="--run-id",
                      dead_message=lambda run: run.error or "The training process exited without reporting.",
                      describe_error=_user_error, command=_command, launched_by_owner=True)


def pick_dtype(cfg: TrainConfig):
    import torch

    return getattr(torch, resolve_compute_dtype(cfg.compute_dtype, "cuda" if torch.cuda.is_available() else "cpu"))


def quantization_config(cfg: TrainConfig, dtype):
    from transformers import BitsAndBytesConfig

    if cfg.quantization == "nf4":
        extra = {}
        if cfg.num_processes > 1 and cfg.accelerate_config == "fsdp_qlora":
            extra["bnb_4bit_quant_storage"] = dtype  # FSDP shards tensors of one dtype: store 4-bit packed as it
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                  bnb_4bit_use_double_quant=cfg.double_quant, bnb_4bit_compute_dtype=dtype, **extra)
    if cfg.quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def linear_module_names(model) -> set[str]:
    import torch

    names = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(name.rsplit(".", 1)[-1])
    return names


def load_model_for_training(cfg: TrainConfig, model_path: str):
    import torch
    from peft import LoraConfig, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    from training.base_model import explain_load_error

    dtype = pick_dtype(cfg)
    qconf = quantization_config(cfg, dtype)
    kwargs = {"dtype": dtype, "attn_implementation": cfg.attn_implementation}
    if qconf is not None:
        kwargs["quantization_config"] = qconf
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        kwargs["device_map"] = {"": local_rank} if torch.cuda.is_available() else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs)
    except Exception as e:  # noqa: BLE001
        raise explain_load_error(cfg.base_model, e) from e
    targets = cfg.target_module_list()
    if targets != "all-linear":
        available = linear_module_names(model)
        unknown = [t for t in targets if t not in available]
        if unknown:
            raise ValueError(f"target_modules {unknown} do not exist in {cfg.base_model}; its linear layers are: "
                             f"{', '.join(sorted(available - {'lm_head'}))}")
    if qconf is not None and not torch.cuda.is_available():
        keep_trainable_4bit_layout(model)
    if qconf is not None:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                             target_modules=targets, task_type="CAUSAL_LM", bias="none")
    return model, peft_config, dtype


def keep_trainable_4bit_layout(model) -> None:
    """Stop bitsandbytes repacking 4-bit weights for CPU inference during an eval pass.

    On CPUs with AVX512-BF16, Linear4bit converts its weights to an inference-only layout the first time
    it runs in eval mode and never converts back; the training steps after the first evaluation then go
    through gemv_4bit, which has no autograd kernel, and gradients stop flowing through the frozen base
    layers (torch warns "an autograd kernel was not registered"). Keeping the training layout costs a
    little eval speed and keeps every LoRA layer learning.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


class DBMetricsCallback:
    """Writes step, loss, eval loss, lr, tokens/s, peak memory and ETA to run_metrics at every log."""

    def __new__(cls, *args, **kwargs):
        # Subclass TrainerCallback lazily so importing this module stays light.
        from transformers import TrainerCallback

        class _Callback(TrainerCallback):
            def __init__(self, db: Database, run_id: int, run_dir: Path):
                self.db, self.run_id, self.run_dir = db, run_id, run_dir
                self.t0 = self.last_t = time.time()
                self.last_tokens = 0.0

            def on_step_end(self, args, state, control, **kw):
                # Stop & save (runs.request_stop): one primary-key read a step, cheap next to a step.
                if supervisor.stop_requested(self.db, TRAINING, self.run_id):
                    control.should_training_stop = True
                    control.should_save = args.save_strategy != "no"  # a checkpoint to resume from
                return control

            def on_log(self, args, state, control, logs=None, **kw):
                if not state.is_world_process_zero:  # with several ranks, one writes
                    return
                logs = logs or {}
                now = time.time()
                tokens = float(logs.get("num_tokens", state.num_input_tokens_seen or 0) or 0)
                tps = None
                if tokens > self.last_tokens and now > self.last_t:
                    tps = (tokens - self.last_tokens) / (now - self.last_t)
                    self.last_tokens, self.last_t = tokens, now
                elapsed = now - self.t0
                eta = None
                if state.global_step and state.max_steps:
                    eta = elapsed / state.global_step * (state.max_steps - state.global_step)
                with self.db.begin() as s:
                    m = s.query(RunMetric).filter_by(run_id=self.run_id, step=state.global_step).one_or_none()
                    if m is None:
                        m = RunMetric(run_id=self.run_id, step=state.global_step)
                        s.add(m)
                    m.epoch = logs.get("epoch", state.epoch)
                    if "loss" in logs:
                        m.loss = float(logs["loss"])
                    if "eval_loss" in logs:
                        m.eval_loss = float(logs["eval_loss"])
                    if "learning_rate" in logs:
                        m.learning_rate = float(logs["learning_rate"])
                    if tps is not None:
                        m.tokens_per_second = tps
                    m.peak_memory_mb = peak_memory_mb()
                    if eta is not None:
                        m.eta_seconds = eta

        return _Callback(*args, **kwargs)


def record_memory_preflight(db: Database, run_id: int, cfg: TrainConfig, model_config, tokenizer, examples) -> None:
    """Store the preflight estimate on the run (the tab shows it next to the measured peak) and log it."""
    import torch

    from training.memory import example_lengths, preflight

    device = "cuda" if torch.cuda.is_available() else "cpu"
    # The model is already loaded here, so only the warning is late; the Train tab's check shows it before.
    est, warning = preflight(cfg, model_config, example_lengths(tokenizer, examples), device)
    print(f"memory preflight: {est.summary()}" + (f"\nWARNING: {warning}" if warning else ""), flush=True)
    with db.begin() as s:
        s.get(TrainingRun, run_id).estimated_memory_mb = est.total


def eval_every(cfg: TrainConfig, n_train: int) -> int:
    """About five evaluations per run, never more often than every 10 steps (eval passes cost real time)."""
    import math

    if cfg.eval_steps > 0:
        return cfg.eval_steps
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(
        math.ceil(n_train / cfg.batch_size) / cfg.grad_accum * cfg.epochs)
    return max(10, steps // 5)


def peak_memory_mb() -> float:
    import resource

    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def train(db: Database, run_id: int) -> None:
    import torch
    from datasets import Dataset
    from trl import SFTTrainer

    from training.base_model import load_tokenizer, resolve_base_model
    from training.data import check_prompt_lengths, load_examples

    main_process = int(os.environ.get("RANK", "0")) == 0
    if not torch.cuda.is_available():
        # Started from the app, leave it a core for generation: two processes each spinning on every core slow
        # both many times over (training/threads.py); started from the CLI or the demo, take every core.
        torch.set_num_threads(training_threads())
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise SystemExit(f"No training run {run_id}.")
        cfg = TrainConfig.from_dict(run.config).validate()
        if main_process:
            run.status, run.started_at, run.error = "running", _now(), None
        run_dir, train_ids, eval_ids = Path(run.output_dir), list(run.sample_ids), list(run.eval_sample_ids)

    def phase(text: str | None) -> None:  # what the Train tab shows before the first step is logged
        if main_process:
            with db.begin() as s:
                s.get(TrainingRun, run_id).phase = text

    torch.manual_seed(cfg.seed)
    phase("loading the base model" + (f" and quantizing it ({cfg.quantization})" if cfg.quantization != "none" else ""))
    model_path = resolve_base_model(cfg.base_model)
    tokenizer = load_tokenizer(model_path)
    model, peft_config, dtype = load_model_for_training(cfg, model_path)
    phase(f"tokenizing {len(train_ids):,} training samples")
    train_examples = load_examples(db, train_ids)
    if not (cfg.padding_free and not cfg.packing):  # padding-free batches are not truncated
        check_prompt_lengths(tokenizer, train_examples, cfg.max_length)
    train_ds = Dataset.from_list(train_examples)
    if main_process:
        record_memory_preflight(db, run_id, cfg, model.config, tokenizer, train_examples)
    eval_ds = Dataset.from_list(load_examples(db, eval_ids)) if eval_ids else None
    args = sft_config(cfg, run_dir, dtype, n_train=len(train_ds), has_eval=eval_ds is not None)
    trainer = SFTTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=eval_ds,
                         processing_class=tokenizer, peft_config=peft_config,
                         callbacks=[DBMetricsCallback(db, run_id, run_dir)])
    print(f"moodshelf worker: rank {args.process_index} of world_size={args.world_size}, device {args.device}",
          flush=True)
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_dir = run_dir / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        print(f"resuming from {last}", flush=True)
    phase("the first step (the slowest: kernels warm up)")
    result = trainer.train(resume_from_checkpoint=last)
    phase("evaluating and saving the adapter")
    eval_loss = trainer.evaluate().get("eval_loss") if eval_ds is not None else None
    adapter_dir = run_dir / "adapter"
    trainer.save_model(str(adapter_dir))  # every rank calls it; only the main process writes
    if not main_process:
        return
    tokenizer.save_pretrained(str(adapter_dir))
    trainable, _ = trainer.model.get_nb_trainable_parameters()
    adapter_bytes = sum(f.stat().st_size for f in adapter_dir.glob("adapter_model.*"))
    stopped = supervisor.stop_requested(db, TRAINING, run_id)
    with db.begin() as s:
        run = s.get(TrainingRun, run_id)
        run.status = "stopped" if stopped else "completed"
        run.adapter_path, run.phase = str(adapter_dir), None
        run.final_loss = float(result.training_loss)
        run.eval_loss = float(eval_loss) if eval_loss is not None else None
        run.trainable_params = int(trainable)
        run.adapter_size_mb = adapter_bytes / 2**20
        run.peak_memory_mb = peak_memory_mb()
        run.runtime_seconds = float(result.metrics.get("train_runtime", 0.0))
        run.finished_at = _now()
        run.pid = None


def sft_config(cfg: TrainConfig, run_dir: Path, dtype, *, n_train: int, has_eval: bool):
    """TRL's SFTConfig for a run: our TrainConfig in TRL's terms (as TRL's own get_peft_config does for LoRA).
    Checkpoints go to run_dir/checkpoints, where a resumed run finds them."""
    import torch
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=cfg.max_steps,
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a value < 1 is a share of the total steps
        logging_steps=cfg.logging_steps,
        eval_strategy="steps" if has_eval and cfg.eval_steps != -1 else "no",
        eval_steps=eval_every(cfg, n_train),
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps or 500,
        save_total_limit=1,
        report_to="none",
        # TRL cannot enforce max_length on padding-free batches without packing; it refuses the combination.
        max_length=None if cfg.padding_free and not cfg.packing else cfg.max_length,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # bf16 autocast also on CPUs with native bf16 (AVX512-BF16/AMX): about 1.6x faster steps there.
        bf16=dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        use_cpu=not on_gpu,
        optim=cfg.optimizer,
        gradient_checkpointing=cfg.gradient_checkpointing,
        packing=cfg.packing,
        padding_free=cfg.padding_free,
        # Similar lengths in a batch: ~5% more real tokens/s on the default data (measured on CPU).
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        dataloader_num_workers=0,
        disable_tqdm=False,
    )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def main(argv: list[str] | None = None) -> int:
    # One owner per run, claimed before the heavy imports. Under accelerate the recorded owner is the launcher
    # (whose group a stop ends) and this rank runs under it; a second worker of a live run stops there.
    return supervisor.run_worker_main(TRAINING, train, argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
