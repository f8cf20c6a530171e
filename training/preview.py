"""What the Train tab shows before the button is enabled: how many samples, how long they are in tokens,
and the first example exactly as the model will see it (chat template applied, loss-masked prompt marked).

    python -m training.preview --base-model smollm2-135m
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy import func, select

from datagen.prompts import student_prompt
from db.engine import Database
from db.models import Sample
from training.config import TrainConfig


@dataclass
class DatasetPreview:
    approved: int
    train: int
    eval: int
    unassigned: int
    token_lengths: list[int]
    first_prompt: str
    first_completion: str
    truncated: int

    def stats(self) -> dict[str, float]:
        xs = sorted(self.token_lengths)
        if not xs:
            return {}
        return {"min": xs[0], "mean": round(statistics.mean(xs), 1), "p95": xs[int(0.95 * (len(xs) - 1))],
                "max": xs[-1]}

    def markdown(self, cfg: TrainConfig) -> str:
        s = self.stats()
        lines = [f"**{self.approved} approved samples** — {self.train} train, {self.eval} eval"
                 + (f", {self.unassigned} not yet split (assigned at {cfg.eval_fraction:.0%} eval when the run starts)"
                    if self.unassigned else ""),
                 f"Tokens per example (prompt + answer, chat template): min {s.get('min')}, mean {s.get('mean')}, "
                 f"p95 {s.get('p95')}, max {s.get('max')} — max_length {cfg.max_length}"
                 + (f", **{self.truncated} would be truncated**" if self.truncated else "")]
        return "\n\n".join(lines)


def preview_dataset(db: Database, cfg: TrainConfig, tokenizer, sample_limit: int = 2000) -> DatasetPreview:
    q = select(Sample).where(Sample.status == "approved")
    if cfg.language:
        q = q.where(Sample.language == cfg.language)
    with db.session() as s:
        counts = dict(s.execute(select(Sample.split, func.count()).where(q.whereclause).group_by(Sample.split)).all())
        samples = list(s.scalars(q.order_by(Sample.id).limit(sample_limit)))
    lengths, first = [], None
    for sm in samples:
        prompt_msgs = [{"role": "user", "content": student_prompt(sm.instruction, sm.input)}]
        full = prompt_msgs + [{"role": "assistant", "content": sm.output}]
        text = tokenizer.apply_chat_template(full, tokenize=False)
        lengths.append(len(tokenizer(text, add_special_tokens=False).input_ids))
        if first is None:
            prompt_text = tokenizer.apply_chat_template(prompt_msgs, tokenize=False, add_generation_prompt=True)
            first = (prompt_text, text[len(prompt_text):] if text.startswith(prompt_text) else sm.output)
    return DatasetPreview(approved=sum(counts.values()), train=counts.get("train", 0), eval=counts.get("eval", 0),
                          unassigned=counts.get(None, 0), token_lengths=lengths,
                          first_prompt=first[0] if first else "", first_completion=first[1] if first else "",
                          truncated=sum(1 for n in lengths if n > cfg.max_length))
