"""A randomly initialised copy of a model, from its config and tokenizer files alone.

Speed and memory depend on shapes, not on weight values, so a GPU machine that cannot reach a model hub
(and cannot take the 94 MiB embedded GGUF along) benchmarks the same architecture with random weights:

    python bench/random_model.py --like data/models/smollm2-135m --out /tmp/smollm2-random   # copy + init
    python bench/random_model.py --shape-only data/models/smollm2-135m --out bench/shapes/x  # files to carry

Loss values of such a model say nothing about quality; compare them only between runs of the same script.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SMALL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja")


def copy_shape(src: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (src / name).exists():
            shutil.copy2(src / name, out / name)


def random_model(like: Path, out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    copy_shape(like, out)
    torch.manual_seed(seed)
    config = AutoConfig.from_pretrained(like)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--like", type=Path, help="model directory whose config and tokenizer to use")
    ap.add_argument("--shape-only", type=Path, help="copy only the config and tokenizer files of this directory")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.shape_only:
        copy_shape(args.shape_only, args.out)
    elif args.like:
        random_model(args.like, args.out)
    else:
        ap.error("give --like or --shape-only")
    print(args.out)


if __name__ == "__main__":
    main()
