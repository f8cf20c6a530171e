"""Curation queries: one typed filter shared by the Curate tab, the CLI and the bench; pages, counts, bulk status
changes that run as single SQL statements (with an undo log), and near-duplicate clusters.

    from db.curation import SampleFilter, page, bulk_set_status, undo_last_bulk
    f = SampleFilter(statuses=["pending"], grounded="yes", text="insomnia")
    p = page(db, f, sort="newest", offset=0, limit=50)      # p.total, p.rows
    action = bulk_set_status(db, f, "approved")              # every match, not only the page
    undo_last_bulk(db)

Nothing here loads all matching rows into Python: at 100,000 samples a page is a COUNT and a LIMIT query on
indexed columns, and a bulk action is INSERT ... SELECT (the old statuses) plus UPDATE ... WHERE id IN (...).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Integer, String, and_, cast, delete, func, insert, literal, not_, or_, select, update
from sqlalchemy.sql import ColumnElement

from db.engine import Database
from db.errors import UserError
from db.models import SAMPLE_STATUSES, CurationAction, CurationActionRow, Sample, TrainingRun, utcnow

SORTS = {
    "newest": (Sample.created_at.desc(), Sample.id.desc()),
    "oldest": (Sample.created_at.asc(), Sample.id.asc()),
    "longest": (Sample.output_chars.desc(), Sample.id.desc()),
    "shortest": (Sample.output_chars.asc(), Sample.id.asc()),
    "most grounded": (Sample.grounded_count.desc(), Sample.id.desc()),
    "least grounded": (Sample.grounded_count.asc(), Sample.id.asc()),
}
Sort = Literal["newest", "oldest", "longest", "shortest", "most grounded", "least grounded"]
# Runs in these states used (or are using) their samples: their splits never move.
RUNS_THAT_LOCK_SPLITS = ("queued", "running", "completed", "stopped")
UNDO_HISTORY = 10  # actions whose old statuses are kept; older ones lose their rows (and their undo)


class CurationError(UserError, ValueError):
    """A curation request that cannot be done, worded for the user."""


class SampleFilter(BaseModel):
    """What the curator is looking at. Empty fields filter nothing."""

    statuses: list[str] = Field(default_factory=list, description="pending, approved, rejected, needs_review")
    providers: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=list)
    prompt_versions: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    emotion: str = ""
    occupation: str = ""
    effect: str = Field("", description="one effect; matches samples that asked for it among others")
    grounded: Literal["any", "yes", "no"] = Field("any", description="yes: every book found in the catalog")
    duplicates: Literal["any", "yes", "no"] = Field("any", description="yes: member of a near-duplicate cluster")
    cluster_id: int | None = None
    flag: str = Field("", description="part of a validation flag, e.g. ungrounded, format, near_duplicate")
    text: str = Field("", description="part of the instruction, input or output")
    split: Literal["any", "train", "eval", "none"] = "any"
    edited: Literal["any", "yes", "no"] = "any"

    @field_validator("statuses")
    @classmethod
    def _known_statuses(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in SAMPLE_STATUSES]
        if bad:
            raise ValueError(f"unknown status {bad[0]!r}: use one of {', '.join(SAMPLE_STATUSES)}")
        return v

    def describe(self) -> str:
        """The filter in words, as messages and counts show it: 'status pending or approved, language en'."""
        words = {"statuses": "status", "providers": "provider", "models": "model", "prompt_versions": "prompt version",
                 "languages": "language", "cluster_id": "duplicate cluster", "flag": "flag contains",
                 "text": "text contains"}
        parts = []
        for name, value in self.model_dump(exclude_defaults=True).items():
            label = words.get(name, name)
            if isinstance(value, list):
                parts.append(f"{label} {' or '.join(value)}")
            elif name == "grounded":
                parts.append("every book in the catalog" if value == "yes" else "a book not in the catalog")
            elif name == "duplicates":
                parts.append("in a near-duplicate cluster" if value == "yes" else "in no near-duplicate cluster")
            elif name == "edited":
                parts.append("edited" if value == "yes" else "not edited")
            elif name == "split":
                parts.append("in no split" if value == "none" else f"in the {value} split")
            elif name in ("flag", "text"):
                parts.append(f"{label} “{value}”")
            else:
                parts.append(f"{label} {value}")
        return ", ".join(parts) or "all samples"


def _flags_text():
    # JSON lists are compared as text: portable (SQLite, PostgreSQL) and cheap on a short column.
    return cast(Sample.quality_flags, String)


def conditions(f: SampleFilter) -> list[ColumnElement[bool]]:
    c: list[ColumnElement[bool]] = []
    for column, values in ((Sample.status, f.statuses), (Sample.provider, f.providers), (Sample.model, f.models),
                           (Sample.prompt_version, f.prompt_versions), (Sample.language, f.languages)):
        if values:
            c.append(column.in_(values))
    if f.emotion:
        c.append(Sample.emotion == f.emotion)
    if f.occupation:
        c.append(Sample.occupation == f.occupation)
    if f.effect:
        c.append(or_(Sample.effect == f.effect, Sample.effect.like(f"%{_escape(f.effect)}%", escape="\\")))
    grounded = and_(Sample.grounded_count > 0, not_(_flags_text().like("%ungrounded:%")))
    if f.grounded == "yes":
        c.append(grounded)
    elif f.grounded == "no":
        c.append(not_(grounded))
    # A cluster's first sample has no cluster_id of its own; its id is the cluster id of the others.
    in_cluster = or_(Sample.cluster_id.is_not(None),
                     Sample.id.in_(select(Sample.cluster_id).where(Sample.cluster_id.is_not(None))))
    if f.duplicates == "yes":
        c.append(in_cluster)
    elif f.duplicates == "no":
        c.append(not_(in_cluster))
    if f.cluster_id is not None:
        c.append(or_(Sample.cluster_id == f.cluster_id, Sample.id == f.cluster_id))
    if f.flag:
        c.append(_flags_text().like(f"%{_escape(f.flag)}%", escape="\\"))
    if f.text:
        pattern = f"%{_escape(f.text)}%"
        c.append(or_(Sample.output.like(pattern, escape="\\"), Sample.instruction.like(pattern, escape="\\"),
                     Sample.input.like(pattern, escape="\\")))
    if f.split == "none":
        c.append(Sample.split.is_(None))
    elif f.split != "any":
        c.append(Sample.split == f.split)
    if f.edited == "yes":
        c.append(Sample.edited_at.is_not(None))
    elif f.edited == "no":
        c.append(Sample.edited_at.is_(None))
    return c


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matching_ids(f: SampleFilter):
    return select(Sample.id).where(*conditions(f))


@dataclass
class Page:
    total: int
    offset: int
    limit: int
    rows: list[Sample]

    @property
    def page_number(self) -> int:
        return self.offset // self.limit + 1 if self.limit else 1

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total // self.limit)) if self.limit else 1


def count(db: Database, f: SampleFilter) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Sample).where(*conditions(f)))


def page(db: Database, f: SampleFilter, sort: Sort = "newest", offset: int = 0, limit: int = 50) -> Page:
    if sort not in SORTS:
        raise CurationError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")
    offset, limit = max(0, int(offset)), max(1, min(int(limit), 500))
    with db.session() as s:
        if f.text:
            # Text search reads every answer (no index helps a substring): scan once for the ordered ids, and
            # take the count and the page from them, instead of scanning for the COUNT and again for the rows.
            ids = list(s.scalars(select(Sample.id).where(*conditions(f)).order_by(*SORTS[sort])))
            total = len(ids)
            offset = _clamp(offset, total, limit)
            by_id = {r.id: r for r in s.scalars(select(Sample).where(Sample.id.in_(ids[offset:offset + limit])))}
            return Page(total=total, offset=offset, limit=limit, rows=[by_id[i] for i in ids[offset:offset + limit]])
        total = s.scalar(select(func.count()).select_from(Sample).where(*conditions(f)))
        offset = _clamp(offset, total, limit)
        rows = list(s.scalars(select(Sample).where(*conditions(f)).order_by(*SORTS[sort]).offset(offset).limit(limit)))
    return Page(total=total, offset=offset, limit=limit, rows=rows)


def _clamp(offset: int, total: int, limit: int) -> int:
    # Past the end (the filter shrank since the last page): show the last page instead of nothing.
    return (total - 1) // limit * limit if offset >= total > 0 else offset


def get_sample(db: Database, sample_id: int) -> Sample:
    with db.session() as s:
        sample = s.get(Sample, int(sample_id))
    if sample is None:
        raise CurationError(f"No sample #{sample_id}.")
    return sample


def filter_options(db: Database) -> dict[str, list[str]]:
    """Distinct values for the filter dropdowns (indexed columns: fast at 100k rows)."""
    columns = {"providers": Sample.provider, "models": Sample.model, "prompt_versions": Sample.prompt_version,
               "languages": Sample.language, "emotions": Sample.emotion, "occupations": Sample.occupation,
               "effects": Sample.effect}
    with db.session() as s:
        out = {k: [v for v in s.scalars(select(col).distinct().order_by(col)) if v] for k, col in columns.items()}
    # Samples store their effects joined ("calm, comfort"); the dropdown offers single effects.
    out["effects"] = sorted({e.strip() for v in out["effects"] for e in v.split(",") if e.strip()})
    return out


# -- status changes --------------------------------------------------------------------------------------------
def _check_status(status: str) -> None:
    if status not in SAMPLE_STATUSES:
        raise CurationError(f"Unknown status {status!r}: use one of {', '.join(SAMPLE_STATUSES)}.")


def set_status(db: Database, sample_id: int, status: str) -> None:
    """One sample (the focus view's approve / reject)."""
    _check_status(status)
    with db.begin() as s:
        sample = s.get(Sample, int(sample_id))
        if sample is None:
            raise CurationError(f"No sample #{sample_id}.")
        sample.status = status


def _record_and_update(s, action: CurationAction, ids_select, status: str) -> int:
    """Write the old statuses of the rows ids_select picks (that would change), then change them: two statements."""
    s.add(action)
    s.flush()
    old = select(literal(action.id), Sample.id, Sample.status).where(
        Sample.id.in_(ids_select), Sample.status != status)
    s.execute(insert(CurationActionRow).from_select(["action_id", "sample_id", "old_status"], old))
    touched = select(CurationActionRow.sample_id).where(CurationActionRow.action_id == action.id)
    n = s.execute(update(Sample).where(Sample.id.in_(touched)).values(status=status, updated_at=utcnow())
                  .execution_options(synchronize_session=False)).rowcount
    action.row_count = n
    return n


def _prune_undo_log(s) -> None:
    keep = select(CurationAction.id).order_by(CurationAction.id.desc()).limit(UNDO_HISTORY)
    s.execute(delete(CurationActionRow).where(CurationActionRow.action_id.not_in(keep)))


def bulk_set_status(db: Database, f: SampleFilter, status: str, description: str = "") -> CurationAction:
    """Set the status of every sample the filter matches, in one transaction, recording what to undo."""
    _check_status(status)
    with db.begin() as s:
        action = CurationAction(kind="bulk_status", new_status=status, criteria=f.model_dump(exclude_defaults=True),
                                description=description or f"set {status}: {f.describe()}")
        _record_and_update(s, action, matching_ids(f), status)
        _prune_undo_log(s)
        s.flush()
        s.expunge(action)
    return action


def last_undoable(db: Database) -> CurationAction | None:
    with db.session() as s:
        return s.scalars(select(CurationAction).where(CurationAction.undone_at.is_(None))
                         .order_by(CurationAction.id.desc()).limit(1)).first()


def undo_last_bulk(db: Database) -> CurationAction:
    """Give back the statuses the last not-yet-undone action changed. Samples edited one by one since then get
    their pre-action status too: the undo restores the action's snapshot."""
    with db.begin() as s:
        action = s.scalars(select(CurationAction).where(CurationAction.undone_at.is_(None))
                           .order_by(CurationAction.id.desc()).limit(1)).first()
        if action is None:
            raise CurationError("Nothing to undo: no bulk action has been done (or every one was undone).")
        has_rows = s.scalar(select(func.count()).select_from(CurationActionRow)
                            .where(CurationActionRow.action_id == action.id).limit(1))
        if action.row_count and not has_rows:
            raise CurationError(f"Action #{action.id} is too old to undo (only the last {UNDO_HISTORY} are kept).")
        old = (select(CurationActionRow.old_status)
               .where(CurationActionRow.action_id == action.id, CurationActionRow.sample_id == Sample.id)
               .scalar_subquery())
        s.execute(update(Sample).where(Sample.id.in_(
            select(CurationActionRow.sample_id).where(CurationActionRow.action_id == action.id)))
            .values(status=old, updated_at=utcnow()).execution_options(synchronize_session=False))
        action.undone_at = utcnow()
        s.flush()
        s.expunge(action)
    return action


# -- near-duplicate clusters -----------------------------------------------------------------------------------
@dataclass
class ClusterSummary:
    cluster_id: int
    size: int
    open: int  # members not yet rejected


def clusters(db: Database, limit: int = 200, only_open: bool = True) -> list[ClusterSummary]:
    """Clusters, biggest first. A cluster is its first sample (id == cluster id) plus those that point to it."""
    key = func.coalesce(Sample.cluster_id, Sample.id)
    members = select(key.label("cid"), Sample.status).where(or_(
        Sample.cluster_id.is_not(None),
        Sample.id.in_(select(Sample.cluster_id).where(Sample.cluster_id.is_not(None))))).subquery()
    q = (select(members.c.cid, func.count(), func.sum(cast(members.c.status != "rejected", Integer)))
         .group_by(members.c.cid).order_by(func.count().desc(), members.c.cid).limit(limit))
    with db.session() as s:
        rows = [ClusterSummary(int(c), int(n), int(o or 0)) for c, n, o in s.execute(q)]
    return [r for r in rows if r.open > 1] if only_open else rows


def cluster_members(db: Database, cluster_id: int) -> list[Sample]:
    with db.session() as s:
        return list(s.scalars(select(Sample).where(or_(Sample.cluster_id == cluster_id, Sample.id == cluster_id))
                              .order_by(Sample.id)))


def keep_one(db: Database, cluster_id: int, keep_id: int) -> CurationAction:
    """Approve one member of a near-duplicate cluster and reject the rest (undoable like a bulk action)."""
    ids = [m.id for m in cluster_members(db, cluster_id)]
    if not ids:
        raise CurationError(f"No near-duplicate cluster {cluster_id}.")
    if int(keep_id) not in ids:
        raise CurationError(f"Sample #{keep_id} is not in cluster {cluster_id} (members: {ids}).")
    with db.begin() as s:
        action = CurationAction(kind="keep_one", new_status="rejected", criteria={"cluster_id": cluster_id,
                                                                                   "keep": int(keep_id)},
                                description=f"cluster {cluster_id}: kept #{keep_id}, rejected the rest")
        s.add(action)
        s.flush()
        rest = [i for i in ids if i != int(keep_id)]
        keep = s.get(Sample, int(keep_id))
        s.execute(insert(CurationActionRow), [{"action_id": action.id, "sample_id": m.id, "old_status": m.status}
                                              for m in s.scalars(select(Sample).where(Sample.id.in_(ids)))])
        s.execute(update(Sample).where(Sample.id.in_(rest)).values(status="rejected", updated_at=utcnow())
                  .execution_options(synchronize_session=False))
        keep.status = "approved"
        action.row_count = len(ids)
        _prune_undo_log(s)
        s.flush()
        s.expunge(action)
    return action


# -- splits ----------------------------------------------------------------------------------------------------
def locked_split_ids(session) -> set[int]:
    """Samples a queued, running or finished run trained or evaluated on: their split must never change (an eval
    sample moved to train would leak into the next run; a trained-on sample moved to eval would flatter it)."""
    ids: set[int] = set()
    for train_ids, eval_ids in session.execute(select(TrainingRun.sample_ids, TrainingRun.eval_sample_ids)
                                               .where(TrainingRun.status.in_(RUNS_THAT_LOCK_SPLITS))):
        ids.update(train_ids or [])
        ids.update(eval_ids or [])
    return ids


def split_counts(db: Database, f: SampleFilter | None = None) -> dict[str, int]:
    with db.session() as s:
        q = select(Sample.split, func.count()).where(*conditions(f or SampleFilter(statuses=["approved"])))
        return {(k or "none"): n for k, n in s.execute(q.group_by(Sample.split))}
