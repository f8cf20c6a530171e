"""Signs that a reader may be thinking of suicide or self-harm, and the message shown first when there are.

    notice = crisis_notice({"emotion": "죽고 싶다", "situation": "퇴근 후"}, "ko")
    if notice:
        print(notice)            # before any books; the books still follow

    python -m datagen.safety "I want to die"       # prints the notice, or nothing

This app asks people how they feel, so some will tell it they do not want to live. Whatever backend answers,
such a request first gets a short, caring message with the crisis line for the request's language (Korea: 109,
the suicide prevention line, and 112 / 119 in an emergency; the US: 988, and 911 in an emergency).

Matching is deliberately simple and pure (no model, no network): the request's text fields are normalised
(NFKC, lower case, straight apostrophes removed, whitespace collapsed); Korean phrases are matched with every
space removed, so "죽고 싶다", "죽고싶어요" and "죽 고 싶 다" all count; English phrases are matched as words.
Both languages are checked whatever the request's language. Ordinary sadness is not a crisis: "우울함",
"슬픔", "힘들어 죽겠다", "sad", "down", "tired of work", "dying to read", "killing time" do not match.
"""
from __future__ import annotations

import re
import sys
import unicodedata

# Korean: matched against the text with all whitespace removed.
KOREAN_SIGNS = (
    "죽고싶", "죽고만싶", "죽어버리고싶", "죽어버릴까", "살고싶지않", "살고싶지가않", "살기싫",
    "사는게싫", "살아야할이유가없", "살이유가없", "살아갈이유가없", "사는의미가없", "살의미가없",
    "자살", "자해", "극단적선택", "목숨을끊", "생을마감", "삶을끝내", "삶을마감", "인생을끝내",
    "세상을떠나고싶", "사라지고싶", "없어지고싶", "뛰어내리고싶", "손목을긋", "손목긋",
)

# English: regular expressions over the normalised text (apostrophes removed: "don't" is "dont").
ENGLISH_SIGNS = re.compile("|".join((
    r"\b(?:want|wanted|wants|wanna|planning|plan)(?: to)? die\b",
    r"\bwish (?:i (?:was|were) dead|i (?:could )?die|to die)\b",
    r"\bkill(?:ing|ed)? ?my ?self\b",
    r"\bend(?:ing)? (?:my|it) (?:own )?life\b",
    r"\bend(?:ing)? it all\b",
    r"\btak(?:e|ing) my (?:own )?life\b",
    r"\bsuicid\w*",
    r"\bself[- ]?harm\w*",
    r"\b(?:hurt|hurting|cut|cutting) my ?self\b",
    r"\bno (?:reason|point|will) (?:to|in) (?:live|living|go on|going on|keep going|be alive)\b",
    r"\b(?:not|isnt) worth living\b",
    r"\b(?:dont|do not|dont really|no longer) want to (?:live|be alive|exist|wake up)\b",
    r"\bbetter off dead\b",
    r"\bunalive\b",
)))

NOTICE = {
    "ko": ("지금 많이 힘드신 것 같아요. 혼자 견디지 않으셔도 됩니다. 자살예방상담전화 109(24시간)에 전화하면 "
           "상담사와 바로 이야기할 수 있어요. 지금 위험한 상황이라면 112나 119에 바로 연락해 주세요. "
           "아래 책들도 작은 위로가 되길 바랍니다."),
    "en": ("It sounds like you are carrying something very heavy right now, and you don't have to carry it alone. "
           "In the US, call or text 988 (Suicide & Crisis Lifeline, 24/7); elsewhere, your local crisis line can "
           "help. If you are in immediate danger, call 911 or your local emergency number. The books below are "
           "here too, if they help."),
}

SCANNED_FIELDS = ("emotion", "occupation", "effects", "situation", "focus", "free_text")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").lower()
    text = re.sub(r"['’‘`´]", "", text)
    return re.sub(r"\s+", " ", text).strip()


def signals_crisis(text: str) -> bool:
    """Whether a piece of text says, in Korean or English, that its writer may want to die or hurt themselves."""
    flat = normalise(text)
    if not flat:
        return False
    squeezed = flat.replace(" ", "")
    return any(sign in squeezed for sign in KOREAN_SIGNS) or bool(ENGLISH_SIGNS.search(flat))


def request_texts(fields: dict) -> list[str]:
    texts = []
    for name in SCANNED_FIELDS:
        value = fields.get(name)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (list, tuple)):
            texts.extend(v for v in value if isinstance(v, str))
    return texts


def crisis_notice(fields: dict, language: str) -> str | None:
    """The message to show before any books when the request's emotion, occupation, effects, situation, focus
    or free text signals self-harm or suicidal thoughts; None otherwise. In the request's language (ko, else en)."""
    if not any(signals_crisis(t) for t in request_texts(fields)):
        return None
    return NOTICE["ko" if language == "ko" else "en"]


if __name__ == "__main__":
    text = " ".join(sys.argv[1:])
    notice = crisis_notice({"free_text": text}, "ko" if re.search(r"[가-힣]", text) else "en")
    if notice:
        print(notice)
