"""The optional LLM judge: an API model scores each answer 1-5 for how well it serves the reader's request.

    messages = judge_messages(request, answer, reference, language="en")
    score, reason = parse_judge_reply(backend_reply_text)     # (4, "fits the mood, one book is invented")

The judge sees the request, the answer and the reference answer (the teacher's), and replies with a JSON
object {"score": 1-5, "reason": "..."}. Asking for JSON in the prompt, rather than through each vendor's
schema/tool mechanism, lets one judge prompt run on every backend (OpenAI, Anthropic, any compatible
server); the reply is parsed leniently and a reply without a score is an error, never a silent 0.
"""
from __future__ import annotations

import json
import re

JUDGE_VERSION = "judge-v1"
JUDGE_SYSTEM = (
    "You grade book recommendations written for a reader in a particular mood and situation. Score the ANSWER "
    "from 1 to 5:\n"
    "5 = every book is real, fits the requested feelings and situation, with a specific reason and effect each;\n"
    "4 = good, with a small weakness; 3 = usable but generic or partly off the request;\n"
    "2 = mostly unhelpful, wrong format, or books that seem invented; 1 = no useful recommendation.\n"
    "The REFERENCE is an example of a good answer, not the only good one. The answer may be in Korean or "
    "English; judge it in its own language. Reply with JSON only: {\"score\": <1-5>, \"reason\": \"<one sentence>\"}"
)
JUDGE_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["score", "reason"],
                "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                               "reason": {"type": "string"}}}


class JudgeError(ValueError):
    """The judge's reply had no usable score."""


def judge_messages(request: str, answer: str, reference: str) -> list[dict]:
    user = f"REQUEST:\n{request}\n\nANSWER:\n{answer or '(empty)'}\n\nREFERENCE:\n{reference}"
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": user}]


_OBJECT = re.compile(r"\{.*?\}", re.S)
_SCORE = re.compile(r"score\W{0,4}([1-5](?:\.\d+)?)", re.I)


def parse_judge_reply(text: str) -> tuple[float, str]:
    """(score, reason) from a JSON reply, tolerating code fences and prose around it."""
    for m in _OBJECT.finditer(text or ""):
        try:
            obj = json.loads(m.group(0))
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and "score" in obj:
            try:
                score = float(obj["score"])
            except (TypeError, ValueError):
                continue
            if 1 <= score <= 5:
                return score, str(obj.get("reason", "")).strip()
    m = _SCORE.search(text or "")  # 'Score: 4 — ...' from a model that ignored the JSON instruction
    if m:
        return float(m.group(1)), text.strip()
    raise JudgeError(f"The judge's reply has no score from 1 to 5: {(text or '')[:200]!r}")
