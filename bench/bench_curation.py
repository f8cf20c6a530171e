"""Curation speed at 100,000 samples in SQLite: a filtered page (count + one page of rows, what the Curate tab
asks for) and a bulk status change on 50,000 rows (with its undo log), next to two baselines measured in the
same run: the same queries without migration 0004's indexes, and a naive version that loads every row into
Python (filters, sorts and pages there; a bulk action that sets each ORM object's status).

    python bench/bench_curation.py                       # 100,000 samples, ~2 minutes on 2 CPU cores
    python bench/bench_curation.py --samples 20000 --repeat 5

Targets: a filtered page in under 300 ms server-side, a bulk action on 50,000 rows in under 5 s.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PAGE_TARGET_MS, BULK_TARGET_S = 300, 5.0
STATUSES = ["pending"] * 5 + ["approved"] * 3 + ["needs_review", "rejected"]
PROVIDERS = [("offline", "offline-template", "seed-v1"), ("openai", "gpt-4.1-mini", "teacher-v1"),
             ("anthropic", "claude-haiku-4-5", "teacher-v1"), ("import", "alpaca-ko", "import")]
# 0004's indexes: dropped for the "without indexes" baseline, then recreated.
CURATION_INDEXES = {"ix_samples_status_created": "(status, created_at)", "ix_samples_created_at": "(created_at)",
                    "ix_samples_grounded_count": "(grounded_count)", "ix_samples_model": "(model)",
                    "ix_samples_output_chars": "(output_chars)", "ix_samples_prompt_version": "(prompt_version)"}


def seed_texts(db, count: int) -> list[dict]:
    """Real sample texts from the offline teacher, in both languages, to copy with variations."""
    from sqlalchemy import select

    from datagen.catalog import load_builtin_catalog
    from datagen.job_config import JobConfig
    from datagen.jobs import create_job, run_job
    from db.models import Sample

    load_builtin_catalog(db)
    for lang in ("en", "ko"):
        run_job(db, create_job(db, JobConfig(language=lang, count=count, seed=7)))
    with db.session() as s:
        return [{k: getattr(x, k) for k in ("instruction", "input", "output", "emotion", "occupation", "effect",
                                             "situation", "focus", "language", "books", "grounded_count")}
                for x in s.scalars(select(Sample))]


def build(db, n: int, seeds: list[dict]) -> None:
    """n samples by bulk insert (not through the API): varied status, provider, flags, clusters, dates."""
    from sqlalchemy import delete, insert

    from db.models import Sample

    rng = random.Random(0)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rare = ["insomnia", "night shift", "first marathon", "moving abroad", "exam week"]
    with db.begin() as s:
        s.execute(delete(Sample))
    batch: list[dict] = []
    for i in range(n):
        src = seeds[rng.randrange(len(seeds))]
        provider, model, version = PROVIDERS[rng.randrange(len(PROVIDERS))]
        ungrounded = rng.random() < 0.15
        flags = ([f"ungrounded:{src['books'][0]['title']}"] if ungrounded else []) + (
            ["format:book_2_no_effect"] if rng.random() < 0.03 else [])
        cluster = rng.randrange(1, n) if rng.random() < 0.05 else None
        if cluster:
            flags.append(f"near_duplicate:cluster_{cluster}")
        note = f"\n(note {i}: {rare[i % 5]})" if rng.random() < 0.01 else f"\n(note {i})"
        batch.append({**src, "output": src["output"] + note, "provider": provider, "model": model,
                      "prompt_version": version, "status": rng.choice(STATUSES), "quality_flags": flags,
                      "grounded_count": max(0, src["grounded_count"] - (1 if ungrounded else 0)),
                      "raw_output": src["output"], "content_hash": f"{i:064x}", "cluster_id": cluster,
                      "created_at": start + timedelta(seconds=30 * i), "updated_at": start + timedelta(seconds=30 * i)})
        if len(batch) == 10_000:
            with db.begin() as s:
                s.execute(insert(Sample), batch)
            batch = []
    if batch:
        with db.begin() as s:
            s.execute(insert(Sample), batch)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def cases():
    from db.curation import SampleFilter as F

    return [
        ("all samples, newest first", F(), "newest", 0),
        ("pending, newest", F(statuses=["pending"]), "newest", 0),
        ("needs_review + openai, longest", F(statuses=["needs_review"], providers=["openai"]), "longest", 0),
        ("emotion + grounded, most grounded", F(emotion="anxious", grounded="yes"), "most grounded", 0),
        ("ko + model + prompt version + effect", F(languages=["ko"], models=["gpt-4.1-mini"],
                                                   prompt_versions=["teacher-v1"], effect="calm"), "oldest", 0),
        ("flag contains 'ungrounded'", F(flag="ungrounded"), "newest", 0),
        ("in a duplicate cluster", F(duplicates="yes"), "newest", 0),
        ("text search 'insomnia'", F(text="insomnia"), "newest", 0),
        ("approved, page 600 (offset 30,000)", F(statuses=["approved"]), "newest", 30_000),
    ]


def naive_page(db, f, sort, offset, limit=50):
    """What a first version would do: every row into Python, then filter, sort and slice."""
    from sqlalchemy import select

    from db.models import Sample

    with db.session() as s:
        rows = list(s.scalars(select(Sample)))
    keep = [r for r in rows if (not f.statuses or r.status in f.statuses)
            and (not f.providers or r.provider in f.providers)
            and (not f.emotion or r.emotion == f.emotion)
            and (not f.text or f.text in r.output or f.text in r.instruction or f.text in r.input)
            and (not f.flag or any(f.flag in x for x in r.quality_flags))]
    keep.sort(key=lambda r: r.created_at, reverse=sort == "newest")
    return len(keep), keep[offset:offset + limit]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=15, help="timed runs per filter (median and p95)")
    args = ap.parse_args()

    home = tempfile.mkdtemp(prefix="moodshelf-bench-curate-")
    os.environ["MOODSHELF_HOME"] = home
    os.environ.pop("DATABASE_URL", None)
    from sqlalchemy import func, select

    from db.curation import SampleFilter, bulk_set_status, page, undo_last_bulk
    from db.engine import open_db
    from db.models import Sample

    db = open_db()
    t0 = time.perf_counter()
    seeds = seed_texts(db, 150)
    build(db, args.samples, seeds)
    n = db.session().scalar(select(func.count()).select_from(Sample))
    size_mb = Path(home, "moodshelf.db").stat().st_size / 2**20
    print(f"{n:,} samples in SQLite ({size_mb:.0f} MiB), built in {time.perf_counter() - t0:.1f} s; "
          f"median and p95 of {args.repeat} runs; a page = COUNT of the matches + 50 rows as ORM objects\n")

    results = {}
    for label, f, sort, offset in cases():
        page(db, f, sort, offset, 50)  # warm the page cache, as a server that has been up a while has it
        results[label] = timed(lambda: page(db, f, sort, offset, 50), args.repeat)
        results[label].append(page(db, f, sort, offset, 50).total)

    with db.engine.begin() as conn:
        for name in CURATION_INDEXES:
            conn.exec_driver_sql(f"DROP INDEX {name}")
        conn.exec_driver_sql("ANALYZE")
    without = {label: timed(lambda: page(db, f, sort, offset, 50), max(3, args.repeat // 3))
               for label, f, sort, offset in cases()}
    with db.engine.begin() as conn:
        for name, cols in CURATION_INDEXES.items():
            conn.exec_driver_sql(f"CREATE INDEX {name} ON samples {cols}")
        conn.exec_driver_sql("ANALYZE")

    print(f"{'filtered page':<40}{'matches':>9}{'median ms':>11}{'p95 ms':>9}{'no 0004 idx':>13}  target")
    worst = 0.0
    for label, xs in results.items():
        total, xs = xs[-1], xs[:-1]
        worst = max(worst, p95(xs) * 1000)
        print(f"{label:<40}{total:>9,}{statistics.median(xs) * 1000:>11.1f}{p95(xs) * 1000:>9.1f}"
              f"{statistics.median(without[label]) * 1000:>13.1f}  < {PAGE_TARGET_MS} ms")
    naive_cases = [c for c in cases() if c[0] in ("pending, newest", "text search 'insomnia'")]
    for label, f, sort, offset in naive_cases:
        xs = timed(lambda: naive_page(db, f, sort, offset), 2)
        print(f"{'naive (all rows into Python): ' + label:<60}{statistics.median(xs) * 1000:>9.0f} ms")
    print(f"worst p95 {worst:.1f} ms: page target {'met' if worst < PAGE_TARGET_MS else 'NOT met'}\n")

    # A bulk action on every pending sample: half of the samples (STATUSES), ~50,000 at 100,000.
    target = SampleFilter(statuses=["pending"])
    t0 = time.perf_counter()
    action = bulk_set_status(db, target, "rejected")
    bulk_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    undo_last_bulk(db)
    undo_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with db.begin() as s:  # naive: every object loaded and changed through the ORM, no undo log
        changed = 0
        for sample in s.scalars(select(Sample).where(Sample.status == "pending")):
            sample.status = "rejected"
            changed += 1
    naive_s = time.perf_counter() - t0
    print(f"{'bulk action':<40}{'rows':>9}{'seconds':>11}  target")
    print(f"{'set status (with undo log)':<40}{action.row_count:>9,}{bulk_s:>11.2f}  < {BULK_TARGET_S:.0f} s: "
          f"{'met' if bulk_s < BULK_TARGET_S else 'NOT met'}")
    print(f"{'undo it':<40}{action.row_count:>9,}{undo_s:>11.2f}")
    print(f"{'naive: ORM objects one by one, no undo':<40}{changed:>9,}{naive_s:>11.2f}")


if __name__ == "__main__":
    main()
