"""The Gradio app: Recommend, Compare and Arena for everyone; Generate, Curate, Train and Evaluate for the
admin.

    moodshelf serve --port 7860                       # binds 127.0.0.1 unless --host says otherwise
    MOODSHELF_AUTH=admin:s3cret moodshelf serve       # admin tabs at /admin/ behind a login
    python -m app.ui                                  # same as `moodshelf serve`, with defaults

Without MOODSHELF_AUTH every tab is in one page (a local, single-user setup). With it, two Gradio apps
share one server and one set of services: the public one at / (Recommend, Compare, Arena) and the admin
one at /admin/ (Generate, Curate, Train), which Gradio's own login protects. `launch(auth=...)` can only protect a
whole app, hence the two apps on one FastAPI server.
"""
from __future__ import annotations

import os

from app.arena_tab import build_arena_tab
from app.backends_tab import build_backends_tab
from app.compare_tab import build_compare_tab, default_columns
from app.curate_tab import build_curate_tab
from app.eval_tab import build_eval_tab
from app.generate_tab import build_generate_tab
from app.recommend_tab import build_recommend_tab
from app.services import Services
from app.train_tab import build_train_tab
from db.engine import Database, open_db
from training.config import DEFAULT_BASE_MODEL
from training.runs import reconcile_runs

ADMIN_PATH = "/admin"
HEADER = "# moodshelf\nBooks for how you feel — a small model taught by GPT/Claude, compared side by side."


def parse_auth(value: str | None) -> list[tuple[str, str]]:
    """MOODSHELF_AUTH: `user:password`, or several accounts as `alice:pw1;bob:pw2` (the first ':' of each
    splits user from password). Empty or unset: no login."""
    accounts = []
    for part in (value or "").split(";"):
        if not part.strip():
            continue
        user, sep, password = part.strip().partition(":")
        if not sep or not user or not password:
            raise ValueError("MOODSHELF_AUTH must look like user:password (several: alice:pw1;bob:pw2).")
        accounts.append((user, password))
    return accounts


def build_app(services: Services, *, public: bool = True, admin: bool = True, admin_link: str | None = None):
    import gradio as gr

    with gr.Blocks(title="moodshelf" if public else "moodshelf admin", analytics_enabled=False) as demo:
        gr.Markdown(HEADER if public else "# moodshelf admin\nGenerate samples and train adapters.")
        if admin_link:
            gr.Markdown(f"[Admin tabs]({admin_link}) (login required)", elem_id="admin_link")
        pickers = []
        with gr.Tabs():
            if public:
                rec_backend = build_recommend_tab(services)
                cmp_pickers = build_compare_tab(services)
                arena_pool = build_arena_tab(services)
                pickers = [rec_backend, *cmp_pickers, arena_pool]
            if admin:
                build_generate_tab(services)
                build_curate_tab(services, demo)
                build_train_tab(services)
                build_eval_tab(services)
                build_backends_tab(services)

        if pickers:
            def refresh_backends():
                # New training runs appear without restarting the app.
                local, api = services.backend_choices(), services.api_choices()
                choices, values = default_columns(services)
                return (gr.Dropdown(choices=local + api, value=local[0]),
                        *(gr.Dropdown(choices=choices, value=v) for v in values),
                        gr.CheckboxGroup(choices=local + api,
                                         value=local + [a for a in api if services.has_key(a)]))

            demo.load(refresh_backends, None, pickers)
    return demo


def build_server(services: Services, accounts: list[tuple[str, str]]):
    """One FastAPI app: the admin Blocks at /admin behind Gradio's login, the public Blocks at /."""
    import gradio as gr
    from fastapi import FastAPI

    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    admin = build_app(services, public=False).queue(default_concurrency_limit=4)
    public = build_app(services, admin=False, admin_link=f"{ADMIN_PATH}/").queue(default_concurrency_limit=4)
    # The more specific mount first: "/" would otherwise swallow /admin.
    server = gr.mount_gradio_app(server, admin, path=ADMIN_PATH, auth=accounts, ssr_mode=False, footer_links=[],
                                 auth_message="moodshelf admin: Generate and Train")
    server = gr.mount_gradio_app(server, public, path="/", ssr_mode=False, footer_links=[])
    return server


def serve(db: Database, host: str = "127.0.0.1", port: int = 7860, base_model: str | None = None,
          block: bool = True, auth: str | None = None):
    """Serve the app. `auth` defaults to $MOODSHELF_AUTH. Returns the Blocks (no login) or the uvicorn
    server (login) so a caller with block=False can close it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    accounts = parse_auth(auth if auth is not None else os.environ.get("MOODSHELF_AUTH"))
    reconcile_runs(db)  # a run whose worker died while the app was down is marked failed, not 'running'
    from datagen.worker import reconcile_jobs

    reconcile_jobs(db)
    from training.evals import reconcile_evals

    reconcile_evals(db)
    services = Services(db=db, base_model=base_model or DEFAULT_BASE_MODEL)
    if not accounts:
        demo = build_app(services)
        demo.queue(default_concurrency_limit=4)
        demo.launch(server_name=host, server_port=port, ssr_mode=False, prevent_thread_lock=not block,
                    show_error=True, footer_links=[], quiet=False)
        return demo

    import threading

    import uvicorn

    config = uvicorn.Config(build_server(services, accounts), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    print(f"moodshelf: http://{host}:{port}/ (admin tabs at http://{host}:{port}{ADMIN_PATH}/, login required)",
          flush=True)
    if block:
        server.run()
    else:
        threading.Thread(target=server.run, name="uvicorn", daemon=True).start()
    return server


if __name__ == "__main__":
    serve(open_db())
