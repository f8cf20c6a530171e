"""TrainConfig — the one object behind the Train form, `moodshelf train` flags and a run's YAML file.

    moodshelf train --config run.yaml --max-steps 20      # flags override the YAML
    cat data/runs/<id>/config.yaml                        # every run writes its resolved config

Validation collects every problem and raises once with all of them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_BASE_MODEL = "smollm2-135m"
ACCELERATE_CONFIGS = {p.stem: p for p in (Path(__file__).parent / "accelerate_configs").glob("*.yaml")}


class ConfigError(ValueError):
    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("Invalid training config:\n" + "\n".join(f"  - {p}" for p in problems))


def resolve_compute_dtype(name: str, device: str) -> str:
    """What compute_dtype="auto" means on a device: bf16 on GPUs that support it, fp16 on older GPUs, bf16
    autocast on CPUs with native bf16 (AVX512-BF16 or AMX, as TRL's own default would), else fp32."""
    if name != "auto":
        return name
    import torch

    if str(device).startswith("cuda"):
        return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float16"
    return "bfloat16" if torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported() else "float32"


@dataclass
class TrainConfig:
    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={
        "help": "preset name (smollm2-135m = embedded offline default), Hugging Face id, or local path"})
    quantization: str = field(default="nf4", metadata={"help": "nf4 (4-bit QLoRA), int8, or none"})
    double_quant: bool = field(default=True, metadata={"help": "quantize the 4-bit quantization constants too"})
    compute_dtype: str = field(default="auto", metadata={
        "help": "auto (bf16 where the GPU or CPU computes it natively, fp16 on older GPUs, else fp32), "
                "float32, bfloat16, float16"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)"})
    # 0 by default: dropout masks on every LoRA input cost ~17% of a CPU step and activation memory, and short
    # SFT runs gain little from them (bench/results/training_cpu.txt compares both at equal eval loss).
    lora_dropout: float = field(default=0.0, metadata={
        "help": "dropout on the LoRA input (0.05-0.1 can help long runs on little data)"})
    target_modules: str = field(default="all-linear", metadata={
        "help": "all-linear, attention (q/k/v/o), or a comma-separated list of module names"})
    learning_rate: float = field(default=2e-4, metadata={"help": "peak learning rate"})
    lr_scheduler: str = field(default="cosine", metadata={"help": "linear, cosine, constant, ..."})
    warmup_ratio: float = field(default=0.03, metadata={"help": "share of steps spent warming up"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the training split (ignored if max_steps > 0)"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: use epochs)"})
    batch_size: int = field(default=4, metadata={"help": "per-device batch size"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=512, metadata={"help": "truncate examples to this many tokens"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "trade compute for activation memory"})
    group_by_length: bool = field(default=True, metadata={
        "help": "batch examples of similar length together, so batches carry less padding"})
    packing: bool = field(default=False, metadata={"help": "pack several examples into each sequence (BFD)"})
    padding_free: bool = field(default=False, metadata={
        "help": "concatenate the batch without padding tokens (position ids keep examples apart; 1.5x faster "
                "on an H100, slower on CPU); without packing, examples are not truncated to max_length"})
    attn_implementation: str = field(default="sdpa", metadata={
        "help": "sdpa, eager, or flash_attention_2 (needs the flash-attn package and a GPU)"})
    optimizer: str = field(default="adamw_torch", metadata={
        "help": "adamw_torch, adamw_bnb_8bit, paged_adamw_8bit, paged_adamw_32bit"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of approved samples held out for eval"})
    language: str = field(default="", metadata={"help": "train only on samples in this language (ko/en); empty: all"})
    logging_steps: int = field(default=1, metadata={"help": "record metrics every N steps"})
    eval_steps: int = field(default=0, metadata={
        "help": "evaluate every N steps (0: about five times per run; -1: only at the end)"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps, to resume from (0: never)"})
    seed: int = field(default=42, metadata={"help": "seed for the split, LoRA init and data order"})
    num_processes: int = field(default=1, metadata={
        "help": "processes (GPUs) to train on; > 1 runs through `accelerate launch`"})
    accelerate_config: str = field(default="", metadata={
        "help": "ddp, cpu_ddp, deepspeed_zero2, deepspeed_zero3, fsdp_qlora, or a YAML path (empty: ddp on GPUs, "
                "cpu_ddp on CPU)"})

    def problems(self) -> list[str]:
        p = []
        if self.quantization not in ("nf4", "int8", "none"):
            p.append(f"quantization must be nf4, int8 or none (got {self.quantization!r})")
        if self.compute_dtype not in ("auto", "float32", "bfloat16", "float16"):
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
        if self.optimizer not in ("adamw_torch", "adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit"):
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
        if self.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
            p.append(f"attn_implementation must be sdpa, eager or flash_attention_2 (got {self.attn_implementation!r})")
        elif self.attn_implementation == "flash_attention_2":
            import importlib.util

            if importlib.util.find_spec("flash_attn") is None:
                p.append("attn_implementation flash_attention_2 needs the flash-attn package (pip install flash-attn, "
                         "on a CUDA machine); use sdpa instead")
        return p

    def validate(self) -> "TrainConfig":
        if problems := self.problems():
            raise ConfigError(problems)
        return self

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError([f"unknown setting(s): {', '.join(unknown)}"])
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError([f"cannot read {path}: {e}"]) from e
        if not isinstance(data, dict):
            raise ConfigError([f"{path} must hold a mapping of settings"])
        return cls.from_dict(data)

    def to_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

    def command_line(self) -> str:
        """The `moodshelf train` command equivalent to this config (only non-default values)."""
        default = TrainConfig()
        args = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v != getattr(default, f.name):
                flag = "--" + f.name.replace("_", "-")
                if isinstance(v, bool):
                    args.append(flag if v else f"--no-{f.name.replace('_', '-')}")
                else:
                    args.append(f"{flag} {v}")
        return " ".join(["moodshelf train", *args])
