"""Edit a sample by hand: the original is kept on its first edit, and the sample is revalidated on save.

    result = edit_sample(db, 42, {"output": "1. ..."}, index=catalog_index(db))
    result.status, result.flags        # an edit that breaks the format is saved as needs_review, with the reason

Edits that cannot be saved at all (an empty answer, a copy of another sample) raise ReviewError and change
nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from datagen.grounding import CatalogIndex
from datagen.validation import content_hash, status_for, validate_output
from db.engine import Database
from db.errors import UserError
from db.models import GenerationJob, Sample, utcnow

EDITABLE = ("instruction", "input", "output", "emotion", "occupation", "effect", "situation", "focus")
REQUIRED = ("instruction", "output")
DEFAULT_N_BOOKS = 3


class ReviewError(UserError, ValueError):
    """An edit that was refused; the sample is unchanged."""


@dataclass
class EditResult:
    sample_id: int
    status: str
    flags: list[str]
    changed: list[str]

    def message(self) -> str:
        if not self.changed:
            return f"Sample #{self.sample_id}: nothing changed."
        head = f"Saved sample #{self.sample_id} ({', '.join(self.changed)}): status **{self.status}**"
        return head + (f" — flags: {', '.join(self.flags)}" if self.flags else " — passes validation.")


def expected_books(sample: Sample, job: GenerationJob | None) -> int:
    if job is not None and job.config.get("n_books"):
        return int(job.config["n_books"])
    return DEFAULT_N_BOOKS


def edit_sample(db: Database, sample_id: int, changes: dict[str, str], *, index: CatalogIndex | None) -> EditResult:
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ReviewError(f"Cannot edit {', '.join(unknown)}: editable fields are {', '.join(EDITABLE)}.")
    for name in REQUIRED:
        if name in changes and not (changes[name] or "").strip():
            raise ReviewError(f"The {name} cannot be empty: nothing was saved.")
    with db.begin() as s:
        sample = s.get(Sample, int(sample_id))
        if sample is None:
            raise ReviewError(f"No sample #{sample_id}.")
        changed = [k for k, v in changes.items() if (getattr(sample, k) or "") != (v or "")]
        if not changed:
            return EditResult(sample.id, sample.status, list(sample.quality_flags), [])
        new = {k: getattr(sample, k) for k in EDITABLE} | {k: changes[k] for k in changed}
        new_hash = content_hash(new["instruction"], new["input"] or "", new["output"])
        twin = s.scalar(select(Sample.id).where(Sample.content_hash == new_hash, Sample.id != sample.id))
        if twin is not None:
            raise ReviewError(f"This edit makes sample #{sample.id} identical to sample #{twin}: nothing was saved. "
                              f"Reject one of them instead.")
        if sample.original is None:
            sample.original = {k: getattr(sample, k) for k in EDITABLE} | {
                "status": sample.status, "quality_flags": list(sample.quality_flags), "books": list(sample.books),
                "grounded_count": sample.grounded_count}
        for k in changed:
            setattr(sample, k, new[k])
        v = validate_output(sample.output, language=sample.language,
                            n_books=expected_books(sample, sample.job), index=index)
        # A near-duplicate mark came from comparing with other samples, which an edit does not redo: keep it.
        flags = v.flags + [f for f in sample.quality_flags if f.startswith("near_duplicate:")]
        status = status_for(v)
        if status == "rejected" or flags:
            status = "needs_review"  # a human wrote this: ask for another look rather than throwing it away
        elif sample.status == "approved":
            status = "approved"
        sample.quality_flags, sample.status = flags, status
        sample.books, sample.grounded_count = [it.as_dict() for it in v.items], v.grounded_count
        sample.content_hash, sample.edited_at = new_hash, utcnow()
        return EditResult(sample.id, status, flags, changed)


def revert_sample(db: Database, sample_id: int) -> None:
    """Put back the sample as it was first stored (content, flags and status)."""
    with db.begin() as s:
        sample = s.get(Sample, int(sample_id))
        if sample is None:
            raise ReviewError(f"No sample #{sample_id}.")
        if sample.original is None:
            raise ReviewError(f"Sample #{sample_id} was never edited.")
        o = sample.original
        old_hash = content_hash(o["instruction"], o["input"] or "", o["output"])
        twin = s.scalar(select(Sample.id).where(Sample.content_hash == old_hash, Sample.id != sample.id))
        if twin is not None:
            raise ReviewError(f"Sample #{twin} now has this sample's original text: nothing was reverted.")
        for k in EDITABLE:
            setattr(sample, k, o[k])
        sample.status, sample.quality_flags = o["status"], o["quality_flags"]
        sample.books, sample.grounded_count = o["books"], o["grounded_count"]
        sample.content_hash = old_hash
        sample.original, sample.edited_at = None, None
