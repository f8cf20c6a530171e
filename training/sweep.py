"""Sweeps: a small grid of training runs, one after another, then one table to compare them.

    moodshelf sweep --grid lora_r=8,128,256 --max-steps 30
    moodshelf sweep --grid target_modules=attention,all-linear --grid lora_r=8,64

Every run is an ordinary training run (its own config.yaml, log and adapter) that carries the sweep's
name, so the Train tab and `moodshelf runs` show them too. The Train tab starts a sweep as a worker of its
own (training/sweep_worker.py); the CLI runs it in the foreground.
"""
from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Callable

from sqlalchemy import select

from db.engine import Database
from db.models import TrainingRun
from training.config import ConfigError, TrainConfig

COLUMNS = ("run", "status", "setting", "train_loss", "eval_loss", "runtime_s", "trainable_params", "peak_memory_mb",
           "adapter_mb")


def parse_grid(specs: list[str]) -> dict[str, list]:
    """["lora_r=8,128", "target_modules=attention,all-linear"] -> {"lora_r": [8, 128], ...}, each value converted
    by its TrainConfig field's type (workers/config.parse_value), every problem listed at once."""
    from workers.config import field_shape, parse_value

    fields = TrainConfig.model_fields
    grid, problems = {}, []
    for spec in specs:
        key, _, values = spec.partition("=")
        key = key.strip().replace("-", "_")
        if key not in fields:
            problems.append(f"unknown setting '{key}' in --grid {spec}")
            continue
        try:
            grid[key] = [parse_value(TrainConfig, key, v.strip()) for v in values.split(",") if v.strip()]
        except ValueError:
            problems.append(f"--grid {spec}: values must be {field_shape(fields[key].annotation)[0].__name__}")
            continue
        if not grid[key]:
            problems.append(f"--grid {spec} has no values")
    if not grid and not problems:
        problems.append("a sweep needs at least one --grid setting=value1,value2")
    if problems:
        raise ConfigError(problems)
    return grid


def sweep_configs(base: TrainConfig, grid: dict[str, list]) -> list[tuple[str, TrainConfig]]:
    """One (label, config) per combination of the grid, every combination's problems listed at once."""
    out, problems = [], []
    keys = list(grid)
    for combo in itertools.product(*(grid[k] for k in keys)):
        cfg = base.replace(**dict(zip(keys, combo)))
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, combo))
        problems += [f"{label}: {p}" for p in cfg.problems()]
        out.append((label, cfg))
    if problems:
        raise ConfigError(problems)
    return out


def run_sweep(db: Database, base: TrainConfig, grid: dict[str, list], name: str | None = None,
              run_one: Callable[[Database, TrainConfig, str], int] | None = None,
              should_stop: Callable[[], bool] | None = None) -> str:
    """Run every configuration of the grid, one after another, until should_stop() says so; returns the sweep's
    name. In the foreground (`moodshelf sweep`), or as the body of a sweep worker (training/sweep_worker.py)."""
    from training.runs import create_run, start_run, wait_for_run

    configs = sweep_configs(base, grid)  # all validated before the first run starts
    name = name or f"sweep {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S}"
    for label, cfg in configs:
        if should_stop is not None and should_stop():
            break
        run_id = create_run(db, cfg, name=f"{name}: {label}")
        with db.begin() as s:
            s.get(TrainingRun, run_id).sweep = name
        if run_one is not None:
            run_one(db, cfg, run_id)
        else:
            start_run(db, run_id)
            wait_for_run(db, run_id)
    return name


def sweep_table(db: Database, name: str) -> list[dict]:
    with db.session() as s:
        runs = list(s.scalars(select(TrainingRun).where(TrainingRun.sweep == name).order_by(TrainingRun.id)))
    return [{"run": r.id, "status": r.status, "setting": r.name.split(": ", 1)[-1],
             "train_loss": r.final_loss, "eval_loss": r.eval_loss, "runtime_s": r.runtime_seconds,
             "trainable_params": r.trainable_params, "peak_memory_mb": r.peak_memory_mb,
             "adapter_mb": r.adapter_size_mb} for r in runs]


def format_table(rows: list[dict]) -> str:
    def cell(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    widths = {c: max(len(c), *(len(cell(r[c])) for r in rows)) if rows else len(c) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS)]
    lines += ["  ".join(cell(r[c]).ljust(widths[c]) for c in COLUMNS) for r in rows]
    return "\n".join(lines)


def sweep_names(db: Database) -> list[str]:
    with db.session() as s:
        return [n for (n,) in s.execute(select(TrainingRun.sweep).where(TrainingRun.sweep.is_not(None))
                                        .group_by(TrainingRun.sweep).order_by(TrainingRun.sweep.desc()))]
