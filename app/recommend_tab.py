"""Recommend tab: an end user describes how they feel; the chosen model answers, streaming, and every
book it names is shown with its catalog card or marked "not in catalog"."""
from __future__ import annotations

import gradio as gr

from app.request_form import build_request_form
from app.services import Services


def build_recommend_tab(services: Services) -> gr.Dropdown:
    with gr.Tab("Recommend", id="recommend"):
        gr.Markdown("Tell us how you feel and what you need; a model recommends three books. "
                    "Books are checked against the catalog.")
        choices = services.backend_choices()
        backend = gr.Dropdown(choices, value=choices[0], label="Model", elem_id="rec_backend")
        form = build_request_form("en", prefix="rec_")
        button = gr.Button("Recommend", variant="primary", elem_id="rec_button")
        answer = gr.Textbox(label="Answer", lines=12, interactive=False, elem_id="rec_answer")
        cards = gr.Markdown(elem_id="rec_cards")

        def recommend(backend_label, language, emotion, occupation, effects, situation, focus, free_text, retrieval):
            try:
                prompt, _ = services.request_prompt(
                    language, emotion, occupation, effects, situation, focus, free_text, retrieval)
                adapter = services.adapter_for(backend_label)
            except ValueError as e:
                raise gr.Error(str(e))
            text = ""
            yield "", "*generating…*"
            for chunk in services.model().stream(prompt, adapter=adapter):
                text += chunk
                yield text, "*generating…*"
            found = services.book_cards(text, language)
            if not found:
                msg = ("책 목록을 찾지 못했습니다." if language == "ko" else
                       "No numbered book list found in this answer.")
                yield text, f"*{msg}*"
                return
            grounded = sum(1 for c in found if c.book)
            head = f"**{grounded} of {len(found)} books are in the catalog**\n\n"
            yield text, head + "\n".join(c.markdown(language) for c in found)

        button.click(recommend, [backend, *form.inputs], [answer, cards])

        return backend
