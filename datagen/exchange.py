"""Import and export samples as files.

    moodshelf samples import data.jsonl            # alpaca {"instruction","input","output"} or {"messages": [...]}
    moodshelf samples import data.csv              # columns instruction, input, output
    moodshelf samples export out.jsonl --format alpaca|chat|openai

Import reads and checks the whole file first: one bad row (or an unknown format) and nothing is imported, with
every problem listed by line. Imported samples are validated and grounded like generated ones. Export writes the
approved samples of a filter and checks every record against its format before the file appears.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from datagen.csv_lines import CsvProblem, dict_records
from datagen.grounding import CatalogIndex
from datagen.prompts import LABELS, student_prompt
from datagen.validation import content_hash, hangul_ratio, status_for, validate_output
from db.curation import SampleFilter, conditions
from db.engine import Database
from db.errors import UserError
from db.models import Sample

FORMATS = ("alpaca", "chat", "openai")
IMPORT_SUFFIXES = (".jsonl", ".json", ".csv")
ROLES = {"system", "user", "assistant"}
IMPORT_PROVIDER = "import"


class ExchangeError(UserError, ValueError):
    """A file that cannot be imported or an export that cannot be written; `problems` lists every bad row."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        detail = "".join(f"\n  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(message + detail + more)


# -- reading ---------------------------------------------------------------------------------------------------
@dataclass
class ImportedRow:
    line: int
    instruction: str
    input: str
    output: str
    language: str | None = None


def _from_record(rec: object, line: int) -> ImportedRow:
    """One alpaca or chat-messages record -> a row, or ValueError saying what is wrong with it."""
    if not isinstance(rec, dict):
        raise ValueError(f"expected a JSON object, got {type(rec).__name__}")
    lang = rec.get("language") if isinstance(rec.get("language"), str) else None
    if "messages" in rec:
        msgs = rec["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise ValueError("'messages' must be a list of {role, content} objects")
        bad = [m.get("role") for m in msgs if m.get("role") not in ROLES or not isinstance(m.get("content"), str)]
        if bad:
            raise ValueError(f"message role {bad[0]!r} or its content is not valid (roles: system, user, assistant)")
        users = [m["content"] for m in msgs if m["role"] == "user"]
        answers = [m["content"] for m in msgs if m["role"] == "assistant"]
        if len(users) != 1 or len(answers) != 1 or msgs[-1]["role"] != "assistant":
            raise ValueError("a chat sample needs exactly one user turn followed by one assistant turn")
        # The student prompt is instruction + blank line + input (datagen.prompts.student_prompt): split it back.
        instruction, _, input_text = users[0].strip().partition("\n\n")
        return _checked(ImportedRow(line, instruction, input_text, answers[0], lang))
    if "instruction" in rec or "output" in rec:
        for key in ("instruction", "input", "output"):
            if rec.get(key) is not None and not isinstance(rec.get(key), str):
                raise ValueError(f"'{key}' must be text")
        return _checked(ImportedRow(line, rec.get("instruction") or "", rec.get("input") or "",
                                    rec.get("output") or "", lang))
    raise ValueError(f"neither alpaca (instruction/input/output) nor chat (messages) fields; keys: {sorted(rec)[:8]}")


def _checked(row: ImportedRow) -> ImportedRow:
    row.instruction, row.input, row.output = row.instruction.strip(), row.input.strip(), row.output.strip()
    missing = [k for k in ("instruction", "output") if not getattr(row, k)]
    if missing:
        raise ValueError(f"empty {' and '.join(missing)}")
    if row.language is not None and row.language not in LABELS:
        raise ValueError(f"language {row.language!r} is not one of {', '.join(LABELS)}")
    return row


def read_rows(data: bytes, name: str) -> list[ImportedRow]:
    """Parse a whole file; raise ExchangeError listing every bad row, or return every row."""
    suffix = Path(name).suffix.lower()
    if suffix not in IMPORT_SUFFIXES:
        raise ExchangeError(f"{name}: unknown file format '{suffix or 'no extension'}'. Import .jsonl or .json "
                            f"(alpaca instruction/input/output, or chat messages) or .csv (instruction, input, "
                            f"output columns); nothing was imported.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ExchangeError(f"{name} is not UTF-8 text (byte {e.start}); nothing was imported.") from e
    records: list[tuple[int, object]] = []
    problems: list[str] = []
    if suffix == ".jsonl":
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append((i, json.loads(line)))
                except json.JSONDecodeError as e:
                    problems.append(f"line {i}: not valid JSON ({e.msg} at column {e.colno})")
    elif suffix == ".json":
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            raise ExchangeError(f"{name}: not valid JSON ({e.msg}, line {e.lineno}); nothing was imported.") from e
        if not isinstance(doc, list):
            raise ExchangeError(f"{name}: a .json file must hold a list of samples; nothing was imported.")
        records = [(i, r) for i, r in enumerate(doc, 1)]
    else:
        try:
            header, csv_rows = dict_records(text)
        except CsvProblem as e:
            raise ExchangeError(f"{name}: {e}; nothing was imported.") from None
        if "instruction" not in header or "output" not in header:
            raise ExchangeError(f"{name}: a CSV needs the columns instruction, input, output (found: "
                                f"{', '.join(header) or 'none'}); nothing was imported.")
        try:
            # The line each record starts on (quoted fields may span lines); blank rows are skipped.
            for line, r in csv_rows:
                if any((v or "").strip() for v in r.values() if isinstance(v, str)) or None in r:
                    records.append((line, r))
        except CsvProblem as e:  # the file cannot be read past this point
            problems.append(str(e))
    what = "row" if suffix == ".json" else "line"
    rows: list[ImportedRow] = []
    for i, rec in records:
        if isinstance(rec, dict) and None in rec:
            problems.append(f"{what} {i}: more fields than the header has")
            continue
        try:
            rows.append(_from_record(rec, i))
        except ValueError as e:
            problems.append(f"{what} {i}: {e}")
    if problems:
        raise ExchangeError(f"{name}: {len(problems)} bad row(s); nothing was imported.", problems)
    if not rows:
        raise ExchangeError(f"{name}: no samples found; nothing was imported.")
    return rows


def request_fields(input_text: str, language: str) -> dict[str, str | None]:
    """The structured columns, read back from the labelled input lines ("Emotion: anxious")."""
    out: dict[str, str | None] = {k: None for k in ("emotion", "occupation", "effect", "situation", "focus")}
    by_label = {LABELS[language][k].lower(): k for k in out}
    for line in input_text.splitlines():
        label, sep, value = line.partition(":")
        if sep and label.strip().lower() in by_label and value.strip():
            out[by_label[label.strip().lower()]] = value.strip()[:100]
    return out


# -- importing -------------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    imported: int = 0
    skipped_duplicates: list[int] = field(default_factory=list)  # lines already in the database or the file
    statuses: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        by = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        lines = ", ".join(map(str, self.skipped_duplicates[:10])) + ("…" if len(self.skipped_duplicates) > 10 else "")
        dup = (f"; {len(self.skipped_duplicates)} skipped as exact duplicates (lines {lines})"
               if self.skipped_duplicates else "")
        return f"{self.imported} samples ({by or 'none'}){dup}"


def import_samples(db: Database, data: bytes, name: str, *, index: CatalogIndex | None, model: str = "",
                   n_books: int = 3) -> ImportReport:
    rows = read_rows(data, name)
    report = ImportReport()
    label = model or Path(name).stem
    with db.begin() as s:
        hashes = {content_hash(r.instruction, r.input, r.output): r for r in reversed(rows)}
        known = set(s.scalars(select(Sample.content_hash).where(Sample.content_hash.in_(list(hashes)))))
        seen: set[str] = set()
        for r in rows:
            h = content_hash(r.instruction, r.input, r.output)
            if h in known or h in seen:
                report.skipped_duplicates.append(r.line)
                continue
            seen.add(h)
            language = r.language or ("ko" if hangul_ratio(r.output) >= 0.5 else "en")
            v = validate_output(r.output, language=language, n_books=n_books, index=index)
            status = status_for(v)
            s.add(Sample(instruction=r.instruction, input=r.input, output=r.output, language=language,
                         provider=IMPORT_PROVIDER, model=label[:200], prompt_version=IMPORT_PROVIDER, status=status,
                         quality_flags=v.flags, books=[it.as_dict() for it in v.items],
                         grounded_count=v.grounded_count, raw_output=r.output, content_hash=h,
                         **request_fields(r.input, language)))
            report.statuses[status] += 1
            report.imported += 1
    return report


# -- exporting -------------------------------------------------------------------------------------------------
def record_for(sample: Sample, fmt: str, system_prompt: str = "") -> dict:
    if fmt == "alpaca":
        return {"instruction": sample.instruction, "input": sample.input or "", "output": sample.output}
    messages = [{"role": "user", "content": student_prompt(sample.instruction, sample.input or "")},
                {"role": "assistant", "content": sample.output}]
    if fmt == "openai" and system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return {"messages": messages}


def format_problems(rec: dict, fmt: str) -> list[str]:
    """What makes a record invalid for its format (empty list: valid)."""
    if fmt == "alpaca":
        p = [f"'{k}' must be text" for k in ("instruction", "input", "output") if not isinstance(rec.get(k), str)]
        p += [f"'{k}' is empty" for k in ("instruction", "output")
              if isinstance(rec.get(k), str) and not rec[k].strip()]
        return p + ([f"unexpected keys {sorted(set(rec) - {'instruction', 'input', 'output'})}"]
                    if set(rec) - {"instruction", "input", "output"} else [])
    msgs = rec.get("messages")
    if set(rec) != {"messages"} or not isinstance(msgs, list) or not msgs:
        return ["a record is {\"messages\": [...]} with a non-empty list"]
    p = []
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            p.append(f"message {i}: role must be one of system, user, assistant")
        elif not isinstance(m.get("content"), str) or not m["content"].strip():
            p.append(f"message {i}: content must be non-empty text")
        elif set(m) - {"role", "content"}:
            p.append(f"message {i}: unexpected keys {sorted(set(m) - {'role', 'content'})}")
    roles = [m.get("role") for m in msgs if isinstance(m, dict)]
    if "assistant" not in roles or "user" not in roles:
        p.append("needs a user and an assistant message")
    if "system" in roles and (roles.index("system") != 0 or fmt == "chat"):
        p.append("a system message may only come first, and only in the openai format")
    if roles and roles[-1] != "assistant":
        p.append("the last message must be the assistant's answer")
    return p


def export_samples(db: Database, path: str | Path, fmt: str, *, f: SampleFilter | None = None,
                   system_prompt: str = "") -> int:
    """Write the approved samples the filter matches; returns how many. Nothing is written on any error."""
    if fmt not in FORMATS:
        raise ExchangeError(f"Unknown export format {fmt!r}: use one of {', '.join(FORMATS)}.")
    f = f or SampleFilter()
    samples = []
    # Only approved samples leave: a filter on other statuses exports nothing.
    if not f.statuses or "approved" in f.statuses:
        f = f.model_copy(update={"statuses": ["approved"]})
        with db.session() as s:
            samples = list(s.scalars(select(Sample).where(*conditions(f)).order_by(Sample.id)))
    if not samples:
        raise ExchangeError(f"Nothing to export: no approved samples match ({f.describe()}). Approve samples or "
                            f"widen the filter.")
    records, problems = [], []
    for sm in samples:
        rec = record_for(sm, fmt, system_prompt)
        problems += [f"sample #{sm.id}: {p}" for p in format_problems(rec, fmt)]
        records.append(rec)
    if problems:
        raise ExchangeError(f"{len(problems)} record(s) do not fit the {fmt} format; nothing was written.", problems)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a half-written file never replaces a good one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for rec in records:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return len(records)
