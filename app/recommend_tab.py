"""Recommend tab, for end users: describe how you feel (the seed's five fields plus free text, in Korean or
English); the chosen model's answer streams in, and every book it names is shown with its catalog card
(author, year, description) or marked "not in catalog"."""
from __future__ import annotations

import gradio as gr

from app.answer_view import cards_markdown
from app.request_form import build_request_form
from app.services import Services
from training.backends import BackendError

INTRO = {"en": "Tell us how you feel and what you need; a model recommends three books. "
               "Books are checked against the catalog.",
         "ko": "지금의 감정과 필요한 것을 알려 주세요. 모델이 책 세 권을 추천하고, 추천한 책은 카탈로그에서 확인합니다."}
BUTTON = {"en": "Recommend", "ko": "추천 받기"}
ANSWER = {"en": "Answer", "ko": "추천"}
GENERATING = {"en": "*generating…*", "ko": "*추천을 쓰는 중…*"}


def build_recommend_tab(services: Services) -> gr.Dropdown:
    with gr.Tab("Recommend", id="recommend"):
        intro = gr.Markdown(INTRO["en"], elem_id="rec_intro")
        choices = services.backend_choices() + services.api_choices()
        # Offered backends only (checked again on the server): typing a URL or model is an admin action.
        backend = gr.Dropdown(choices, value=choices[0], label="Model / 모델", elem_id="rec_backend")
        form = build_request_form("en", prefix="rec_")
        button = gr.Button(BUTTON["en"], variant="primary", elem_id="rec_button")
        answer = gr.Textbox(label=ANSWER["en"], lines=12, interactive=False, elem_id="rec_answer")
        cards = gr.Markdown(elem_id="rec_cards")

        def recommend(backend_label, language, emotion, occupation, effects, situation, focus, free_text, retrieval):
            try:
                prompt, _ = services.request_prompt(
                    language, emotion, occupation, effects, situation, focus, free_text, retrieval)
                chat = services.backend(backend_label, language)
            except (ValueError, BackendError) as e:
                raise gr.Error(str(e))
            text = ""
            yield "", GENERATING[language]
            try:
                for chunk in chat.stream([{"role": "user", "content": prompt}]):
                    text += chunk
                    yield text, GENERATING[language]
            except BackendError as e:
                yield text, f"⚠️ {e}"
                return
            yield text, cards_markdown(services.book_cards(text, language), language)

        def relabel(language):
            # The form's own fields switch in build_request_form; this switches the rest of the tab.
            return gr.Markdown(INTRO[language]), gr.Button(BUTTON[language]), gr.Textbox(label=ANSWER[language])

        form.language.change(relabel, form.language, [intro, button, answer])
        button.click(recommend, [backend, *form.inputs], [answer, cards])

        return backend
