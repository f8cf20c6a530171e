"""The seed format — instruction / input / output — and the teacher prompts, versioned.

    instruction: 불안한 직장인에게 위로와 안정을 주는 책 3권을 추천해줘. 각 책마다 추천 이유와 감정적 효과를 설명해줘.
    input:       감정: 불안함\n직업: 직장인\n효과: 위로, 안정\n상황: 잠들기 전 휴식\n집중도: 가볍게 읽을 수 있음
    output:      1. 제목 - 저자\n - 추천 이유: ...\n - 이 책이 도움이 될 수 있는 이유: ...

PROMPT_VERSION is stored with every sample; change it whenever the wording below changes.
"""
from __future__ import annotations

from dataclasses import dataclass

from datagen.grid import Request
from db.models import student_prompt  # noqa: F401 - the student's view of a sample lives with the Sample

PROMPT_VERSION = "seed-v1"

LABELS = {
    "ko": {"emotion": "감정", "occupation": "직업", "effect": "효과", "situation": "상황", "focus": "집중도",
           "reason": "추천 이유", "effect_line": "이 책이 도움이 될 수 있는 이유"},
    "en": {"emotion": "Emotion", "occupation": "Occupation", "effect": "Effect", "situation": "Situation",
           "focus": "Focus", "reason": "Why this book", "effect_line": "How it may help"},
}


def has_batchim(word: str) -> bool:
    ch = word.strip()[-1:]
    return bool(ch) and 0xAC00 <= ord(ch) <= 0xD7A3 and (ord(ch) - 0xAC00) % 28 != 0


def _join_ko(words: tuple[str, ...]) -> str:
    # Korean "A와 B" / "A과 B": the particle depends on whether A ends in a final consonant.
    if len(words) == 1:
        return words[0]
    return "".join(w + ("과 " if has_batchim(w) else "와 ") for w in words[:-1]) + words[-1]


def instruction_for(req: Request, n_books: int = 3) -> str:
    if req.language == "ko":
        effects = _join_ko(req.effects)
        obj = "을" if has_batchim(req.effects[-1]) else "를"
        return (f"{req.emotion_adj} {req.occupation}에게 {effects}{obj} 주는 책 {n_books}권을 추천해줘. "
                "각 책마다 추천 이유와 감정적 효과를 설명해줘.")
    effects = " and ".join(req.effects)
    article = "an" if req.emotion_adj[0] in "aeiou" else "a"
    return (f"Recommend {n_books} books for {article} {req.emotion_adj} {req.occupation} looking for {effects}. "
            "For each book, explain why you recommend it and its emotional effect.")


def input_for(req: Request) -> str:
    L = LABELS[req.language]
    sep = ", "
    return (f"{L['emotion']}: {req.emotion}\n{L['occupation']}: {req.occupation}\n"
            f"{L['effect']}: {sep.join(req.effects)}\n{L['situation']}: {req.situation}\n{L['focus']}: {req.focus}")


def format_book(index: int, title: str, author: str, reason: str, effect: str, language: str) -> str:
    L = LABELS[language]
    return f"{index}. {title} - {author}\n - {L['reason']}: {reason}\n - {L['effect_line']}: {effect}"


@dataclass(frozen=True)
class ChatPrompt:
    system: str
    user: str


