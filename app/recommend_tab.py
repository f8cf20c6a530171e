"""Recommend tab, for end users: describe how you feel (the seed's five fields plus free text, in Korean or
English); the chosen model's answer streams in, and every book it names is shown with its catalog card
(author, year, description) or marked "not in catalog". A request that signals self-harm or suicidal thoughts
gets a caring message with the crisis line above the answer first (datagen/safety.py); an answer cut short by
its token limit says so. Nothing of the request is stored."""
from __future__ import annotations

import time

import gradio as gr

from app.answer_view import (cards_markdown, constrained_checkbox, crisis_markdown, progress_line, waiting_line,
                             writing_line)
from app.escape import html_text
from app.parallel import TICK_S
from app.request_form import build_request_form, example_buttons
from app.services import Services, cards_of, form_request
from db.feedback import record_feedback
from training.backends import BackendError

INTRO = {"en": "Tell us how you feel and what you need; a model recommends three books. "
               "Books are checked against the catalog.",
         "ko": "지금의 감정과 필요한 것을 알려 주세요. 모델이 책 세 권을 추천하고, 추천한 책은 카탈로그에서 확인합니다."}
BUTTON = {"en": "Recommend", "ko": "추천 받기"}
TRY = {"en": "**Or try one of these:**", "ko": "**예시로 해 보기:**"}
ANSWER = {"en": "Answer", "ko": "추천"}
THANKS = {"en": "*Thank you — your vote is kept with the model's name and its books, not your request.*",
          "ko": "*고맙습니다 — 요청 내용은 빼고, 평가와 모델 이름, 추천된 책만 저장했습니다.*"}
OFFERED = {"en": "Chosen among {n} catalog books retrieved for this request.",
           "ko": "이 요청에 맞춰 카탈로그에서 찾은 {n}권 중에서 골랐습니다."}


def build_recommend_tab(services: Services) -> gr.Dropdown:
    with gr.Tab("Recommend", id="recommend"):
        intro = gr.Markdown(INTRO["en"], elem_id="rec_intro")
        # Offered backends only (checked again on the server): typing a URL or model is an admin action. The
        # reader's model (published by the operator) comes first, under a plain name.
        backend = gr.Dropdown(services.recommend_choices(), value=services.reader_label(), label="Model / 모델",
                              elem_id="rec_backend")
        form = build_request_form("en", prefix="rec_")
        gr.Markdown(TRY["en"] + " / " + TRY["ko"], elem_id="rec_try")
        examples = example_buttons(form, "rec_")
        constrained = constrained_checkbox("rec_")
        button = gr.Button(BUTTON["en"], variant="primary", elem_id="rec_button")
        crisis = gr.Markdown(elem_id="rec_crisis")
        answer = gr.Textbox(label=ANSWER["en"], lines=12, interactive=False, elem_id="rec_answer")
        cards = gr.Markdown(elem_id="rec_cards")
        answered = gr.State(None)  # the last finished answer: which model, which books (what a vote keeps)
        with gr.Row():
            thumbs_up = gr.Button("👍 Helpful / 도움이 됨", elem_id="rec_up", scale=0, min_width=220)
            thumbs_down = gr.Button("👎 Not for me / 맞지 않음", elem_id="rec_down", scale=0, min_width=220)
            thanks = gr.Markdown(elem_id="rec_thanks")

        def recommend(backend_label, language, emotion, occupation, effects, situation, focus, free_text,
                      constrain=True):
            # The pipeline gives the model the prompt shape it was trained on (candidates or not): no checkbox.
            try:
                request = form_request(language, emotion, occupation, effects, situation, focus, free_text)
            except ValueError as e:
                raise gr.Error(str(e))
            notice = crisis_markdown(request.fields(), language)
            try:
                prepared = services.recommender.prepare(request, backend_label, constrained=bool(constrain))
            except (ValueError, BackendError) as e:
                if not notice:
                    raise gr.Error(str(e))
                # The message with the crisis line shows whatever the backend does.
                yield "", f"⚠️ {html_text(e)}", notice, None
                return
            text, t0 = "", time.perf_counter()
            backend = prepared.backend
            yield "", waiting_line(backend, 0.0, language), notice, None
            for up in services.recommender.stream_many([prepared], tick_s=TICK_S):
                if up.tick:  # where the answer is: its place in the queue, or the time left writing
                    yield text, progress_line(backend, bool(text), time.perf_counter() - t0, language), notice, None
                    continue
                if up.delta:
                    text += up.delta
                    yield text, writing_line(backend, language), notice, None
                if up.result is None:
                    continue
                item = up.result
                if item.error:
                    yield text, f"⚠️ {html_text(item.error)}", notice, None
                    return
                notes = "".join(f"*{html_text(n)}*\n\n" for n in item.notices)
                if item.candidates:
                    notes += f"*{OFFERED[language].format(n=len(item.candidates))}*\n\n"
                shown = cards_of(item)
                answered = {"backend": backend_label, "language": language, "titles": [c.title for c in shown]}
                yield (text, notes + cards_markdown(shown, language, truncated=item.usage.truncated), notice,
                       answered)

        def relabel(language):
            # The form's own fields switch in build_request_form; this switches the rest of the tab.
            return gr.Markdown(INTRO[language]), gr.Button(BUTTON[language]), gr.Textbox(label=ANSWER[language]), ""

        def vote(direction):
            def handler(last):
                if not last:
                    raise gr.Error("Ask for books first; then tell us whether they fit.")
                record_feedback(services.db, last["backend"], direction, last["language"], last["titles"])
                return THANKS[last["language"]]
            handler.__name__ = f"feedback_{direction}"
            return handler

        form.language.change(relabel, form.language, [intro, button, answer, thanks])
        button.click(recommend, [backend, *form.inputs, constrained], [answer, cards, crisis, answered])
        for filled in examples:  # an example fills the form, then asks at once
            filled.then(recommend, [backend, *form.inputs, constrained], [answer, cards, crisis, answered],
                        api_name=False)
        thumbs_up.click(vote("up"), answered, thanks)
        thumbs_down.click(vote("down"), answered, thanks)

        return backend
