"""The offline catalog provider: builds grounded samples from the catalog with templates, no API key.

It is deterministic for a seed and every book it names exists in the catalog. Its answers are plainly
template text — labelled "offline template" wherever they show — good enough to prove the pipeline and
give the student the output format, not a substitute for a GPT/Claude teacher.
"""
from __future__ import annotations

import json
import random

from datagen.prompts import has_batchim
from datagen.providers.base import CallError, Completion, Provider, TeacherTask

MOOD_EFFECT = {
    "ko": {
        "comfort": "{emo} 마음을 다정하게 다독여 주어, 혼자가 아니라는 위로를 건넵니다.",
        "calm": "느린 호흡의 문장이 {emo} 마음을 차분하게 가라앉혀 줍니다.",
        "courage": "{emo} 순간에도 한 걸음 내디딜 용기를 북돋아 줍니다.",
        "focus": "흩어진 주의를 한곳에 모으고 몰입하는 감각을 되찾게 해 줍니다.",
        "healing": "상처를 천천히 들여다보게 하며 마음이 회복되는 시간을 줍니다.",
        "motivation": "다시 시작해 보고 싶은 동기와 작은 실천의 힘을 줍니다.",
        "hope": "{emo} 날들 뒤에도 내일이 있다는 희망을 떠올리게 합니다.",
        "joy": "읽는 내내 미소가 번지는 가벼운 즐거움을 줍니다.",
        "insight": "나와 세상을 새로운 눈으로 보게 하는 통찰을 줍니다.",
        "curiosity": "몰랐던 세계에 대한 호기심을 깨워 생각을 넓혀 줍니다.",
        "empathy": "다른 사람의 삶에 공감하며 나의 감정도 이해하게 해 줍니다.",
        "escape": "잠시 현실을 벗어나 다른 세계에 푹 빠지는 기분 전환이 됩니다.",
    },
    "en": {
        "comfort": "It offers gentle comfort to a {emo} mind and the sense of not being alone.",
        "calm": "Its unhurried pace helps a {emo} mind slow down and settle.",
        "courage": "It lends the courage to take the next step, even when you feel {emo}.",
        "focus": "It gathers scattered attention and brings back the feeling of deep focus.",
        "healing": "It makes room to look at old hurts gently and begin to heal.",
        "motivation": "It rekindles the will to start again with small, concrete steps.",
        "hope": "It reminds you that there is a tomorrow beyond feeling {emo}.",
        "joy": "It is a quiet pleasure that keeps a smile on your face.",
        "insight": "It offers insight that lets you see yourself and the world anew.",
        "curiosity": "It wakes up curiosity about worlds you did not know.",
        "empathy": "It builds empathy for other lives and, through them, for your own feelings.",
        "escape": "It is a welcome escape into another world for a while.",
    },
}
REASON = {
    "ko": ["{desc} '{situation}' 같은 때에 {occupation_subject} {focus_phrase} 펼치기 좋은 책입니다.",
           "{desc} {occupation}의 일상과 맞닿아 있어 '{situation}' 같은 순간에 읽기 알맞습니다.",
           "{desc} {focus_phrase} 읽을 수 있어 '{situation}' 같은 때에 잘 어울립니다."],
    "en": ["{desc} It suits {a_occupation} during {situation}, read {focus_phrase}.",
           "{desc} It speaks to the everyday life of {a_occupation} and fits {situation}.",
           "{desc} It can be read {focus_phrase}, which makes it a good match for {situation}."],
}
FOCUS_PHRASE = {
    "ko": {"가볍게 읽을 수 있음": "가볍게", "조금씩 나눠 읽기": "조금씩 나눠", "몰입해서 읽기": "몰입해서",
           "깊이 생각하며 읽기": "깊이 생각하며"},
    "en": {"light and easy": "lightly, a few pages at a time", "in short sittings": "in short sittings",
           "immersive": "in one immersive sitting", "slow and thoughtful": "slowly and thoughtfully"},
}


class OfflineCatalogProvider(Provider):
    name = "offline"
    label = "offline template"
    default_model = "offline-template"
    is_api = False

    async def agenerate(self, task: TeacherTask) -> Completion:
        request, lang = task.request, task.request.language
        if len(task.candidates) < task.n_books:
            raise CallError(f"only {len(task.candidates)} candidate book(s) for {request.moods}; "
                            f"{task.n_books} needed", retryable=False)
        rng = random.Random(task.seed)
        wanted = set(request.moods)
        # Prefer books that match more of the requested moods, then shuffle within the pool.
        pool = sorted(task.candidates, key=lambda b: (-len(wanted & set(b.moods)), rng.random()))
        picks = rng.sample(pool[: max(task.n_books * 3, 6)], task.n_books)
        books = []
        for book in picks:
            mood = next((m for m in request.moods if m in book.moods), None) or book.moods[0]
            article = "an" if request.occupation[0] in "aeiou" else "a"
            reason = rng.choice(REASON[lang]).format(
                desc=book.description.rstrip(), situation=request.situation, occupation=request.occupation,
                a_occupation=f"{article} {request.occupation}",
                focus_phrase=FOCUS_PHRASE[lang].get(request.focus, request.focus),
                occupation_subject=request.occupation + ("이" if has_batchim(request.occupation) else "가"),
            )
            author = book.author
            if lang == "ko" and book.translator:
                author = f"{book.author} 지음 ; {book.translator} 옮김"
            books.append({"title": book.title, "author": author, "reason": reason,
                          "effect": MOOD_EFFECT[lang][mood].format(emo=request.emotion_adj)})
        obj = {"books": books}
        return Completion(raw=json.dumps(obj, ensure_ascii=False), parsed=obj)
