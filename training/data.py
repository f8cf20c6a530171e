"""Build the SFT dataset from approved samples: a stable train/eval split and chat-format examples.

Each sample becomes a conversational prompt-completion pair, so TRL applies the base model's chat
template and computes the loss on the answer tokens only:

    {"prompt": [{"role": "user", "content": instruction + input}],
     "completion": [{"role": "assistant", "content": output}]}
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import select, update

from datagen.prompts import student_prompt
from db.engine import Database
from db.errors import UserError
from db.models import Sample


class DatasetError(UserError, ValueError):
    """Not enough (or unusable) data to train on, worded for the user."""


def split_score(content_hash: str, seed: int) -> float:
    # A hash, not random.random(): the same sample gets the same score on every machine and rerun.
    return int(hashlib.sha256(f"{seed}:{content_hash}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


@dataclass
class SplitIds:
    train: list[int]
    eval: list[int]


def assign_splits(db: Database, *, eval_fraction: float, seed: int, language: str = "") -> SplitIds:
    """Give approved samples without a split one (kept forever after: an eval sample never moves to train)."""
    with db.begin() as s:
        q = select(Sample).where(Sample.status == "approved")
        if language:
            q = q.where(Sample.language == language)
        samples = list(s.scalars(q.order_by(Sample.id)))
        if not samples:
            raise DatasetError(
                "No approved samples to train on" + (f" in language '{language}'" if language else "")
                + ". Generate samples (moodshelf generate) and approve them first.")
        # Samples that already have a split keep it (an eval sample never leaks into training later);
        # new ones top the eval split up to its share, lowest hash score first, so it is never empty
        # when a share was asked for and there are at least two samples.
        target = max(1, round(eval_fraction * len(samples))) if eval_fraction > 0 and len(samples) > 1 else 0
        need = target - sum(1 for sm in samples if sm.split == "eval")
        new = sorted((sm for sm in samples if sm.split is None), key=lambda sm: split_score(sm.content_hash, seed))
        for i, sm in enumerate(new):
            sm.split = "eval" if i < need else "train"
        ids = SplitIds([sm.id for sm in samples if sm.split == "train"], [sm.id for sm in samples if sm.split == "eval"])
    if not ids.train:
        raise DatasetError("Every approved sample is in the eval split: approve more samples to train on.")
    if eval_fraction > 0 and not ids.eval:
        raise DatasetError(
            f"The eval split is empty ({len(ids.train)} approved samples, eval_fraction={eval_fraction}). "
            "Approve more samples, raise eval_fraction, or set eval_fraction to 0 to train without eval.")
    return ids


def reshuffle_splits(db: Database, *, eval_fraction: float, seed: int, language: str = "") -> SplitIds:
    """Draw the split again for approved samples no run has used (the Curate tab's "reassign"); samples a
    queued, running or finished run trained or evaluated on keep theirs, so a run's eval samples stay eval."""
    from db.curation import locked_split_ids

    with db.begin() as s:
        locked = locked_split_ids(s)
        q = select(Sample.id).where(Sample.status == "approved", Sample.split.is_not(None))
        if language:
            q = q.where(Sample.language == language)
        free = [i for i in s.scalars(q) if i not in locked]
        for start in range(0, len(free), 10_000):  # under SQLite's limit on bound parameters
            s.execute(update(Sample).where(Sample.id.in_(free[start:start + 10_000])).values(split=None)
                      .execution_options(synchronize_session=False))
    return assign_splits(db, eval_fraction=eval_fraction, seed=seed, language=language)


def carries_candidates(db: Database, ids: list[int]) -> bool:
    """Whether a run's training samples carried catalog candidates in their input (retrieval, the default
    since prompt seed-v2): true when at least half of them do. The run records it, and the app then gives
    the adapter candidates too (training/recommend.py) — the prompt shape it was trained on."""
    from datagen.prompts import split_candidates

    if not ids:
        return False
    with_block = 0
    with db.session() as s:
        for start in range(0, len(ids), 10_000):  # under SQLite's limit on bound parameters
            for (text,) in s.execute(select(Sample.input).where(Sample.id.in_(ids[start:start + 10_000]))):
                with_block += bool(split_candidates(text or "")[1])
    return with_block * 2 >= len(ids)


def chat_example(sample: Sample) -> dict:
    return {
        "prompt": [{"role": "user", "content": student_prompt(sample.instruction, sample.input)}],
        "completion": [{"role": "assistant", "content": sample.output}],
    }


def load_examples(db: Database, ids: list[int]) -> list[dict]:
    with db.session() as s:
        by_id = {sm.id: sm for sm in s.scalars(select(Sample).where(Sample.id.in_(ids)))}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise DatasetError(f"Samples {missing[:10]} recorded on the run no longer exist.")
    return [chat_example(by_id[i]) for i in ids]


def check_prompt_lengths(tokenizer, examples: list[dict], max_length: int) -> None:
    """Refuse a max_length that leaves no room for the answer: truncation would cut every answer token of
    such an example, and it would teach nothing (TRL silently drops fully masked examples)."""
    lengths = [len(tokenizer.apply_chat_template(ex["prompt"], tokenize=True, add_generation_prompt=True,
                                                 return_dict=True)["input_ids"]) for ex in examples]
    too_long = [n for n in lengths if n >= max_length]
    if too_long:
        raise DatasetError(
            f"max_length {max_length} is shorter than the prompt of {len(too_long)} of {len(lengths)} examples "
            f"(longest prompt {max(lengths)} tokens): raise max_length to at least {max(lengths) + 64}.")
