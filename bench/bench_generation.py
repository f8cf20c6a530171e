"""Generation throughput against a fake OpenAI server with a fixed latency: moodshelf's engine (bounded
concurrency, one transaction per sample, call log) next to the sequential loop a notebook would write
(call, parse, insert), in the same run, on the same server, with the same official SDK.

    python bench/bench_generation.py --latency 0.5 --concurrency 8 --count 64

Target: ours >= 0.8 x concurrency / latency samples per second.
"""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the fake servers live with the tests


def notebook_loop(base_url: str, messages_for, n: int, db_path: str) -> float:
    """What a hand-written notebook does: one call at a time, parse, insert."""
    import openai

    from datagen.prompts import answer_schema

    client = openai.OpenAI(base_url=base_url, api_key="sk-bench", max_retries=0)
    con = sqlite3.connect(db_path)
    con.execute("create table samples (id integer primary key, output text)")
    t0 = time.perf_counter()
    for i in range(n):
        resp = client.chat.completions.create(
            model="gpt-4.1-mini", messages=messages_for(i),
            response_format={"type": "json_schema", "json_schema": {"name": "b", "schema": answer_schema(3)}})
        obj = json.loads(resp.choices[0].message.content)
        con.execute("insert into samples (output) values (?)", (json.dumps(obj, ensure_ascii=False),))
        con.commit()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--count", type=int, default=64)
    args = ap.parse_args()

    from fakes import FakeOpenAIServer

    home = tempfile.mkdtemp(prefix="moodshelf-bench-")
    os.environ.update(MOODSHELF_HOME=home, OPENAI_API_KEY="sk-bench-000000")
    os.environ.pop("DATABASE_URL", None)
    import openai  # noqa: F401 - imports are outside both timings
    from datagen import job_runner  # noqa: F401
    from datagen.catalog import load_builtin_catalog
    from datagen.job_config import JobConfig
    from datagen.jobs import create_job, run_job
    from db.engine import open_db

    db = open_db()
    load_builtin_catalog(db)
    with FakeOpenAIServer() as server:
        server.latency = args.latency
        os.environ["OPENAI_BASE_URL"] = server.base_url
        cfg = JobConfig(provider="openai", language="en", count=args.count, concurrency=args.concurrency)
        job_id = create_job(db, cfg)
        t0 = time.perf_counter()
        job = run_job(db, job_id)
        ours = time.perf_counter() - t0
        assert job.accepted == args.count, job.error

        from datagen.job_runner import JobRunner

        runner = JobRunner(db, job_id)
        _, _, uses = runner._load_state()
        requests = runner.grid.sample(args.count, seed=99)
        baseline = notebook_loop(server.base_url, lambda i: runner._task(i, requests[i], uses).messages,
                                 args.count, str(Path(home) / "notebook.db"))

    target = 0.8 * args.concurrency / args.latency
    print(f"{'generation, fake OpenAI, latency ' + str(args.latency) + ' s, ' + str(args.count) + ' samples':<52}"
          f"{'samples/s':>10}")
    print(f"{'moodshelf engine, concurrency ' + str(args.concurrency):<52}{args.count / ours:>10.2f}")
    print(f"{'baseline: sequential notebook loop':<52}{args.count / baseline:>10.2f}")
    print(f"{'speed-up':<52}{baseline / ours:>9.1f}x")
    print(f"{'target 0.8 x concurrency / latency':<52}{target:>10.2f}  "
          f"{'met' if args.count / ours >= target else 'NOT met'}")


if __name__ == "__main__":
    main()
