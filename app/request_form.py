"""The request fields shared by the Recommend, Compare and Arena tabs (the seed's five fields + free text)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from datagen.grid import EFFECTS, EMOTIONS, FOCUS_LEVELS, OCCUPATIONS, SITUATIONS

LABELS = {
    "en": {"emotion": "Emotion", "occupation": "Occupation", "effects": "Desired effect", "situation": "Situation",
           "focus": "Focus", "free": "Anything else (optional)"},
    "ko": {"emotion": "감정", "occupation": "직업", "effects": "원하는 효과", "situation": "상황", "focus": "집중도",
           "free": "추가로 원하는 점 (선택)"},
}


@dataclass
class RequestForm:
    language: gr.Radio
    emotion: gr.Dropdown
    occupation: gr.Dropdown
    effects: gr.Dropdown
    situation: gr.Dropdown
    focus: gr.Dropdown
    free_text: gr.Textbox

    @property
    def inputs(self) -> list:
        return [self.language, self.emotion, self.occupation, self.effects, self.situation, self.focus,
                self.free_text]

    @property
    def fields(self) -> list:
        return self.inputs[1:7]


def _choices(language: str) -> dict:
    return {"emotion": [e for e, _ in EMOTIONS[language]], "occupation": OCCUPATIONS[language],
            "effects": list(EFFECTS[language]), "situation": SITUATIONS[language], "focus": FOCUS_LEVELS[language]}


@dataclass(frozen=True)
class ExampleRequest:
    """A request a reader can try with one click (the Recommend page's examples)."""

    label: str
    language: str
    emotion: str
    occupation: str
    effects: tuple[str, ...]
    situation: str
    focus: str
    free_text: str = ""

    @property
    def values(self) -> list:
        return [self.language, self.emotion, self.occupation, list(self.effects), self.situation, self.focus,
                self.free_text]


EXAMPLES = [
    ExampleRequest("😮‍💨 A tired new parent, a few pages before sleep", "en", "exhausted", "new parent",
                   ("comfort", "calm"), "winding down before sleep", "in short sittings"),
    ExampleRequest("🧭 Stuck, thinking about changing jobs", "en", "stuck", "office worker", ("courage", "insight"),
                   "thinking about changing jobs", "slow and thoughtful", "nothing too self-helpy"),
    ExampleRequest("🚇 지친 간호사, 출퇴근 지하철에서", "ko", "지침", "간호사", ("위로", "안정"), "출퇴근 지하철",
                   "가볍게 읽을 수 있음", "짧은 장으로 나뉜 책이면 좋겠어요"),
    ExampleRequest("🌧️ 외로운 대학생, 비 오는 날", "ko", "외로움", "대학생", ("공감", "기분 전환"), "비 오는 날 집에서",
                   "몰입해서 읽기"),
]


def field_updates(language: str, values: list | None = None) -> tuple:
    """The six fields in `language` (choices and labels), holding `values` or that language's defaults."""
    c, L = _choices(language), LABELS[language]
    emotion, occupation, effects, situation, focus, free = values or (
        c["emotion"][0], c["occupation"][0], c["effects"][:2], c["situation"][0], c["focus"][0], "")
    return (gr.Dropdown(choices=c["emotion"], value=emotion, label=L["emotion"]),
            gr.Dropdown(choices=c["occupation"], value=occupation, label=L["occupation"]),
            gr.Dropdown(choices=c["effects"], value=effects, label=L["effects"]),
            gr.Dropdown(choices=c["situation"], value=situation, label=L["situation"]),
            gr.Dropdown(choices=c["focus"], value=focus, label=L["focus"]),
            gr.Textbox(label=L["free"]) if values is None else gr.Textbox(value=free, label=L["free"]))


def example_buttons(form: "RequestForm", prefix: str) -> list:
    """One button per example request; a click fills the form with it. Returns the click events, so the caller
    can chain what follows (`event.then(...)`)."""
    events = []
    with gr.Row(elem_id=f"{prefix}examples"):
        for i, example in enumerate(EXAMPLES):
            button = gr.Button(example.label, size="sm", variant="secondary", elem_id=f"{prefix}example_{i}",
                               scale=0, min_width=200)

            def fill(example=example):
                return (example.language, *field_updates(example.language, example.values[1:]))

            fill.__name__ = f"example_{i}"
            events.append(button.click(fill, None, form.inputs, api_name=False))
    return events


def build_request_form(language: str = "en", prefix: str = "") -> RequestForm:
    c, L = _choices(language), LABELS[language]
    lang = gr.Radio(["en", "ko"], value=language, label="Language / 언어", elem_id=f"{prefix}language")
    with gr.Row():
        emotion = gr.Dropdown(c["emotion"], value=c["emotion"][0], label=L["emotion"], allow_custom_value=True,
                              elem_id=f"{prefix}emotion")
        occupation = gr.Dropdown(c["occupation"], value=c["occupation"][0], label=L["occupation"],
                                 allow_custom_value=True, elem_id=f"{prefix}occupation")
        effects = gr.Dropdown(c["effects"], value=c["effects"][:2], multiselect=True, label=L["effects"],
                              elem_id=f"{prefix}effects")
    with gr.Row():
        situation = gr.Dropdown(c["situation"], value=c["situation"][0], label=L["situation"],
                                allow_custom_value=True, elem_id=f"{prefix}situation")
        focus = gr.Dropdown(c["focus"], value=c["focus"][0], label=L["focus"], allow_custom_value=True,
                            elem_id=f"{prefix}focus")
    free_text = gr.Textbox(label=L["free"], lines=1, elem_id=f"{prefix}free_text")
    # No "retrieval mode" box: each model gets the prompt shape it was trained on (training/recommend.py).
    form = RequestForm(lang, emotion, occupation, effects, situation, focus, free_text)
    # .input, not .change: only the reader's own switch resets the fields; an example sets language and fields
    # together, and a change event would then overwrite its fields with the defaults.
    lang.input(lambda new_lang: field_updates(new_lang), lang, form.fields, api_name=False)
    return form
