"""Words for the catalog's English tags in each language: genre names and mood names.

The catalog stores genres and mood tags as English keywords (SCHEMA.md). Retrieval needs them in the
request's language (a Korean reader writes "시", not "poetry"), and the offline teacher names them in its
reasons ("에세이", "a collection of poems"). One table, so both say the same thing.

    genre_name("poetry", "ko")  -> "시집"          mood_name("comfort", "ko") -> "위로"
"""
from __future__ import annotations

from datagen.grid import EFFECTS

# genre tag -> (the name a sentence uses, more words a reader might type for it)
GENRES: dict[str, dict[str, tuple[str, str]]] = {
    "ko": {
        "novel": ("소설", "장편 장편소설"), "short-stories": ("단편집", "단편 단편소설 소설집"),
        "essay": ("에세이", "산문 수필 산문집"), "poetry": ("시집", "시 시인"), "self-help": ("자기계발서", "자기계발"),
        "psychology": ("심리학 책", "심리 마음"), "philosophy": ("철학서", "철학"), "science": ("과학책", "과학"),
        "history": ("역사책", "역사"), "memoir": ("회고록", "자서전 에세이"), "fantasy": ("판타지", "판타지 소설 마법"),
        "sci-fi": ("SF 소설", "SF 과학소설 공상과학"), "mystery": ("추리소설", "추리 미스터리"), "classic": ("고전", "고전문학 명작"),
        "children": ("동화", "어린이 아동"), "picture-book": ("그림책", "그림"), "business": ("경영서", "경영 비즈니스 일"),
        "humanities": ("인문서", "인문 인문학"), "nature": ("자연 에세이", "자연 숲"), "art": ("예술 책", "예술 미술 그림"),
        "health": ("건강 책", "건강 몸"), "graphic-novel": ("그래픽노블", "만화"), "young-adult": ("청소년 소설", "청소년"),
        "romance": ("연애소설", "로맨스 사랑"), "religion": ("종교 서적", "종교 신앙"), "economics": ("경제서", "경제 돈"),
        "sociology": ("사회학 책", "사회 사회학"),
    },
    "en": {
        "novel": ("novel", "fiction"), "short-stories": ("story collection", "short stories"),
        "essay": ("essay collection", "essays nonfiction"), "poetry": ("collection of poems", "poems poet poetry"),
        "self-help": ("self-help book", "self help habits"), "psychology": ("psychology book", "mind"),
        "philosophy": ("work of philosophy", "philosophy"), "science": ("science book", "science"),
        "history": ("history book", "history"), "memoir": ("memoir", "memoir life story"),
        "fantasy": ("fantasy novel", "fantasy magic"), "sci-fi": ("science-fiction novel", "science fiction sci-fi"),
        "mystery": ("mystery", "mystery detective crime"), "classic": ("classic", "classic literature"),
        "children": ("children's book", "children kids"), "picture-book": ("picture book", "picture book illustrated"),
        "business": ("business book", "business work"), "humanities": ("humanities book", "humanities"),
        "nature": ("book about nature", "nature outdoors"), "art": ("book about art", "art"),
        "health": ("health book", "health body"), "graphic-novel": ("graphic novel", "comics graphic novel"),
        "young-adult": ("young-adult novel", "young adult teen"), "romance": ("love story", "romance love"),
        "religion": ("spiritual book", "religion faith spiritual"), "economics": ("economics book", "economics money"),
        "sociology": ("sociology book", "society sociology"),
    },
}
_MOOD_NAMES_KO = {m: label for label, moods in EFFECTS["ko"].items() for m in moods}


def genre_name(genre: str, language: str) -> str:
    """The word a sentence uses for a genre tag ("시집", "collection of poems"); an unknown tag as it is."""
    return GENRES.get(language, GENRES["en"]).get(genre, (genre.replace("-", " "), ""))[0]


def genre_words(genre: str, language: str) -> str:
    """Every word a reader might use for a genre tag, for retrieval (the tag itself included)."""
    name, more = GENRES.get(language, GENRES["en"]).get(genre, (genre, ""))
    return " ".join(dict.fromkeys(f"{genre.replace('-', ' ')} {name} {more}".split()))


def mood_name(mood: str, language: str) -> str:
    """A catalog mood tag in the language: comfort -> 위로 (ko), comfort (en)."""
    return _MOOD_NAMES_KO.get(mood, mood) if language == "ko" else mood
