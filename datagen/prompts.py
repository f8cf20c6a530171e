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


def answer_format_system(language: str) -> str:
    """The system prompt an API baseline gets in the app (Recommend, Compare, Arena): answer in the
    sample's own text format, so its books are parsed and checked against the catalog like the student's.
    (The student needs none: it was trained on that format.)"""
    example = format_book(1, "TITLE", "AUTHOR", "...", "...", language)
    if language == "ko":
        return ("당신은 감정에 맞춰 책을 추천하는 사서입니다. 실제로 출간된 책만 추천하고, 한국어로 답하세요. "
                "각 책을 정확히 이 형식으로 쓰세요:\n" + example)
    return ("You are a librarian who recommends books for how people feel. Recommend only real, published "
            "books. Write each book in exactly this format:\n" + example)


@dataclass(frozen=True)
class ChatPrompt:
    system: str
    user: str




# -- the teacher's prompt (API providers) ----------------------------------------------------------------------
TEACHER_PROMPT_VERSION = "teacher-v1"

TEACHER_SYSTEM = {
    "ko": ("당신은 독서치료를 하는 사서입니다. 독자의 감정과 상황에 맞는 실제 책을 추천합니다. 반드시 후보 목록에 있는 "
           "책만 고르고, 제목과 저자는 후보 목록에 적힌 그대로 씁니다. 추천 이유와 감정적 효과는 한국어로 한두 문장씩, "
           "구체적이고 따뜻하게 씁니다. JSON으로만 답합니다."),
    "en": ("You are a librarian who practises bibliotherapy. You recommend real books that fit a reader's feelings "
           "and situation. Choose only books from the candidate list and copy their title and author exactly. Write "
           "the reason and the emotional effect in English, one or two concrete, warm sentences each. Answer with "
           "JSON only."),
}
CANDIDATE_INTRO = {
    "ko": "아래 후보 중에서 정확히 {n}권을 고르세요 (제목 | 저자):",
    "en": "Choose exactly {n} books from these candidates (title | author):",
}


def candidate_block(candidates) -> str:
    return "<candidates>\n" + "\n".join(f"{b.title} | {b.author}" for b in candidates) + "\n</candidates>"


def teacher_messages(instruction: str, input_text: str, candidates, n_books: int, language: str) -> list[dict]:
    user = (f"{instruction}\n\n{input_text}\n\n{CANDIDATE_INTRO[language].format(n=n_books)}\n"
            f"{candidate_block(candidates)}")
    return [{"role": "system", "content": TEACHER_SYSTEM[language]}, {"role": "user", "content": user}]


def answer_schema(n_books: int) -> dict:
    """JSON schema of a teacher's answer. The count is stated, not enforced by minItems/maxItems, because
    strict structured-output modes reject those keywords; validation checks the count afterwards."""
    book = {"type": "object", "additionalProperties": False,
            "required": ["title", "author", "reason", "effect"],
            "properties": {"title": {"type": "string"}, "author": {"type": "string"},
                           "reason": {"type": "string", "description": "why this book fits the reader"},
                           "effect": {"type": "string", "description": "the emotional effect it may have"}}}
    return {"type": "object", "additionalProperties": False, "required": ["books"],
            "properties": {"books": {"type": "array", "items": book,
                                     "description": f"exactly {n_books} books from the candidates"}}}


def retrieval_input(input_text: str, candidates, language: str) -> str:
    """Retrieval mode: the candidates become part of the sample's input, so the student learns to choose
    among given books (and the app retrieves the same way at inference)."""
    head = "후보 도서" if language == "ko" else "Candidate books"
    return f"{input_text}\n{head}:\n" + "\n".join(f"- {b.title} - {b.author}" for b in candidates)
