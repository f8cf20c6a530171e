"""The one grammar for naming what answers a chat: what the dropdowns show, the CLI takes and the DB stores.

    base                                  the local base model
    run:3                                 finished training run 3's adapter ("run:3 (tiny)" shows its name)
    offline template teacher              the offline teacher that wrote the demo's samples (no key)
    openai:gpt-4.1-mini                   an API model of a vendor (anthropic:claude-haiku-4-5 ...)
    openai-compatible:MODEL@URL           any OpenAI-compatible server (vLLM, Ollama, llama.cpp server)

    format_label(kind="local", adapter_run=3, run_name="tiny")   # 'run:3 (tiny)'
    current_label("openai: gpt-4.1-mini")                        # 'openai:gpt-4.1-mini' (a stored older name)
    parse_label("openai-compatible:my-lora@http://127.0.0.1:8000/v1")

Names stored before this grammar ("base model", "run #3: tiny", "openai: gpt-4.1-mini",
"openai-compatible: m @ URL", the kind spelled openai_compatible) still parse, so old rows load.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from db.errors import UserError

LOCAL = "local"
COMPATIBLE = "openai-compatible"
OFFLINE = "offline"       # the offline template teacher: the demo's teacher, answering beside its student
OFFLINE_LABEL = "offline template teacher"
API_KINDS = ("openai", "anthropic", COMPATIBLE)
KINDS = (LOCAL, OFFLINE, *API_KINDS)
BASE = "base"
GRAMMAR = f"'{BASE}', 'run:N', 'openai:MODEL', 'anthropic:MODEL' or '{COMPATIBLE}:MODEL@URL'"

# run:3, run:3 (tiny); and the older run #3, run #3: tiny
_RUN = re.compile(r"^run\s*(?::\s*#?|#)\s*(\d+)(?:\s*\((.*)\)|:\s*(.*))?$")


class LabelError(UserError, ValueError):
    """A backend name that does not follow the grammar, worded for the user."""


def normalize_kind(kind: str) -> str:
    """The kind as users see and type it; `openai_compatible` is the older spelling of `openai-compatible`."""
    kind = (kind or "").strip()
    return COMPATIBLE if kind == "openai_compatible" else kind


@dataclass(frozen=True)
class ParsedLabel:
    kind: str
    model: str = ""
    adapter_run: int | None = None
    run_name: str = ""
    base_url: str | None = None


def format_label(kind: str, model: str = "", adapter_run: int | None = None, run_name: str = "",
                 base_url: str | None = None) -> str:
    kind = normalize_kind(kind)
    if kind == OFFLINE:
        return OFFLINE_LABEL
    if kind == LOCAL:
        if adapter_run is None:
            return BASE
        return f"run:{adapter_run} ({run_name})" if run_name else f"run:{adapter_run}"
    if kind == COMPATIBLE:
        return f"{COMPATIBLE}:{model}@{base_url}"
    return f"{kind}:{model}"


def current_label(label: str) -> str:
    """A stored name in today's grammar ('run #3: tiny' -> 'run:3 (tiny)'); text that is no name is kept."""
    try:
        p = parse_label(label)
    except LabelError:
        return label
    return format_label(p.kind, p.model, p.adapter_run, p.run_name, p.base_url)


def parse_label(label: str) -> ParsedLabel:
    text = (label or "").strip()
    if text in (BASE, "base model"):
        return ParsedLabel(LOCAL)
    if text in (OFFLINE_LABEL, OFFLINE):
        return ParsedLabel(OFFLINE)
    if m := _RUN.match(text):
        return ParsedLabel(LOCAL, adapter_run=int(m.group(1)), run_name=(m.group(2) or m.group(3) or "").strip())
    kind, sep, rest = text.partition(":")
    kind = normalize_kind(kind)
    if sep and kind == COMPATIBLE:
        model, at, url = rest.partition("@")
        if at and model.strip() and url.strip():
            return ParsedLabel(COMPATIBLE, model=model.strip(), base_url=url.strip())
    elif sep and kind in API_KINDS and rest.strip():
        return ParsedLabel(kind, model=rest.strip())
    raise LabelError(f"Unknown backend '{label}': expected {GRAMMAR}.")
