"""Compare tab: one request to 2–3 backends at once — API baselines (GPT, Claude, any OpenAI-compatible URL
such as a vLLM server with a LoRA module), the local base model and finished runs' adapters — streaming in
parallel, side by side, each with time to first token, total time, tokens, estimated cost and how many of
its books exist in the catalog. Every comparison is stored in the DB (comparisons, blind = false), without the
reader's free text unless the operator keeps it (app/reader_data.py). A request that signals self-harm or suicidal
thoughts gets a caring message with the crisis line above the columns (datagen/safety.py)."""
from __future__ import annotations

import gradio as gr

from app.answer_view import constrained_checkbox, crisis_markdown
from app.offered import require_offered
from app.parallel import run_columns
from app.reader_data import stored_request
from app.request_form import build_request_form
from app.services import BASE_LABEL, Services, form_request
from db.models import Comparison
from training.backends import BackendError, api_backends_available
from vendors.labels import OFFLINE_LABEL

NONE = "(none)"
N_COLUMNS = 3


def api_note() -> str:
    keys = api_backends_available()
    if not any(keys.values()):
        return ("**API baseline:** no `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` is set. To add a GPT or Claude "
                "column, `export OPENAI_API_KEY=...` (or `ANTHROPIC_API_KEY`) in the shell that starts "
                "`moodshelf serve` and restart; an OpenAI-compatible server (vLLM, Ollama) needs only its URL: "
                "the operator adds it in the admin *Backends* tab (or sets `OPENAI_COMPATIBLE_BASE_URL`). Until "
                "then the teacher column is the *offline template teacher* that wrote the demo's samples: the "
                "student it taught answers beside it.")
    have = ", ".join(k for k, v in keys.items() if v)
    return (f"**API baseline:** keys found for {have}. API columns stream at the same time as the local ones; "
            "costs are estimates from list prices.")


def default_columns(services: Services) -> tuple[list[str], list[str]]:
    """Choices for the column dropdowns and their initial values: the reader's model (the published run, else
    the best evaluated one: training/publish.py), the base model, and a teacher: GPT or Claude when a key is set,
    else the offline template teacher that wrote the demo's samples — teacher against the student it taught."""
    local = services.backend_choices()
    api = services.api_choices()
    choices = local + api + [NONE]
    keyed = [a for a in api if a != OFFLINE_LABEL and services.has_key(a)]
    teacher = keyed[0] if keyed else OFFLINE_LABEL
    first = services.reader_label()
    values = [first, BASE_LABEL if first != BASE_LABEL else teacher, teacher if first != BASE_LABEL else NONE]
    return choices, values


def build_compare_tab(services: Services) -> list[gr.Dropdown]:
    with gr.Tab("Compare", id="compare"):
        gr.Markdown(api_note(), elem_id="cmp_api_note")
        choices, values = default_columns(services)
        form = build_request_form("en", prefix="cmp_")
        constrained = constrained_checkbox("cmp_")
        button = gr.Button("Compare", variant="primary", elem_id="cmp_button")
        crisis = gr.Markdown(elem_id="cmp_crisis")
        pickers, outputs = [], []
        with gr.Row():
            for i in range(N_COLUMNS):
                with gr.Column():
                    # Offered backends only (checked again on the server): a URL is added on the admin side.
                    pickers.append(gr.Dropdown(choices, value=values[i], label=f"Column {i + 1}",
                                               elem_id=f"cmp_col{i}"))
                    outputs.append(gr.Textbox(label="Answer", lines=12, interactive=False,
                                              elem_id=f"cmp_answer{i}"))
                    outputs.append(gr.Markdown(elem_id=f"cmp_stats{i}"))

        def compare(label0, label1, label2, language, emotion, occupation, effects, situation, focus, free_text,
                    constrain=True):
            labels = [lb for lb in (label0, label1, label2) if lb and lb != NONE]
            try:
                request = form_request(language, emotion, occupation, effects, situation, focus, free_text)
            except ValueError as e:
                raise gr.Error(str(e))
            if len(labels) < 2:
                raise gr.Error("Pick at least two backends to compare.")
            try:  # before anything runs: the page may send any string, the server answers with offered ones only
                require_offered(labels, services.offered_backends())
            except BackendError as e:
                raise gr.Error(str(e))
            slots = [i for i, lb in enumerate((label0, label1, label2)) if lb and lb != NONE]
            notice = crisis_markdown(request.fields(), language)
            state = None
            for state in run_columns(services, labels, request, constrained=bool(constrain)):
                shown = ["", ""] * N_COLUMNS
                for k, i in enumerate(slots):
                    shown[2 * i], shown[2 * i + 1] = state.texts[k], state.lines[k]
                yield [*shown, notice]
            kept_prompt, kept_fields = stored_request(state.prompt, request.fields(),
                                                      keep_text=services.settings.store_reader_text)
            with services.db.begin() as s:
                s.add(Comparison(prompt=kept_prompt, request=kept_fields, results=state.results, blind=False))

        button.click(compare, [*pickers, *form.inputs, constrained], [*outputs, crisis])
    return pickers
