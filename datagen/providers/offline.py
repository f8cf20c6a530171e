"""The offline catalog provider: a teacher without an API key. It chooses among the request's retrieved
candidates by fit and explains each choice from the book's own description, genres and mood tags.

    moodshelf generate --provider offline --count 100 --language en --seed 0

Choice: each candidate is scored on how many of the requested moods it carries, its retrieval score, and how
its genres suit the reader's situation and focus (a short poem for a lunch break, a long novel for a rainy
day); a small seeded jitter breaks near-ties. The candidates' order plays no part, so a student learns to
choose by fit, not by position.

Reasons and effects: several sentence shapes per language, each weaving in the book's description, its genre
and mood tags, and the reader's emotion, occupation, situation and focus differently; deterministic for a
seed. Every book it names is a candidate, written as in the catalog (book_line: "Title - Author"). It is still
template text — labelled "offline template" wherever it shows — good enough to teach the format and the
choosing, not a substitute for a GPT/Claude teacher.
"""
from __future__ import annotations

import json
import random

from datagen.grid import FOCUS_LEVELS, SITUATIONS
from datagen.prompts import has_batchim
from datagen.providers.base import TeacherTask
from datagen.vocabulary import genre_name, mood_name
from vendors.base import CallError, Completion, VendorClient

# -- what fits where: genres that suit a situation or a kind of attention (index-aligned ko/en grid lists) -------
_SITUATION_GENRES = [
    {"essay", "poetry", "picture-book", "nature"},                     # winding down before sleep
    {"short-stories", "essay", "poetry", "graphic-novel"},             # the commute
    {"novel", "classic", "romance", "essay"},                          # a slow weekend afternoon
    {"self-help", "psychology", "short-stories", "poetry"},            # exam season
    {"self-help", "business", "psychology", "memoir"},                 # thinking about changing jobs
    {"essay", "memoir", "nature", "novel"},                            # a solo trip
    {"essay", "memoir", "poetry", "health"},                           # recovering after an illness
    {"self-help", "psychology", "memoir", "philosophy"},               # the start of a new year
    {"novel", "mystery", "fantasy", "classic"},                        # a rainy day at home
    {"short-stories", "essay", "poetry", "picture-book"},              # a short lunch break
]
_FOCUS_GENRES = [
    {"essay", "poetry", "picture-book", "children", "graphic-novel", "short-stories"},   # light and easy
    {"short-stories", "essay", "poetry", "self-help"},                                   # in short sittings
    {"novel", "fantasy", "mystery", "sci-fi", "romance", "young-adult"},                 # immersive
    {"philosophy", "classic", "humanities", "history", "science", "psychology"},         # slow and thoughtful
]
FOCUS_PHRASE = {
    "ko": dict(zip(FOCUS_LEVELS["ko"], ["가볍게", "조금씩 나눠", "몰입해서", "깊이 생각하며"])),
    "en": dict(zip(FOCUS_LEVELS["en"], ["lightly, a few pages at a time", "in short sittings",
                                        "in one immersive sitting", "slowly and thoughtfully"])),
}


def _genre_fit(genres: list[str], situation: str, focus: str, language: str) -> float:
    """0..1: how well a book's genres suit the reader's situation and focus (0 for custom ones)."""
    fit = 0.0
    if situation in SITUATIONS.get(language, []):
        fit += 0.5 * bool(_SITUATION_GENRES[SITUATIONS[language].index(situation)] & set(genres))
    if focus in FOCUS_LEVELS.get(language, []):
        fit += 0.5 * bool(_FOCUS_GENRES[FOCUS_LEVELS[language].index(focus)] & set(genres))
    return fit


def fit_score(book, task: TeacherTask) -> float:
    """How well a candidate fits its request: requested moods it carries (the strongest signal), its
    retrieval score, and its genres against the situation and focus."""
    wanted = set(task.request.moods)
    mood = len(wanted & set(book.moods)) / len(wanted) if wanted else 0.0
    req = task.request
    return (2.0 * mood + 1.0 * task.candidate_scores.get(book.id, 0.0)
            + 0.6 * _genre_fit(list(book.genres), req.situation, req.focus, req.language))


# -- Korean particles -------------------------------------------------------------------------------------------
_DIGIT_BATCHIM = {"0": True, "1": True, "2": False, "3": True, "4": False, "5": False, "6": True, "7": True,
                  "8": True, "9": False}


def _batchim(word: str) -> bool:
    """Whether a word ends in a final consonant, for the particle after it (Hangul, digits, a Latin guess)."""
    w = word.strip().rstrip("》」』)\"'")
    ch = w[-1:]
    if not ch:
        return False
    if 0xAC00 <= ord(ch) <= 0xD7A3:
        return has_batchim(ch)
    if ch in _DIGIT_BATCHIM:
        return _DIGIT_BATCHIM[ch]
    return ch.lower() in "lmnkpt"


def _rieul(word: str) -> bool:
    ch = word.strip()[-1:]
    return bool(ch) and 0xAC00 <= ord(ch) <= 0xD7A3 and (ord(ch) - 0xAC00) % 28 == 8


def p(word: str, pair: str) -> str:
    """word + the right one of a particle pair: p("시집", "은/는") -> "시집은"; p("소설", "으로/로") -> "소설로"."""
    with_final, without = pair.split("/")
    if pair == "으로/로":
        return word + ("으로" if _batchim(word) and not _rieul(word) else "로")
    return word + (with_final if _batchim(word) else without)


def _ko_sentence(description: str) -> str:
    """A catalog description as a sentence: most end in a noun ("...그린 장편소설.") and take 입니다."""
    d = description.strip()
    if not d:
        return ""
    if d.endswith(("다.", "요.", "다", "요")):
        return d if d.endswith(".") else d + "."
    return d.rstrip(".") + "입니다."


def _ko_noun(description: str) -> str | None:
    """The description as a noun phrase ("...그린 장편소설"), or None when it is already a full sentence."""
    d = description.strip().rstrip(".")
    return None if not d or d.endswith(("다", "요")) else d


def _ko_when(situation: str) -> str:
    s = situation.strip()
    return s if s.endswith(("며", "때", "서", "에")) else s + "에"


# -- sentence shapes ----------------------------------------------------------------------------------------------
def _reasons_ko(c: dict) -> list[str]:
    shapes = [
        f"{c['sentence']} {c['when']} {c['focus']} 펼치기 좋은 {p(c['genre'], '이라서/라서')}, {c['emo_adj']} {c['occ']}에게 권합니다.",
        f"{c['emo_adj']} 마음으로 하루를 보내는 {c['occ']}에게 이 {p(c['genre'], '은/는')} 조용한 쉼표가 됩니다. {c['sentence']}",
        f"'{c['situation']}' 같은 때에 {c['focus']} 읽을 책을 찾는 {c['occ']}에게 어울립니다. {c['sentence']} {c['moods_ko']}의 결이 담겨 있습니다.",
        f"{p(c['emotion'], '을/를')} 안고 있는 {p(c['occ'], '이라면/라면')} 이 {c['genre']}에서 {p(c['mood'], '을/를')} 찾을 수 있습니다. {c['sentence']}",
        f"{c['sentence']} {p(c['mood'], '을/를')} 건네는 {p(c['genre'], '이라/라')} {c['when']} 곁에 두기 좋고, {c['focus']} 읽어도 충분합니다.",
        f"이 책을 고른 까닭은 {p(c['mood'], '이라는/라는')} 결 때문입니다. {c['sentence']} {c['emo_adj']} 날의 {c['occ']}에게 잘 맞는 {c['genre']}입니다.",
    ]
    if c["noun"]:
        shapes.append(f"《{c['title']}》{'은' if _batchim(c['title']) else '는'} {p(c['noun'], '으로/로')}, "
                      f"{c['when']} {c['focus']} 읽기 알맞습니다.")
    return shapes


def _reasons_en(c: dict) -> list[str]:
    moods = f"{c['mood']} and {c['mood2']}" if c["mood2"] else c["mood"]
    # "who feels anxious" but "who is grieving"
    is_ing = c["emotion"].endswith("ing")
    feels = f"is {c['emotion']}" if is_ing else f"feels {c['emotion']}"
    you_feel = f"you are {c['emotion']}" if is_ing else f"you feel {c['emotion']}"
    return [
        f"{c['desc']} For {c['a_occ']} who {feels}, it is {c['a_genre']} to read {c['focus']} for {c['situation']}.",
        f"Picked for {c['situation']}: {c['desc']} It can be read {c['focus']}, which helps when {you_feel}.",
        f"If {you_feel} as {c['a_occ']}, this {c['genre']} meets you where you are. {c['desc']}",
        f"{c['desc']} Its mix of {moods} suits {c['a_occ']} looking for something to read {c['focus']}.",
        f"{c['title']} is {c['a_genre']} that works well read {c['focus']}. {c['desc']} It fits {c['situation']}.",
        f"As {c['a_occ']} who {feels}, you may find {c['mood']} in this {c['genre']}. {c['desc']}",
        f"{c['desc']} Keep it close for {c['situation']}; it reads best {c['focus']}.",
    ]


EFFECTS_KO = {
    "comfort": ["{emo} 마음을 다정하게 다독여 주어, 혼자가 아니라는 위로를 건넵니다.",
                "지친 마음 곁에 조용히 앉아 주는 책이라, {emo} 날에 작은 위안이 됩니다.",
                "읽는 동안 누군가 등을 토닥여 주는 듯한 따뜻함을 느낄 수 있습니다."],
    "calm": ["느린 호흡의 문장이 {emo} 마음을 차분하게 가라앉혀 줍니다.",
             "서두르지 않는 이야기의 속도가 숨을 고르고 마음을 가라앉히게 돕습니다.",
             "한 장씩 넘기다 보면 머릿속 소음이 잦아들고 고요함이 찾아옵니다."],
    "courage": ["{emo} 순간에도 한 걸음 내디딜 용기를 북돋아 줍니다.",
                "두려움 앞에서 물러서지 않은 이야기가 내 안의 용기를 깨웁니다.",
                "작은 결심을 행동으로 옮길 힘을 조용히 보태 줍니다."],
    "focus": ["흩어진 주의를 한곳에 모으고 몰입하는 감각을 되찾게 해 줍니다.",
              "산만했던 생각을 정리하고 지금 할 일에 집중하도록 도와줍니다.",
              "한 가지에 깊이 빠져드는 경험이 집중력을 되살려 줍니다."],
    "healing": ["상처를 천천히 들여다보게 하며 마음이 회복되는 시간을 줍니다.",
                "아픈 기억을 외면하지 않고 보듬는 과정이 회복의 실마리가 됩니다.",
                "{emo} 마음에 새살이 돋도록 천천히 곁을 지켜 줍니다."],
    "motivation": ["다시 시작해 보고 싶은 동기와 작은 실천의 힘을 줍니다.",
                   "내일 당장 해 볼 수 있는 한 걸음을 떠올리게 합니다.",
                   "멈춰 있던 마음에 다시 움직일 이유를 건넵니다."],
    "hope": ["{emo} 날들 뒤에도 내일이 있다는 희망을 떠올리게 합니다.",
             "어둠 속에서도 빛을 찾아낸 이야기가 앞날을 기대하게 만듭니다.",
             "지금의 막막함이 끝이 아니라는 믿음을 조용히 심어 줍니다."],
    "joy": ["읽는 내내 미소가 번지는 가벼운 즐거움을 줍니다.",
            "유쾌한 장면들이 굳어 있던 마음을 풀어 주고 웃음을 되찾게 합니다.",
            "작은 기쁨을 발견하는 눈을 다시 뜨게 해 줍니다."],
    "insight": ["나와 세상을 새로운 눈으로 보게 하는 통찰을 줍니다.",
                "익숙한 생각을 한 걸음 떨어져 바라보게 하는 깨달음을 줍니다.",
                "{emo} 마음의 뿌리를 이해하는 실마리를 건넵니다."],
    "curiosity": ["몰랐던 세계에 대한 호기심을 깨워 생각을 넓혀 줍니다.",
                  "새로운 질문을 품게 해 일상에 작은 설렘을 더합니다.",
                  "책장을 덮은 뒤에도 더 알고 싶은 마음이 이어집니다."],
    "empathy": ["다른 사람의 삶에 공감하며 나의 감정도 이해하게 해 줍니다.",
                "인물들의 마음을 따라가다 보면 내 마음도 조금 더 너그러워집니다.",
                "나만 이런 게 아니라는 공감이 {emo} 마음을 덜어 줍니다."],
    "escape": ["잠시 현실을 벗어나 다른 세계에 푹 빠지는 기분 전환이 됩니다.",
               "복잡한 현실에서 한 발 물러나 숨 돌릴 틈을 만들어 줍니다.",
               "이야기 속으로 떠나는 짧은 여행이 마음을 환기해 줍니다."],
}
EFFECTS_EN = {
    "comfort": ["It offers gentle comfort to {a_emo} mind and the sense of not being alone.",
                "It sits beside you like a kind friend, a small comfort on {a_emo} day.",
                "Reading it feels like a warm hand on the shoulder."],
    "calm": ["Its unhurried pace helps {a_emo} mind slow down and settle.",
             "The quiet rhythm of its pages slows your breathing and steadies your thoughts.",
             "Page by page, the noise in your head grows softer."],
    "courage": ["It lends the courage to take the next step, even when {you_feel}.",
                "Stories of people who did not back down can wake your own courage.",
                "It quietly adds strength to a small decision you have been putting off."],
    "focus": ["It gathers scattered attention and brings back the feeling of deep focus.",
              "It helps you set distractions aside and settle on what matters now.",
              "Sinking into one thing for a while can rebuild your focus."],
    "healing": ["It makes room to look at old hurts gently and begin to heal.",
                "Facing painful memories with care, as it does, can be where healing starts.",
                "It stays with {a_emo} heart while it slowly mends."],
    "motivation": ["It rekindles the will to start again with small, concrete steps.",
                   "It leaves you with one thing you could try tomorrow.",
                   "It gives a stalled mind a reason to move again."],
    "hope": ["It reminds you that there is a tomorrow beyond {feeling}.",
             "A story that finds light in the dark makes the days ahead feel possible.",
             "It plants the quiet belief that this stuck feeling is not the end."],
    "joy": ["It is a quiet pleasure that keeps a smile on your face.",
            "Its playful moments loosen a tight mind and bring laughter back.",
            "It helps you notice small joys again."],
    "insight": ["It offers insight that lets you see yourself and the world anew.",
                "It helps you step back from familiar thoughts and see them clearly.",
                "It offers a clue to where {feeling} comes from."],
    "curiosity": ["It wakes up curiosity about worlds you did not know.",
                  "It leaves you with new questions and a little everyday excitement.",
                  "Long after the last page, you will want to know more."],
    "empathy": ["It builds empathy for other lives and, through them, for your own feelings.",
                "Following its characters' hearts makes you a little gentler with your own.",
                "Knowing you are not the only one can ease {a_emo} mind."],
    "escape": ["It is a welcome escape into another world for a while.",
               "It lets you step out of a crowded life long enough to breathe.",
               "A short journey into its story clears the air in your head."],
}
_TAIL = {
    "ko": ["", "", " 덤으로 {m2}도 조금 얻을 수 있습니다.", " 읽고 나면 {m2}의 여운도 남습니다."],
    "en": ["", "", " Along the way, it offers some {m2} too.", " It also leaves a little {m2} behind."],
}


def _article(word: str) -> str:
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def explain(book, task: TeacherTask, rng: random.Random) -> dict:
    """One book of the answer: its catalog line parts and a reason and an effect written for this reader."""
    req, lang = task.request, task.request.language
    mood = next((m for m in req.moods if m in book.moods), None) or (book.moods[0] if book.moods else "comfort")
    others = [m for m in book.moods if m != mood]
    mood2 = rng.choice(others) if others else None
    genre = genre_name(book.genres[0], lang) if book.genres else ("책" if lang == "ko" else "book")
    focus = FOCUS_PHRASE[lang].get(req.focus) or (f"'{req.focus}'에 맞게" if lang == "ko"
                                                  else f"the way you like ({req.focus})")
    desc = (book.description or "").strip()
    if lang == "ko":
        ctx = {"title": book.title, "genre": genre, "sentence": _ko_sentence(desc) or f"{genre}입니다.",
               "noun": _ko_noun(desc), "mood": mood_name(mood, lang),
               "moods_ko": (p(mood_name(mood, lang), "과/와") + " " + mood_name(mood2, lang)) if mood2
               else mood_name(mood, lang),
               "emotion": req.emotion, "emo_adj": req.emotion_adj, "occ": req.occupation,
               "situation": req.situation, "when": _ko_when(req.situation), "focus": focus}
        reason = rng.choice(_reasons_ko(ctx))
        effect = rng.choice(EFFECTS_KO[mood]).format(emo=req.emotion_adj)
    else:
        ctx = {"title": book.title, "genre": genre, "a_genre": _article(genre),
               "desc": desc or f"It is {_article(genre)}.",
               "mood": mood, "mood2": mood2, "emotion": req.emotion, "a_occ": _article(req.occupation),
               "situation": req.situation, "focus": focus}
        reason = rng.choice(_reasons_en(ctx))
        ing = req.emotion.endswith("ing")  # "grieving": "when you are grieving", not "when you feel grieving"
        effect = rng.choice(EFFECTS_EN[mood]).format(
            emo=req.emotion_adj, a_emo=_article(req.emotion_adj),
            you_feel=f"you are {req.emotion}" if ing else f"you feel {req.emotion}",
            feeling=req.emotion if ing else f"feeling {req.emotion}")
    if mood2:
        effect += rng.choice(_TAIL[lang]).format(m2=mood_name(mood2, lang))
    return {"title": book.title, "author": book.author, "reason": " ".join(reason.split()), "effect": effect}


class OfflineCatalogProvider(VendorClient):
    name = "offline"
    label = "offline template"
    default_model = "offline-template"
    is_api = False

    async def agenerate(self, task: TeacherTask) -> Completion:
        request = task.request
        if len(task.candidates) < task.n_books:
            raise CallError(f"only {len(task.candidates)} candidate book(s) for {request.moods}; "
                            f"{task.n_books} needed", retryable=False)
        rng = random.Random(task.seed)

        def jitter(book) -> float:
            # Seeded per book, not drawn in list order: the candidates' order must not change the choice.
            return random.Random(f"{task.seed}:{book.id}").random()

        # Best fit first; the jitter (small next to one shared mood) varies near-ties between requests.
        ranked = sorted(task.candidates, key=lambda b: (-(fit_score(b, task) + 0.15 * jitter(b)), b.id))
        books = [explain(book, task, rng) for book in ranked[:task.n_books]]
        obj = {"books": books}
        return Completion(raw=json.dumps(obj, ensure_ascii=False), parsed=obj)
