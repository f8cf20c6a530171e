"""How many torch threads each process uses, so generation and a training run share the cores.

    from training import threads
    threads.watch_training(db)                       # the app, once: generation checks the DB for a running run
    torch.set_num_threads(threads.generation_threads())   # the generation worker, before each batch step
    torch.set_num_threads(threads.training_threads())     # the training worker (training/sft.py main)
    threads.share_cores()                            # the app, at start: the runs it launches leave a core

torch's intra-op pool (OpenMP) busy-waits at every barrier. Two processes that each ask for every core (the
default) on a 2-core machine take turns on each core while both spin, and both slow down many times over: a
30-step demo run took 940 s beside generation instead of ~180 s (issue 11). Splitting the cores instead keeps
each pool's threads on a core of their own. Figures (bench/results/threads_cpu.txt, 2 cores): uncapped, a
training step took 41 s instead of 6.5 and generation ran at 2.2 tok/s instead of 27; capped, 10.5 s and 16.7.

The split: a training run started from the app takes cores - 1 (at least 1) threads (share_cores: the app
sets it for the workers it starts), one started where nothing generates (the CLI, the demo) takes every core;
generation takes every core while nothing trains and one core (at least 1) while a run is active. A training
run is a TrainingRun row with status 'running' (training/runs.py), checked at most every few seconds.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")

CHECK_EVERY_S = 5.0


def cores() -> int:
    """CPU cores this process may run on (the affinity mask, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


SHARE_ENV = "MOODSHELF_SHARE_CORES"  # "1" in the app and the workers it starts: a run leaves a core to generation


def share_cores() -> None:
    """Called by a process that generates (the app): training runs it starts, directly or through a sweep,
    inherit the setting and leave a core free. A run started elsewhere (`moodshelf train`, the demo, before
    the app serves) uses every core: nothing there generates while it trains."""
    os.environ[SHARE_ENV] = "1"


def training_threads(n_cores: int | None = None, sharing: bool | None = None) -> int:
    n = cores() if n_cores is None else n_cores
    sharing = os.environ.get(SHARE_ENV) == "1" if sharing is None else sharing
    return max(1, n - 1) if sharing else n


def generation_threads(training_active: bool | None = None, n_cores: int | None = None) -> int:
    """Threads for generation now: every core, or what a running training run leaves free."""
    n = cores() if n_cores is None else n_cores
    busy = training_running() if training_active is None else training_active
    return max(1, n - training_threads(n, sharing=True)) if busy else n


class TrainingWatch:
    """Whether a training run is active, from the DB, asked at most every `every_s` seconds (generation asks
    before every batch step; a query per step would cost more than it tells)."""

    def __init__(self, db, every_s: float = CHECK_EVERY_S):
        self.db, self.every_s = db, every_s
        self._checked, self._active = float("-inf"), False
        self._lock = threading.Lock()

    def __call__(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._checked >= self.every_s:
                self._checked, self._active = now, self._query()
            return self._active

    def _query(self) -> bool:
        from sqlalchemy import select

        from db.models import TrainingRun

        try:
            with self.db.session() as s:
                return s.scalars(select(TrainingRun.id).where(TrainingRun.status == "running").limit(1)).first() \
                    is not None
        except Exception:  # noqa: BLE001 - a DB hiccup must not stop generation; assume nothing trains
            return False


_watch: Callable[[], bool] | None = None


def off_main_thread(fn: Callable[[], T]) -> T:
    """Run fn on a short-lived thread and return what it returns (or raise what it raises).

    Why: torch's OpenMP pool (libgomp) is per thread. While two live threads of one process have each run a
    parallel region, both run theirs ~3x slower on 2 cores, even when one is idle (int8 matmul 35 us in the only
    such thread, 120-130 us with a second alive; measured with torch 2.13). The main thread lives as long as the
    process, so heavy torch work there (loading, merging) would slow the generation worker for good: it runs on a
    thread that ends instead, and the generation worker stays the only thread that computes."""
    box: dict[str, object] = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="moodshelf-load")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def watch_training(db) -> None:
    """Make this process's generation yield cores to training runs recorded in `db` (torch threads are per
    process, so the watch is too)."""
    global _watch
    _watch = TrainingWatch(db)


def training_running() -> bool:
    return bool(_watch and _watch())


def apply(n: int) -> None:
    """Set torch's intra-op threads to n, if not already (setting it is cheap, but not free per step)."""
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
