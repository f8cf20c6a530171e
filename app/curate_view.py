"""How the Curate tab shows things: table rows, a sample as the model will see it, clusters side by side, and
the statistics as data frames for plots. Pure functions of database rows; no events, no queries."""
from __future__ import annotations

import html
import re

import pandas as pd

from app.services import BookCard
from datagen.prompts import student_prompt
from db.curation import Page
from db.curation_stats import ModelRates
from db.models import Sample

TABLE_HEADERS = ["id", "status", "provider", "model", "lang", "emotion", "occupation", "effect", "grounded",
                 "cluster", "flags", "chars", "split", "edited", "answer", "created"]


def table_rows(p: Page) -> list[list]:
    return [[s.id, s.status, s.provider, s.model, s.language, s.emotion or "", s.occupation or "", s.effect or "",
             f"{s.grounded_count}/{len(s.books)}", s.cluster_id or "", "; ".join(s.quality_flags)[:80],
             s.output_chars, s.split or "", "✎" if s.edited_at else "", s.output.replace("\n", " ")[:90],
             s.created_at.strftime("%Y-%m-%d %H:%M")] for s in p.rows]


def page_summary(p: Page, description: str) -> str:
    if not p.total:
        return f"**No samples match** ({description})."
    last = min(p.offset + p.limit, p.total)
    return (f"**{p.total:,} samples match** ({description}) — rows {p.offset + 1:,}–{last:,}, "
            f"page {p.page_number:,} of {p.page_count:,}")


def fenced(text: str) -> str:
    """A code block that the text cannot close: its fence is longer than any run of backticks inside it (a
    model's answer is untrusted; inside the block it is shown as text)."""
    longest = max((len(run) for run in re.findall(r"`+", text or "")), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def sample_markdown(s: Sample, cards: list[BookCard]) -> str:
    """The sample as rendered for training (the user turn, the assistant turn), its books and flags."""
    flags = "\n".join(f"- `{f}`" for f in s.quality_flags) or "- none"
    edited = ""
    if s.original:
        edited = (f"\n\n✎ **Edited** {s.edited_at:%Y-%m-%d %H:%M} — the original is kept (status was "
                  f"*{s.original.get('status')}*; *Revert* restores it).")
    cluster = f" · near-duplicate cluster **{s.cluster_id}**" if s.cluster_id else ""
    return (f"### Sample #{s.id} — **{s.status}**{cluster}\n"
            f"{s.provider} `{s.model}` · prompt `{s.prompt_version}` · {s.language} · split {s.split or '—'} · "
            f"{s.grounded_count}/{len(s.books)} books in the catalog{edited}\n\n"
            f"**User turn (what the student model is given)**\n\n{fenced(student_prompt(s.instruction, s.input))}\n\n"
            f"**Assistant turn (what it learns to answer)**\n\n{fenced(s.output)}\n\n"
            f"**Books**\n\n" + ("\n".join(c.markdown(s.language) for c in cards) or "*no books parsed*")
            + f"\n\n**Validation flags**\n\n{flags}")


def cluster_html(members: list[Sample]) -> str:
    """Members of a near-duplicate cluster as columns of one table, so the differences are easy to see."""
    if not members:
        return "<p><em>Pick a cluster.</em></p>"
    head = "".join(f"<th>#{m.id} · {html.escape(m.status)}</th>" for m in members)
    prompt = "".join(f"<td><pre style='white-space:pre-wrap'>{html.escape(student_prompt(m.instruction, m.input))}</pre></td>" for m in members)
    answer = "".join(f"<td><pre style='white-space:pre-wrap'>{html.escape(m.output)}</pre></td>" for m in members)
    return (f"<div style='overflow-x:auto'><table id='cur_cluster_table'><tr>{head}</tr><tr>{prompt}</tr>"
            f"<tr>{answer}</tr></table></div>")


def counts_frame(rows: list[tuple[str, int]], label: str) -> pd.DataFrame:
    return pd.DataFrame({label: [str(v) for v, _ in rows], "samples": [n for _, n in rows]})


def rates_rows(rates: list[ModelRates]) -> list[list]:
    return [[r.provider, r.model, r.samples, f"{r.grounded_rate:.0%}", f"{r.rejected_rate:.0%}",
             f"{r.approved_rate:.0%}"] for r in rates]


def split_markdown(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "*No approved samples yet.*"
    return (f"**{total:,} approved samples** — train {counts.get('train', 0):,} · eval {counts.get('eval', 0):,} · "
            f"not yet split {counts.get('none', 0):,}")
