"""The Gradio app: Recommend, Compare, Generate, Train and Evaluate tabs over the shared services.

    moodshelf serve --port 7860
    python -m app.ui          # same, with defaults
"""
from __future__ import annotations

import os

from app.compare_tab import build_compare_tab
from app.eval_tab import build_eval_tab
from app.generate_tab import build_generate_tab
from app.train_tab import build_train_tab
from app.recommend_tab import build_recommend_tab
from app.services import BASE_LABEL, Services
from db.engine import Database, open_db
from training.config import DEFAULT_BASE_MODEL
from training.runs import reconcile_runs


def build_app(services: Services):
    import gradio as gr

    with gr.Blocks(title="moodshelf", analytics_enabled=False) as demo:
        gr.Markdown("# moodshelf\nBooks for how you feel — a small model taught by GPT/Claude, "
                    "compared side by side.")
        with gr.Tabs():
            rec_backend = build_recommend_tab(services)
            cmp_left, cmp_right = build_compare_tab(services)
            build_generate_tab(services)
            build_train_tab(services)
            build_eval_tab(services)

        def refresh_backends():
            # New training runs appear without restarting the app.
            ch = services.backend_choices()
            return (gr.Dropdown(choices=ch, value=ch[0]), gr.Dropdown(choices=ch, value=BASE_LABEL),
                    gr.Dropdown(choices=ch, value=ch[0]))

        demo.load(refresh_backends, None, [rec_backend, cmp_left, cmp_right])
    return demo


def serve(db: Database, host: str = "127.0.0.1", port: int = 7860, base_model: str | None = None,
          block: bool = True):
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    reconcile_runs(db)  # a run whose worker died while the app was down is marked failed, not 'running'
    from datagen.worker import reconcile_jobs

    reconcile_jobs(db)
    from training.evals import reconcile_evals

    reconcile_evals(db)
    services = Services(db=db, base_model=base_model or DEFAULT_BASE_MODEL)
    demo = build_app(services)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=host, server_port=port, ssr_mode=False, prevent_thread_lock=not block,
                show_error=True, footer_links=[], quiet=False)
    return demo


if __name__ == "__main__":
    serve(open_db())
