"""The seed format — instruction / input / output — and the teacher prompts, versioned.

    instruction: 불안한 직장인에게 위로와 안정을 주는 책 3권을 추천해줘. 각 책마다 추천 이유와 감정적 효과를 설명해줘.
    input:       감정: 불안함\n직업: 직장인\n효과: 위로, 안정\n상황: 잠들기 전 휴식\n집중도: 가볍게 읽을 수 있음
    output:      1. 제목 - 저자\n - 추천 이유: ...\n - 이 책이 도움이 될 수 있는 이유: ...

With retrieval (the default), the input ends with the catalog candidates the answer chooses from:

    input:       감정: 불안함\n...\n후보 도서:\n- 불편한 편의점 - 김호연\n- 흰 - 한강\n...

Every book is written as one line, `book_line(book)` = "Title - Author": in the candidate block, the teacher's
candidate list, the offline teacher's answers and the rendered answer, so that what the student sees, what it
writes and what a constrained decoder allows are the same string.

PROMPT_VERSION is stored with every sample; change it whenever the wording below changes.
"""
from __future__ import annotations

from datagen.grid import Request



def student_prompt(instruction: str, input_text: str) -> str:
    """The user turn the student model sees for a sample: training, the app and evaluation must agree."""
    return f"{instruction}\n\n{input_text}" if input_text.strip() else instruction


# seed-v2: candidates written as book_line ("Title - Author", no "지음 ; 옮김"), retrieval on by default.
PROMPT_VERSION = "seed-v2"

LABELS = {
    "ko": {"emotion": "감정", "occupation": "직업", "effect": "효과", "situation": "상황", "focus": "집중도",
           "note": "메모", "candidates": "후보 도서",
           "reason": "추천 이유", "effect_line": "이 책이 도움이 될 수 있는 이유"},
    "en": {"emotion": "Emotion", "occupation": "Occupation", "effect": "Effect", "situation": "Situation",
           "focus": "Focus", "note": "Note", "candidates": "Candidate books",
           "reason": "Why this book", "effect_line": "How it may help"},
}


def title_author_line(title: str, author: str) -> str:
    """Title and author as "Title - Author" on one line (a newline in a catalog field would break the list)."""
    return f"{' '.join(title.split())} - {' '.join(author.split())}"


def book_line(book, language: str = "") -> str:
    """The one way a catalog book is written everywhere: "Title - Author", the author as the catalog has it
    (no translator, no "지음 ; 옮김" role suffixes; grounding ignores those anyway). The same for both
    languages today; `language` is part of the signature so that a per-language form stays one change."""
    return title_author_line(book.title, book.author)


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
    """The request block of a sample's input; a reader's own words (app, CLI) follow as a last line."""
    L = LABELS[req.language]
    sep = ", "
    text = (f"{L['emotion']}: {req.emotion}\n{L['occupation']}: {req.occupation}\n"
            f"{L['effect']}: {sep.join(req.effects)}\n{L['situation']}: {req.situation}\n{L['focus']}: {req.focus}")
    if req.free_text.strip():
        text += f"\n{L['note']}: {' '.join(req.free_text.split())}"
    return text


def format_book(index: int, title: str, author: str, reason: str, effect: str, language: str) -> str:
    L = LABELS[language]
    return (f"{index}. {title_author_line(title, author)}\n - {L['reason']}: {reason}\n"
            f" - {L['effect_line']}: {effect}")


def answer_format_system(language: str, *, with_candidates: bool = False) -> str:
    """The system prompt an API model gets in the app and in evaluation: answer in the sample's own text
    format, so its books are parsed and checked against the catalog like the student's (the student needs
    none: it was trained on that format). With candidates, it is told to choose among them, as the
    teacher was."""
    example = format_book(1, "TITLE", "AUTHOR", "...", "...", language)
    if language == "ko":
        pick = (" 요청에 나온 후보 도서 중에서만 고르고, 제목과 저자는 후보 목록에 적힌 그대로 쓰세요."
                if with_candidates else "")
        return ("당신은 감정에 맞춰 책을 추천하는 사서입니다. 실제로 출간된 책만 추천하고, 한국어로 답하세요." + pick
                + " 각 책을 정확히 이 형식으로 쓰세요:\n" + example)
    pick = (" Choose only among the candidate books in the request, and copy each title and author exactly as "
            "listed." if with_candidates else "")
    return ("You are a librarian who recommends books for how people feel. Recommend only real, published "
            "books." + pick + " Write each book in exactly this format:\n" + example)


# -- the teacher's prompt (API providers) ----------------------------------------------------------------------
# teacher-v2: candidates as "- Title - Author" lines (book_line), the same string the student sees.
TEACHER_PROMPT_VERSION = "teacher-v2"

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
    "ko": "아래 후보 중에서 정확히 {n}권을 고르세요 (제목 - 저자):",
    "en": "Choose exactly {n} books from these candidates (title - author):",
}


def candidate_lines(candidates, language: str = "") -> list[str]:
    """book_line of each candidate; strings pass through (an eval sample's own candidate lines)."""
    return [c if isinstance(c, str) else book_line(c, language) for c in candidates]


def candidate_block(candidates, language: str = "") -> str:
    return "<candidates>\n" + "\n".join(f"- {line}" for line in candidate_lines(candidates, language)) + "\n</candidates>"


def teacher_user_turn(instruction: str, input_text: str, candidates, n_books: int, language: str) -> str:
    return (f"{instruction}\n\n{input_text}\n\n{CANDIDATE_INTRO[language].format(n=n_books)}\n"
            f"{candidate_block(candidates, language)}")


def teacher_messages(instruction: str, input_text: str, candidates, n_books: int, language: str) -> list[dict]:
    """What an API teacher gets when it writes a sample (structured JSON answer)."""
    return [{"role": "system", "content": TEACHER_SYSTEM[language]},
            {"role": "user", "content": teacher_user_turn(instruction, input_text, candidates, n_books, language)}]


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


# -- candidates in the sample's input (what the student sees) ----------------------------------------------------
def retrieval_input(input_text: str, candidates, language: str) -> str:
    """The candidates become the end of the sample's input, so the student learns to choose among given
    books (and the app, the CLI and evaluation retrieve the same way at inference)."""
    head = LABELS[language]["candidates"]
    return f"{input_text}\n{head}:\n" + "\n".join(f"- {line}" for line in candidate_lines(candidates, language))


def split_candidates(input_text: str) -> tuple[str, list[str]]:
    """A sample's input -> (the request block, its candidate lines); no candidate block: (input, [])."""
    for L in LABELS.values():
        head = f"\n{L['candidates']}:\n"
        if head in input_text:
            request, _, block = input_text.partition(head)
            lines = [ln.strip()[2:].strip() for ln in block.splitlines() if ln.strip().startswith("- ")]
            return request, lines
    return input_text, []


# -- the chat prompt of each model shape (training/recommend.py picks the shape) ---------------------------------
def student_messages(instruction: str, input_text: str, candidates=None, language: str = "en") -> list[dict]:
    """The user turn in the student's trained shape: the request, plus the candidate block when the model
    was trained with candidates (never a system prompt: the student was trained without one)."""
    if candidates:
        input_text = retrieval_input(input_text, candidates, language)
    return [{"role": "user", "content": student_prompt(instruction, input_text)}]


def api_chat_messages(instruction: str, input_text: str, candidates, n_books: int, language: str) -> list[dict]:
    """An API model in the app and in evaluation gets the teacher's shape: the request and the candidates
    in the user turn, and the answer-format system prompt (text, not JSON, so its books are parsed and
    grounded like the student's). Without candidates (an empty catalog), the request alone."""
    if not candidates:
        return [{"role": "system", "content": answer_format_system(language)},
                {"role": "user", "content": student_prompt(instruction, input_text)}]
    return [{"role": "system", "content": answer_format_system(language, with_candidates=True)},
            {"role": "user", "content": teacher_user_turn(instruction, input_text, candidates, n_books, language)}]
