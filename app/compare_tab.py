"""Compare tab: one request, several backends, answers side by side with time to first token, total time,
tokens and how many of the named books exist in the catalog. Every comparison is stored in the DB."""
from __future__ import annotations

import os

import gradio as gr

from app.request_form import build_request_form
from app.services import BASE_LABEL, Services
from db.models import Comparison
from training.inference import StreamStats

API_NOTE_NO_KEY = (
    "**API baseline:** no `OPENAI_API_KEY` or `ANTHROPIC_API_KEY` is set, so this comparison runs between the "
    "local base model and your fine-tuned adapters. With a key, GPT or Claude writes your training samples "
    "(Generate tab); a GPT/Claude column here comes with the API chat backends in the next release."
)
API_NOTE_KEY = (
    "**API baseline:** a key is set and GPT/Claude can write your training samples (Generate tab); a GPT/Claude "
    "column here comes with the API chat backends in the next release. This comparison runs between the local "
    "base model and your fine-tuned adapters."
)


def _stats_line(stats: StreamStats, cards) -> str:
    grounded = sum(1 for c in cards if c.book)
    ttft = f"{stats.ttft_s:.2f} s" if stats.ttft_s is not None else "-"
    return (f"first token {ttft} · total {stats.total_s:.1f} s · {stats.tokens} tokens · "
            f"cost $0 (local) · **{grounded}/{len(cards)} books in catalog**")


def build_compare_tab(services: Services) -> tuple[gr.Dropdown, gr.Dropdown]:
    with gr.Tab("Compare", id="compare"):
        has_key = bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("ANTHROPIC_API_KEY"))
        gr.Markdown(API_NOTE_KEY if has_key else API_NOTE_NO_KEY, elem_id="cmp_api_note")
        choices = services.backend_choices()
        form = build_request_form("en", prefix="cmp_")
        button = gr.Button("Compare", variant="primary", elem_id="cmp_button")
        with gr.Row():
            with gr.Column():
                left = gr.Dropdown(choices, value=BASE_LABEL, label="Left", elem_id="cmp_left")
                left_out = gr.Textbox(label="Answer", lines=12, interactive=False, elem_id="cmp_left_answer")
                left_stats = gr.Markdown(elem_id="cmp_left_stats")
            with gr.Column():
                right = gr.Dropdown(choices, value=choices[0], label="Right", elem_id="cmp_right")
                right_out = gr.Textbox(label="Answer", lines=12, interactive=False, elem_id="cmp_right_answer")
                right_stats = gr.Markdown(elem_id="cmp_right_stats")

        def compare(left_label, right_label, language, emotion, occupation, effects, situation, focus, free_text, retrieval):
            try:
                prompt, fields = services.request_prompt(
                    language, emotion, occupation, effects, situation, focus, free_text, retrieval)
                adapters = [services.adapter_for(left_label), services.adapter_for(right_label)]
            except ValueError as e:
                raise gr.Error(str(e))
            texts, lines, results = ["", ""], ["*waiting…*", "*waiting…*"], []
            # The shared local model serves one request at a time, so the columns take turns.
            for i, (label, adapter) in enumerate(zip((left_label, right_label), adapters)):
                stats = StreamStats()
                lines[i] = "*generating…*"
                error = None
                try:
                    for chunk in services.model().stream(prompt, adapter=adapter, stats=stats):
                        texts[i] += chunk
                        yield texts[0], lines[0], texts[1], lines[1]
                    cards = services.book_cards(texts[i], language)
                    lines[i] = _stats_line(stats, cards)
                except Exception as e:  # noqa: BLE001 - one failing column must not stop the other
                    error, cards = f"{type(e).__name__}: {e}", []
                    lines[i] = f"⚠️ {error}"
                results.append({"backend": label, "output": texts[i], "ttft_s": stats.ttft_s,
                                "total_s": stats.total_s, "tokens": stats.tokens,
                                "grounded": sum(1 for c in cards if c.book), "books": len(cards), "error": error})
                yield texts[0], lines[0], texts[1], lines[1]
            with services.db.begin() as s:
                s.add(Comparison(prompt=prompt, request=fields, results=results, blind=False))

        button.click(compare, [left, right, *form.inputs], [left_out, left_stats, right_out, right_stats])
    return left, right
