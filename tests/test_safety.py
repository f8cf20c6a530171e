"""A request that signals self-harm or suicidal thoughts gets a caring message with the crisis line first, in
Korean and English, whatever the spacing; ordinary sadness gets none."""
import pytest

from datagen.safety import crisis_notice, signals_crisis


@pytest.mark.parametrize("text", [
    "살고 싶지 않다", "살고싶지않아요", "죽고 싶다", "죽고싶어", "죽 고 싶 어 요", "그냥 죽어버리고 싶어", "자살", "자살 생각이 들어요",
    "자해를 했어요", "극단적 선택", "살 이유가 없어", "사는 게 싫어", "삶을 끝내고 싶어", "목숨을 끊고 싶다", "사라지고 싶어",
    "I want to die", "i WANT to   die", "I wanna die", "I'm going to kill myself", "thinking of killing myself",
    "feeling suicidal", "suicide", "I want to end my life", "I just want to end it all", "there is no reason to live",
    "I don't want to live anymore", "I don’t want to be alive", "I've been self-harming", "I keep hurting myself",
    "everyone would be better off dead without me... I'd be better off dead", "thinking about taking my own life",
])
def test_crisis_signals_are_recognised_in_both_languages(text):
    assert signals_crisis(text), text


@pytest.mark.parametrize("text", [
    "우울함", "슬픔", "외로움", "불안함", "지쳐 있음", "힘들어 죽겠다", "배고파 죽겠어", "너무 슬퍼요", "직장 스트레스",
    "sad", "down", "feeling down", "tired of work", "I'm dying to read a good mystery", "killing time on the train",
    "exhausted", "lonely", "heartbroken", "a book that kills it", "self-help", "the night commute",
])
def test_ordinary_sadness_is_not_a_crisis(text):
    assert not signals_crisis(text), text


def test_korean_request_gets_109_and_emergency_numbers_before_books():
    fields = {"emotion": "우울함", "occupation": "직장인", "effects": ["위로"], "situation": "잠들기 전",
              "focus": "가볍게 읽을 수 있음", "free_text": "요즘 정말 살고 싶지 않아요", "language": "ko"}
    notice = crisis_notice(fields, "ko")
    assert notice and "109" in notice and "112" in notice and "119" in notice and "혼자" in notice


def test_english_request_gets_988_and_911():
    notice = crisis_notice({"emotion": "hopeless", "situation": "I want to die", "free_text": ""}, "en")
    assert notice and "988" in notice and "911" in notice and "local" in notice


@pytest.mark.parametrize("field", ["emotion", "occupation", "situation", "focus", "free_text"])
def test_every_request_field_is_read(field):
    assert crisis_notice({field: "죽고 싶다"}, "ko")
    assert crisis_notice({"effects": ["comfort", "I want to end my life"]}, "en")


def test_no_notice_for_an_ordinary_request_and_english_for_other_languages():
    assert crisis_notice({"emotion": "우울함", "effects": ["위로", "안정"], "free_text": "슬픔"}, "ko") is None
    assert crisis_notice({"emotion": "sad", "free_text": "tired of work, dying to read"}, "en") is None
    assert "988" in crisis_notice({"emotion": "suicidal"}, "fr")
    assert "109" in crisis_notice({"emotion": "I want to die"}, "ko")  # the request's language decides the line
