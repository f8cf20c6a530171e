"""The request grid: emotion × occupation × effect × situation × focus, with shipped defaults in ko and en.

Diversity comes from enumerating these inputs rather than asking a model to invent them. Each effect
maps to the catalog's mood tags so that candidates can be retrieved for it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

# (noun form for the input block, adnominal form for the instruction sentence)
EMOTIONS = {
    "ko": [("불안함", "불안한"), ("외로움", "외로운"), ("지침", "지친"), ("우울함", "우울한"), ("무기력함", "무기력한"),
           ("초조함", "초조한"), ("슬픔", "슬픈"), ("설렘", "설레는"), ("답답함", "답답한"), ("막막함", "막막한"),
           ("호기심", "호기심 많은"), ("상실감", "상실감을 느끼는")],
    "en": [("anxious", "anxious"), ("lonely", "lonely"), ("exhausted", "exhausted"), ("sad", "sad"),
           ("unmotivated", "unmotivated"), ("restless", "restless"), ("grieving", "grieving"), ("hopeful", "hopeful"),
           ("overwhelmed", "overwhelmed"), ("stuck", "stuck"), ("curious", "curious"), ("burned out", "burned-out")],
}
OCCUPATIONS = {
    "ko": ["직장인", "대학생", "수험생", "프리랜서", "교사", "간호사", "개발자", "자영업자", "육아 중인 부모", "은퇴자",
           "취업 준비생", "디자이너"],
    "en": ["office worker", "college student", "student preparing for exams", "freelancer", "teacher", "nurse",
           "software developer", "small business owner", "new parent", "retiree", "job seeker", "designer"],
}
# effect label -> catalog mood tags
EFFECTS = {
    "ko": {"위로": ["comfort"], "안정": ["calm"], "용기": ["courage"], "집중": ["focus"], "치유": ["healing"],
           "동기부여": ["motivation"], "희망": ["hope"], "기쁨": ["joy"], "통찰": ["insight"], "호기심": ["curiosity"],
           "공감": ["empathy"], "기분 전환": ["escape"]},
    "en": {"comfort": ["comfort"], "calm": ["calm"], "courage": ["courage"], "focus": ["focus"], "healing": ["healing"],
           "motivation": ["motivation"], "hope": ["hope"], "joy": ["joy"], "insight": ["insight"],
           "curiosity": ["curiosity"], "empathy": ["empathy"], "escape": ["escape"]},
}
SITUATIONS = {
    "ko": ["잠들기 전 휴식", "출퇴근 지하철", "주말 오후 카페", "시험 기간", "이직을 고민할 때", "혼자 떠난 여행",
           "아픈 뒤 회복 중", "새해를 시작하며", "비 오는 날 집에서", "점심시간 짧은 휴식"],
    "en": ["winding down before sleep", "the commute", "a slow weekend afternoon", "exam season",
           "thinking about changing jobs", "a solo trip", "recovering after an illness", "the start of a new year",
           "a rainy day at home", "a short lunch break"],
}
FOCUS_LEVELS = {
    "ko": ["가볍게 읽을 수 있음", "조금씩 나눠 읽기", "몰입해서 읽기", "깊이 생각하며 읽기"],
    "en": ["light and easy", "in short sittings", "immersive", "slow and thoughtful"],
}


@dataclass(frozen=True)
class Request:
    """One cell of the grid: what the reader feels, does, wants, where, and how much attention they have."""

    language: str
    emotion: str
    emotion_adj: str
    occupation: str
    effects: tuple[str, ...]
    situation: str
    focus: str
    free_text: str = ""   # what the reader wrote in their own words (the app and the CLI; the grid has none)

    @property
    def moods(self) -> list[str]:
        table = EFFECTS[self.language]
        return [m for e in self.effects for m in table.get(e, [e])]


def adnominal(emotion: str, language: str) -> str:
    """'불안함' -> '불안한': the form the instruction sentence uses (known emotions from the table, else a rule)."""
    known = dict(EMOTIONS.get(language, []))
    if emotion in known:
        return known[emotion]
    if language == "ko" and emotion.endswith("함"):
        return emotion[:-1] + "한"
    return emotion


@dataclass
class Grid:
    language: str = "ko"
    emotions: list[tuple[str, str]] = field(default_factory=list)
    occupations: list[str] = field(default_factory=list)
    effects: list[str] = field(default_factory=list)
    situations: list[str] = field(default_factory=list)
    focus_levels: list[str] = field(default_factory=list)

    @classmethod
    def default(cls, language: str) -> "Grid":
        if language not in EMOTIONS:
            raise ValueError(f"Unsupported language '{language}': use ko or en.")
        return cls(language, list(EMOTIONS[language]), list(OCCUPATIONS[language]), list(EFFECTS[language]),
                   list(SITUATIONS[language]), list(FOCUS_LEVELS[language]))

    @classmethod
    def from_lists(cls, language: str, emotions=None, occupations=None, effects=None, situations=None,
                   focus_levels=None) -> "Grid":
        """Defaults for the language, with any list the user edited put in its place."""
        g = cls.default(language)
        if emotions is not None:
            g.emotions = [(e, adnominal(e, language)) for e in _clean(emotions)]
        for name, value in (("occupations", occupations), ("effects", effects), ("situations", situations),
                            ("focus_levels", focus_levels)):
            if value is not None:
                setattr(g, name, _clean(value))
        return g

    def validate(self) -> None:
        empty = [n for n in ("emotions", "occupations", "effects", "situations", "focus_levels") if not getattr(self, n)]
        if empty:
            raise ValueError(f"The grid needs at least one value in: {', '.join(empty)}.")

    def sample(self, n: int, seed: int) -> list[Request]:
        """n distinct requests drawn without replacement from the grid (cells repeat only when n exceeds it)."""
        self.validate()
        rng = random.Random(seed)
        seen: set[tuple] = set()
        out: list[Request] = []
        size = len(self.emotions) * len(self.occupations) * len(self.effects) * len(self.situations) * len(self.focus_levels)
        while len(out) < n:
            emo = rng.choice(self.emotions)
            effects = tuple(rng.sample(self.effects, k=min(len(self.effects), rng.choice((1, 2)))))
            req = Request(self.language, emo[0], emo[1], rng.choice(self.occupations), effects,
                          rng.choice(self.situations), rng.choice(self.focus_levels))
            key = (req.emotion, req.occupation, frozenset(req.effects), req.situation, req.focus)
            if key in seen and len(seen) < size:
                continue
            seen.add(key)
            out.append(req)
        return out


def _clean(values) -> list[str]:
    if isinstance(values, str):
        values = values.splitlines()
    return [v.strip() for v in values if v and v.strip()]
