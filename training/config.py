"""TrainConfig — the one object behind the Train form, `moodshelf train` flags and a run's YAML file.

    moodshelf train --config run.yaml --max-steps 20      # flags override the YAML
    moodshelf train --config training/config_hub/demo.yaml  # the demo's own settings, a preset
    cat data/runs/<id>/config.yaml                        # every run writes its resolved config

Validation collects every problem and raises once with all of them (workers/config.ConfigModel).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from training.presets import MODEL_PRESETS
from workers.config import ConfigError as BaseConfigError
from workers.config import ConfigModel

DEFAULT_BASE_MODEL = "smollm2-135m"
ACCELERATE_CONFIGS = {p.stem: p for p in (Path(__file__).parent / "accelerate_configs").glob("*.yaml")}
CONFIG_HUB = Path(__file__).parent / "config_hub"  # YAML presets, shipped in the package (pyproject package-data)
DEMO_PRESET = CONFIG_HUB / "demo.yaml"
QUANTIZATIONS = ("nf4", "int8", "none")
COMPUTE_DTYPES = ("auto", "float32", "bfloat16", "float16")
OPTIMIZERS = ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit")
ATTENTION = ("sdpa", "eager", "flash_attention_2")


class ConfigError(BaseConfigError):
    title = "Invalid training config"


def resolve_compute_dtype(name: str, device: str) -> str:
    """What compute_dtype="auto" means on a device: bf16 on GPUs that support it, fp16 on older GPUs, bf16
    autocast on CPUs with native bf16 (AVX512-BF16 or AMX, as TRL's own default would), else fp32."""
    if name != "auto":
        return name
    import torch

    if str(device).startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else "float32"


def _choices(values, open_: bool = False) -> dict:
    """Field metadata the Train form turns into a dropdown (open: other values may be typed)."""
    return {"choices": list(values), "open": open_}


class TrainConfig(ConfigModel):
    """One QLoRA run: base model, quantization, LoRA, optimizer, schedule, data."""

    error: ClassVar[type[Exception]] = ConfigError

    base_model: str = Field(DEFAULT_BASE_MODEL, json_schema_extra=_choices(MODEL_PRESETS, open_=True), description=
        "preset name (smollm2-135m = embedded offline default), Hugging Face id, or local path")
    quantization: str = Field("nf4", json_schema_extra=_choices(QUANTIZATIONS),
                              description="nf4 (4-bit QLoRA), int8, or none")
    double_quant: bool = Field(True, description="quantize the 4-bit quantization constants too")
    compute_dtype: str = Field("auto", json_schema_extra=_choices(COMPUTE_DTYPES), description=
        "auto (bf16 where the GPU or CPU computes it natively, fp16 on older GPUs, else fp32), float32, bfloat16, "
        "float16")
    lora_r: int = Field(16, description="LoRA rank")
    lora_alpha: int = Field(32, description="LoRA scaling numerator (scale = alpha / r)")
    # 0 by default: dropout masks on every LoRA input cost ~17% of a CPU step and activation memory, and short
    # SFT runs gain little from them (bench/results/training_cpu.txt compares both at equal eval loss).
    lora_dropout: float = Field(0.0, description="dropout on the LoRA input (0.05-0.1 can help long runs on little data)")
    target_modules: str = Field("all-linear", json_schema_extra=_choices(("all-linear", "attention"), open_=True),
                                description="all-linear, attention (q/k/v/o), or a comma-separated list of module names")
    learning_rate: float = Field(2e-4, description="peak learning rate")
    lr_scheduler: str = Field("cosine", json_schema_extra=_choices(("cosine", "linear", "constant",
                                                                    "constant_with_warmup")),
                              description="linear, cosine, constant, ...")
    warmup_ratio: float = Field(0.03, description="share of steps spent warming up")
    epochs: float = Field(1.0, description="passes over the training split (ignored if max_steps > 0)")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: use epochs)")
    batch_size: int = Field(4, description="per-device batch size")
    grad_accum: int = Field(1, description="gradient accumulation steps")
    max_length: int = Field(512, description="truncate examples to this many tokens")
    gradient_checkpointing: bool = Field(False, description="trade compute for activation memory")
    group_by_length: bool = Field(True, description=
        "batch examples of similar length together, so batches carry less padding")
    packing: bool = Field(False, description="pack several examples into each sequence (BFD)")
    padding_free: bool = Field(False, description=
        "concatenate the batch without padding tokens (position ids keep examples apart; 1.5x faster on an H100, "
        "slower on CPU); without packing, examples are not truncated to max_length")
    attn_implementation: str = Field("sdpa", json_schema_extra=_choices(ATTENTION), description=
        "sdpa, eager, or flash_attention_2 (needs the flash-attn package and a GPU)")
    optimizer: str = Field("adamw_torch", json_schema_extra=_choices(OPTIMIZERS),
                           description="adamw_torch, adamw_bnb_8bit, paged_adamw_8bit, paged_adamw_32bit")
    eval_fraction: float = Field(0.1, description="share of approved samples held out for eval")
    language: str = Field("", json_schema_extra=_choices(("", "en", "ko")),
                          description="train only on samples in this language (ko/en); empty: all")
    logging_steps: int = Field(1, description="record metrics every N steps")
    eval_steps: int = Field(0, description="evaluate every N steps (0: about five times per run; -1: only at the end)")
    save_steps: int = Field(50, description="checkpoint every N steps, to resume from (0: never)")
    seed: int = Field(42, description="seed for the split, LoRA init and data order")
    num_processes: int = Field(1, description="processes (GPUs) to train on; > 1 runs through `accelerate launch`")
    accelerate_config: str = Field("", description=
        "ddp, cpu_ddp, deepspeed_zero2, deepspeed_zero3, fsdp_qlora, or a YAML path (empty: ddp on GPUs, cpu_ddp "
        "on CPU)")

    def problems(self) -> list[str]:
        p = []
        if self.quantization not in QUANTIZATIONS:
            p.append(f"quantization must be nf4, int8 or none (got {self.quantization!r})")
        if self.compute_dtype not in COMPUTE_DTYPES:
            p.append(f"compute_dtype must be auto, float32, bfloat16 or float16 (got {self.compute_dtype!r})")
        if self.lora_r <= 0:
            p.append(f"lora_r must be > 0 (got {self.lora_r})")
        if self.lora_alpha <= 0:
            p.append(f"lora_alpha must be > 0 (got {self.lora_alpha})")
        if not 0 <= self.lora_dropout < 1:
            p.append(f"lora_dropout must be in [0, 1) (got {self.lora_dropout})")
        if self.learning_rate <= 0:
            p.append(f"learning_rate must be > 0 (got {self.learning_rate})")
        if self.max_steps == 0 or self.max_steps < -1:
            p.append(f"max_steps must be > 0, or -1 to train for `epochs` (got {self.max_steps})")
        if self.max_steps == -1 and self.epochs <= 0:
            p.append(f"epochs must be > 0 (got {self.epochs})")
        if self.batch_size <= 0:
            p.append(f"batch_size must be > 0 (got {self.batch_size})")
        if self.grad_accum <= 0:
            p.append(f"grad_accum must be > 0 (got {self.grad_accum})")
        if self.max_length < 32:
            p.append(f"max_length must be at least 32 tokens (got {self.max_length})")
        if not 0 <= self.eval_fraction < 0.9:
            p.append(f"eval_fraction must be in [0, 0.9) (got {self.eval_fraction})")
        if self.optimizer not in OPTIMIZERS:
            p.append(f"optimizer {self.optimizer!r} is not one of adamw_torch, adamw_bnb_8bit, paged_adamw_8bit, "
                     "paged_adamw_32bit")
        if self.language not in ("", "ko", "en"):
            p.append(f"language must be ko, en or empty (got {self.language!r})")
        if self.num_processes < 1:
            p.append(f"num_processes must be >= 1 (got {self.num_processes})")
        if self.accelerate_config and self.accelerate_config_path() is None:
            p.append(f"accelerate_config {self.accelerate_config!r} is neither a shipped config "
                     f"({', '.join(sorted(ACCELERATE_CONFIGS))}) nor a YAML file")
        if self.accelerate_config.startswith("deepspeed_zero3") and self.quantization != "none":
            p.append("DeepSpeed ZeRO-3 cannot shard 4/8-bit bitsandbytes weights: use quantization none, or "
                     "accelerate_config fsdp_qlora for sharded QLoRA")
        if self.eval_steps < -1:
            p.append(f"eval_steps must be >= -1 (got {self.eval_steps})")
        if self.save_steps < 0:
            p.append(f"save_steps must be >= 0 (got {self.save_steps})")
        if self.logging_steps <= 0:
            p.append(f"logging_steps must be > 0 (got {self.logging_steps})")
        if not self.base_model.strip():
            p.append("base_model must not be empty")
        if self.attn_implementation not in ATTENTION:
            p.append(f"attn_implementation must be sdpa, eager or flash_attention_2 (got {self.attn_implementation!r})")
        elif self.attn_implementation == "flash_attention_2":
            import importlib.util

            if importlib.util.find_spec("flash_attn") is None:
                p.append("attn_implementation flash_attention_2 needs the flash-attn package (pip install flash-attn, "
                         "on a CUDA machine); use sdpa instead")
        return p

    def accelerate_config_path(self) -> Path | None:
        name = self.accelerate_config
        if not name:
            import torch

            name = "ddp" if torch.cuda.is_available() else "cpu_ddp"
        if name in ACCELERATE_CONFIGS:
            return ACCELERATE_CONFIGS[name]
        path = Path(name).expanduser()
        return path if path.is_file() else None

    def target_module_list(self) -> str | list[str]:
        if self.target_modules == "all-linear":
            return "all-linear"
        if self.target_modules == "attention":
            from training.presets import attention_targets

            return attention_targets(self.base_model)
        return [m.strip() for m in self.target_modules.split(",") if m.strip()]

    def command_line(self) -> str:
        """The `moodshelf train` command equivalent to this config (only non-default values), quoted for a POSIX
        shell: a base-model path with a space in it stays one argument."""
        return shlex.join(["moodshelf", "train", *self.cli_args()])
