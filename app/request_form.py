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

    def switch_language(new_lang: str):
        c2, L2 = _choices(new_lang), LABELS[new_lang]
        return (gr.Dropdown(choices=c2["emotion"], value=c2["emotion"][0], label=L2["emotion"]),
                gr.Dropdown(choices=c2["occupation"], value=c2["occupation"][0], label=L2["occupation"]),
                gr.Dropdown(choices=c2["effects"], value=c2["effects"][:2], label=L2["effects"]),
                gr.Dropdown(choices=c2["situation"], value=c2["situation"][0], label=L2["situation"]),
                gr.Dropdown(choices=c2["focus"], value=c2["focus"][0], label=L2["focus"]),
                gr.Textbox(label=L2["free"]))

    lang.change(switch_language, lang, form.fields)
    return form
