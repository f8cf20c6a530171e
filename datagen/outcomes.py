"""Why a generation job did not accept an answer, counted by reason, and how a job that stops short says so.

    reason_for(flags, near_duplicate=False)      # "title_cap", "invalid_json", "not_in_catalog", ...
    not_accepted_summary(job)                    # "116 near-duplicate, 12 over the per-title cap; 2 API calls failed"

A job stores one count per reason (generation_jobs.reasons) and, apart from them, the API calls that failed
after every retry (generation_jobs.failed_calls): a call that never produced an answer is not a rejected
sample. `moodshelf jobs`, the job's error line and the Generate tab all read these counts, so a job that ends
at 14 of 30 names what really stopped it, not the last transient error.
"""
from __future__ import annotations

import re

# Reason key -> how a count of it reads ("116 near-duplicate").
REASONS = {
    "near_duplicate": "near-duplicate",
    "exact_duplicate": "exact duplicate",
    "title_cap": "over the per-title cap",
    "invalid_json": "invalid JSON",
    "truncated": "cut off at the token limit",
    "wrong_format": "wrong answer format",
    "wrong_length": "too short or too long",
    "wrong_language": "wrong language",
    "repeated_title": "same title twice in one answer",
    "not_in_catalog": "not in the catalog",
    "other": "held for review",
}

# What to do about a job whose main loss is this reason.
HINTS = {
    "near_duplicate": "Widen the request grid, change the seed, or raise --near-dup-threshold (at most 0.96).",
    "exact_duplicate": "Widen the request grid or change the seed.",
    "title_cap": "Import more catalog books or raise --max-per-title.",
    "invalid_json": "The model does not answer in the requested JSON: try another model (raw answers are kept "
                    "on the rejected samples).",
    "truncated": "Answers hit the output token limit: ask for fewer books (--n-books) or use another model.",
    "wrong_format": "The answers do not have the requested shape: check the rejected samples' flags.",
    "wrong_length": "The answers are too short or too long: check the rejected samples' flags.",
    "wrong_language": "The model answers in the wrong language: try another model.",
    "repeated_title": "The model repeats titles within an answer: try another model.",
    "not_in_catalog": "The teacher recommends books outside the catalog: use --retrieval, import those books, or "
                      "review the needs_review samples.",
    "failed_calls": "API calls keep failing after retries: check the key, the model name and the service "
                    "(every call is in api_calls).",
}

_INVALID_JSON = re.compile(r"^format:(invalid_json|no_books_array|unparseable|book_\d+_missing_fields)")


def reason_for(flags: list[str], *, near_duplicate: bool = False) -> str:
    """The one reason an answer was not accepted: the first problem that made it rejected, else why it waits
    for review. Parse errors come first (nothing else about such an answer can be trusted)."""
    def has(prefix: str) -> bool:
        return any(f.startswith(prefix) for f in flags)

    if has("format:truncated"):
        return "truncated"
    if any(_INVALID_JSON.match(f) for f in flags):
        return "invalid_json"
    for prefix, reason in (("format:", "wrong_format"), ("length:", "wrong_length"), ("language:", "wrong_language"),
                           ("repeated:title_within", "repeated_title"), ("repeated:title_cap", "title_cap")):
        if has(prefix):
            return reason
    if near_duplicate:
        return "near_duplicate"
    if has("ungrounded:"):
        return "not_in_catalog"
    return "other"


def counted(reasons: dict[str, int]) -> list[tuple[str, int]]:
    """(reason, count) pairs, the largest first."""
    return sorted(((r, int(n)) for r, n in (reasons or {}).items() if n), key=lambda rn: (-rn[1], rn[0]))


def not_accepted_summary(reasons: dict[str, int], failed_calls: int = 0, last_error: str | None = None) -> str:
    """"116 near-duplicate, 12 over the per-title cap; 2 API calls failed after retries (last: timeout after
    60 s)", or "" when every answer was accepted."""
    parts = [f"{n} {REASONS.get(r, r)}" for r, n in counted(reasons)]
    text = ", ".join(parts)
    if failed_calls:
        calls = f"{failed_calls} API call{'s' if failed_calls != 1 else ''} failed after retries"
        calls += f" (last: {last_error})" if last_error else ""
        text = f"{text}; {calls}" if text else calls
    return text


def main_cause(reasons: dict[str, int], failed_calls: int = 0) -> str | None:
    """The reason (or "failed_calls") that cost the most answers."""
    ranked = counted(reasons)
    top = ranked[0] if ranked else None
    if failed_calls and (top is None or failed_calls >= top[1]):
        return "failed_calls"
    return top[0] if top else None


def stopped_short_message(accepted: int, target: int, reasons: dict[str, int], failed_calls: int,
                          last_error: str | None, *, exhausted: bool) -> str:
    """The error of a job that ran out of requests before reaching its target: every cause, counted."""
    attempts = accepted + sum(int(n) for n in (reasons or {}).values()) + failed_calls
    why = not_accepted_summary(reasons, failed_calls, last_error)
    cause = main_cause(reasons, failed_calls)
    hint = HINTS.get(cause, "") if cause else ""
    if exhausted and not hint:  # every request of the grid was used
        hint = HINTS["title_cap"]
    return (f"Only {accepted} of {target} samples were accepted after {attempts} requests"
            + (f". Not accepted: {why}." if why else ".") + (f" {hint}" if hint else ""))
