"""Backends tab (admin): the chat backends this server offers, and a form to add one — an OpenAI-compatible
server's URL and model (vLLM, Ollama, llama.cpp) or another GPT/Claude model by name. Once added, every tab
offers it, the public ones included; nothing typed in a public tab ever reaches a model (app/offered.py).

The table says which key each backend's requests carry: a URL typed here gets OPENAI_COMPATIBLE_API_KEY only
when it is OPENAI_COMPATIBLE_BASE_URL itself.
"""
from __future__ import annotations

import gradio as gr
import pandas as pd

from app.offered import (KINDS, OfferError, add_custom_backend, custom_backend_labels, key_sent,
                         remove_custom_backend)
from app.services import Services
from training.backends import BackendSpec

TABLE_COLUMNS = ["backend", "from", "key sent"]


def offered_table(services: Services) -> pd.DataFrame:
    custom = set(custom_backend_labels(services.db))
    rows = []
    for label in services.offered_backends():
        spec = BackendSpec.from_label(label)
        source = ("this server's model" if spec.is_local else "the demo's teacher" if spec.kind == "offline" else
                  "added here" if label in custom else "environment")
        rows.append([label, source, key_sent(spec)])
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def build_backends_tab(services: Services) -> None:
    with gr.Tab("Backends", id="backends"):
        gr.Markdown("The backends every tab offers. Public tabs answer with these only; add an OpenAI-compatible "
                    "server (URL + model, e.g. a vLLM LoRA module) or another GPT/Claude model here and it is "
                    "offered from the next page load on. A URL added here gets `OPENAI_COMPATIBLE_API_KEY` only "
                    "when it is `OPENAI_COMPATIBLE_BASE_URL` itself.")
        table = gr.Dataframe(offered_table(services), interactive=False, elem_id="bk_table")
        with gr.Row():
            kind = gr.Dropdown(list(KINDS), value="openai-compatible", label="Kind", elem_id="bk_kind")
            model = gr.Textbox(label="Model", placeholder="moodshelf-run-3, gpt-4.1, claude-sonnet-4-5",
                               elem_id="bk_model")
            url = gr.Textbox(label="Base URL (OpenAI-compatible only)", placeholder="http://127.0.0.1:8000/v1",
                             elem_id="bk_url")
        add = gr.Button("Add backend", variant="primary", elem_id="bk_add")
        with gr.Row():
            added = gr.Dropdown(custom_backend_labels(services.db), value=None, label="Added backends",
                                elem_id="bk_added")
            remove = gr.Button("Remove", elem_id="bk_remove")
        status = gr.Markdown(elem_id="bk_status")

        def refreshed(message: str):
            return offered_table(services), gr.Dropdown(choices=custom_backend_labels(services.db), value=None), message

        def add_backend(kind_, model_, url_):
            try:
                spec = add_custom_backend(services.db, kind_, model_, url_, offered=services.offered_backends())
            except OfferError as e:
                raise gr.Error(str(e))
            return refreshed(f"Added `{spec.label}` — key sent: {key_sent(spec)}. Reload a page to see it in its "
                             "dropdowns.")

        def remove_backend(label):
            if not label:
                raise gr.Error("Pick an added backend to remove.")
            remove_custom_backend(services.db, label)
            return refreshed(f"Removed `{label}`.")

        add.click(add_backend, [kind, model, url], [table, added, status], api_name="add_backend")
        remove.click(remove_backend, added, [table, added, status], api_name="remove_backend")
