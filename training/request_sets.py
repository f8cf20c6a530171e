"""Request sets for evaluation: requests without reference answers, drawn from the request grid with a seed that
no generation job used, or loaded from a JSONL file.

    requests, seed = grid_requests(db, ["en"], count=20)        # seed None: the first unused one from 9001
    requests = load_requests_file("reqs.jsonl")                 # every bad line listed; nothing loaded on error
    RecommendRequest.from_fields(**requests[0])                 # what the evaluation worker answers

A request is a dict of RecommendRequest fields (training/recommend.py), one JSON object per line in a file:

    {"language": "en", "emotion": "anxious", "effects": ["comfort"], "situation": "the commute"}
    {"language": "ko", "emotion": "외로움", "occupation": "간호사", "effects": "위로, 희망", "free_text": "짧은 글"}

Why "unseen": a generation job draws its requests from the grid with its seed (datagen/job_runner.py), so the
same seed would hand the model the very requests it was trained on. A drawn request that equals a stored
sample's request fields (whatever job made it) is skipped too, and the draw goes on until the set is full.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlalchemy import select

from datagen.grid import Grid
from db.engine import Database
from db.models import GenerationJob, Sample
from training.eval_config import EvalError
from training.reader_request import RecommendError, RecommendRequest

FIELDS = ("language", "emotion", "occupation", "effects", "situation", "focus", "free_text")
OPTIONAL_FIELDS = ("n_books",)
DEFAULT_GRID_SEED = 9001


def request_key(language: str, emotion: str, occupation: str, effects, situation: str, focus: str) -> tuple:
    """What makes two requests the same: the five fields, effects in any order."""
    if isinstance(effects, str):
        effects = effects.split(",")
    return (language, (emotion or "").strip(), (occupation or "").strip(),
            frozenset(e.strip() for e in effects or () if e and e.strip()), (situation or "").strip(),
            (focus or "").strip())


def used_seeds(db: Database) -> dict[int, list[int]]:
    """seed -> the generation jobs that drew their requests with it."""
    seeds: dict[int, list[int]] = {}
    with db.session() as s:
        for job_id, seed, config in s.execute(select(GenerationJob.id, GenerationJob.seed, GenerationJob.config)):
            for value in {seed, (config or {}).get("seed")}:
                if isinstance(value, int):
                    seeds.setdefault(value, []).append(job_id)
    return seeds


def unused_seed(db: Database, start: int = DEFAULT_GRID_SEED) -> int:
    """The first seed from `start` on that no generation job used."""
    used = used_seeds(db)
    seed = start
    while seed in used:
        seed += 1
    return seed


def stored_request_keys(db: Database, languages) -> set[tuple]:
    """The request fields of every stored sample (any status) in these languages."""
    with db.session() as s:
        rows = s.execute(select(Sample.language, Sample.emotion, Sample.occupation, Sample.effect, Sample.situation,
                                Sample.focus).where(Sample.language.in_(list(languages))))
        return {request_key(*row) for row in rows}


def grid_requests(db: Database, languages, count: int, seed: int | None = None) -> tuple[list[dict], int]:
    """`count` requests per language drawn from the default grid with `seed` (None: the first unused one),
    none equal to a stored sample's request; the requests and the seed. A seed a job used is refused."""
    used = used_seeds(db)
    if seed is None:
        seed = unused_seed(db)
    elif seed in used:
        jobs = ", ".join(f"#{j}" for j in sorted(used[seed]))
        raise EvalError(f"Seed {seed} was used by generation job {jobs}: its requests are the ones those samples "
                        f"were made from. Pick an unused seed, e.g. --seed {unused_seed(db, seed)}, or leave it "
                        "empty to get one.")
    taken = stored_request_keys(db, languages)
    out: list[dict] = []
    for language in languages:
        grid = Grid.default(language)
        size = len(grid.emotions) * len(grid.occupations) * len(grid.effects) * len(grid.situations) * \
            len(grid.focus_levels)
        n = count
        while True:
            # Grid.sample draws one request at a time from one rng, so a longer draw keeps the shorter one's
            # requests as its prefix: the set for a seed stays the same when more are needed.
            fresh, seen = [], set()
            for req in grid.sample(n, seed):
                key = request_key(req.language, req.emotion, req.occupation, req.effects, req.situation, req.focus)
                if key not in taken and key not in seen:
                    seen.add(key)
                    fresh.append(req)
            if len(fresh) >= count or n >= size:
                break
            n = min(size, n * 2)
        if len(fresh) < count:
            raise EvalError(f"Only {len(fresh)} {language} grid requests are not already stored samples: ask for "
                            f"--count {len(fresh)} or fewer, or load a request file.")
        out += [{"language": r.language, "emotion": r.emotion, "occupation": r.occupation,
                 "effects": list(r.effects), "situation": r.situation, "focus": r.focus, "free_text": ""}
                for r in fresh[:count]]
    return out, seed


def parse_request(obj, where: str) -> tuple[dict | None, list[str]]:
    """One request object checked field by field: (the cleaned request, None) or (None, its problems)."""
    if not isinstance(obj, dict):
        return None, [f"{where}: expected a JSON object with {', '.join(FIELDS)}, got {type(obj).__name__}"]
    problems = []
    unknown = sorted(set(obj) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(unknown)} (use {', '.join(FIELDS)})")
    if not obj.get("language"):
        problems.append(f"{where}: 'language' is missing (ko or en)")
    for name in FIELDS:
        value = obj.get(name)
        if name == "effects":
            ok = value is None or isinstance(value, str) or \
                (isinstance(value, list) and all(isinstance(e, str) for e in value))
            if not ok:
                problems.append(f"{where}: 'effects' must be a list of strings or a comma-separated string")
        elif value is not None and not isinstance(value, str):
            problems.append(f"{where}: '{name}' must be a string")
    n_books = obj.get("n_books", 3)
    if not isinstance(n_books, int) or isinstance(n_books, bool):
        problems.append(f"{where}: 'n_books' must be a whole number")
    if problems:
        return None, problems
    try:
        req = RecommendRequest.from_fields(obj["language"], obj.get("emotion") or "", obj.get("occupation") or "",
                                           obj.get("effects") or (), obj.get("situation") or "",
                                           obj.get("focus") or "", obj.get("free_text") or "", n_books=n_books)
    except RecommendError as e:
        return None, [f"{where}: {e}"]
    return request_fields(req), []


def request_fields(req: RecommendRequest) -> dict:
    d = {"language": req.language, "emotion": req.emotion, "occupation": req.occupation,
         "effects": list(req.effects), "situation": req.situation, "focus": req.focus, "free_text": req.free_text}
    if req.n_books != 3:
        d["n_books"] = req.n_books
    return d


def load_requests_file(path: str | os.PathLike) -> list[dict]:
    """Every line of a JSONL file as a request; any bad line: EvalError listing each one, nothing loaded."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise EvalError(f"No request file {p}: give the path of a JSONL file, one request per line.") from None
    except UnicodeDecodeError as e:
        raise EvalError(f"{p} is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8.") from None
    requests, problems = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"line {number}: not JSON ({e.msg} at column {e.colno})")
            continue
        req, bad = parse_request(obj, f"line {number}")
        problems += bad
        if req is not None:
            requests.append(req)
    if problems:
        raise EvalError([f"{p}: {len(problems)} problem(s), nothing loaded"] + problems)
    if not requests:
        raise EvalError(f"{p} has no requests: write one JSON object per line ({', '.join(FIELDS)}).")
    return requests


def file_set_name(path: str | os.PathLike) -> str:
    """How a file's request set is named: its name and a hash of its content (an edited file is another set)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:8]
    return f"file {Path(path).name} {digest}"


def grid_set_name(languages, count: int, seed: int) -> str:
    return f"grid {','.join(languages)} seed {seed} x{count}"
