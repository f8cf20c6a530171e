"""The Gradio app: the readers' page (Recommend) and the workbench (Compare, Arena, Generate, Curate, Train,
Evaluate, Backends).

    moodshelf serve --port 7860                       # binds 127.0.0.1 unless --host says otherwise
    MOODSHELF_AUTH=admin:s3cret moodshelf serve       # admin tabs at /admin/ behind a login
    moodshelf serve --host 0.0.0.0                    # refused without MOODSHELF_AUTH (or --allow-open-admin)
    python -m app.ui                                  # same as `moodshelf serve`, with defaults

Without MOODSHELF_AUTH every tab is in one page (a local, single-user setup: whoever reaches the page is the
admin, so it binds a loopback address unless --allow-open-admin says otherwise). With it, two Gradio apps
share one server and one set of services: the readers' page at / (Recommend: the published model, example
requests) and the workbench at /admin/ (Compare and Arena beside the admin tabs), which Gradio's own login protects and app/server_guard.AdminGate closes completely to a client
without the login. `launch(auth=...)` can only protect a whole app, hence the two apps on one FastAPI server.
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
from app.settings import AppSettings
from app.train_tab import build_train_tab
from db.engine import Database, open_db
from training.config import DEFAULT_BASE_MODEL
from training.runs import reconcile_runs

ADMIN_PATH = "/admin"
HEADER = "# moodshelf\nBooks for how you feel — a small model taught by GPT/Claude, compared side by side."
WORKBENCH_HEADER = ("# moodshelf workbench\nCompare and battle models, generate and curate samples, train and "
                    "evaluate. The readers' page is [Recommend](/).")
ONE_PAGE_NOTE = ("*Recommend is the readers' page; the other tabs are the workbench. With MOODSHELF_AUTH set, "
                 "readers get Recommend alone and the workbench moves behind a login at /admin/.*")


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
    """`public`: the readers' page (Recommend); `admin`: the workbench (Compare, Arena and the admin tabs).
    Both (no login configured): one page with every tab."""
    import gradio as gr

    with gr.Blocks(title="moodshelf" if public else "moodshelf workbench", analytics_enabled=False) as demo:
        gr.Markdown(HEADER if public else WORKBENCH_HEADER)
        if public:  # one line on what is kept of a reader's request (app/reader_data.py)
            gr.Markdown(services.settings.reader_data_line(workbench=admin), elem_id="reader_data_line")
        if public and admin:
            gr.Markdown(ONE_PAGE_NOTE, elem_id="one_page_note")
        if admin_link:
            gr.Markdown(f"[Workbench]({admin_link}) (login required)", elem_id="admin_link")
        rec_backend = cmp_pickers = arena_pool = None
        with gr.Tabs():
            if public:
                rec_backend = build_recommend_tab(services)
            if admin:
                cmp_pickers = build_compare_tab(services)
                arena_pool = build_arena_tab(services)
                build_generate_tab(services)
                build_curate_tab(services, demo)
                build_train_tab(services)
                build_eval_tab(services)
                build_backends_tab(services)

        def refresh_backends():
            # New training runs (and a newly published one) appear without restarting the app.
            out = []
            if rec_backend is not None:
                out.append(gr.Dropdown(choices=services.recommend_choices(), value=services.reader_label()))
            if cmp_pickers is not None:
                local, api = services.backend_choices(), services.api_choices()
                choices, values = default_columns(services)
                out += [gr.Dropdown(choices=choices, value=v) for v in values]
                out.append(gr.CheckboxGroup(choices=local + api, value=local + [a for a in api if services.has_key(a)]))
            return out[0] if len(out) == 1 else tuple(out)  # one output takes its value, not a 1-tuple

        pickers = ([rec_backend] if rec_backend is not None else []) + (
            [*cmp_pickers, arena_pool] if cmp_pickers is not None else [])
        demo.load(refresh_backends, None, pickers)
    return demo


def page_style() -> dict:
    """The theme (fonts that cover Hangul) and CSS (narrow screens) of every page: app/page_style.py."""
    from app import page_style as style

    return {"theme": style.theme(), "css": style.CSS}


def build_server(services: Services, accounts: list[tuple[str, str]]):
    """One FastAPI app. With accounts: the admin Blocks at /admin behind Gradio's login and the AdminGate
    (login form only, throttled logins), the public Blocks at /. Without: every tab at / (this machine's
    single user is the admin). Either way an unknown endpoint is a 404 (app/server_guard.py)."""
    import gradio as gr
    from fastapi import FastAPI

    from app.server_guard import AdminGate, LoginThrottle, answer_unknown_endpoints, mounted_app

    server = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    if not accounts:
        demo = build_app(services).queue(default_concurrency_limit=4)
        server = gr.mount_gradio_app(server, demo, path="/", ssr_mode=False, footer_links=[], **page_style())
        answer_unknown_endpoints(mounted_app(server, "/"))
        return server
    admin = build_app(services, public=False).queue(default_concurrency_limit=4)
    public = build_app(services, admin=False, admin_link=f"{ADMIN_PATH}/").queue(default_concurrency_limit=4)
    # The more specific mount first: "/" would otherwise swallow /admin.
    server = gr.mount_gradio_app(server, admin, path=ADMIN_PATH, auth=accounts, ssr_mode=False, footer_links=[],
                                 auth_message="moodshelf workbench: Compare, Arena, Generate, Curate, Train, "
                                              "Evaluate, Backends",
                                 **page_style())
    server = gr.mount_gradio_app(server, public, path="/", ssr_mode=False, footer_links=[], **page_style())
    for path in (ADMIN_PATH, "/"):
        answer_unknown_endpoints(mounted_app(server, path))
    server.add_middleware(AdminGate, admin_path=ADMIN_PATH, admin_app=mounted_app(server, ADMIN_PATH),
                          throttle=LoginThrottle(limit=services.settings.login_attempts_per_minute))
    return server


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine (every address it resolves to is loopback)."""
    import ipaddress
    import socket

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def check_bind(host: str, accounts: list[tuple[str, str]], allow_open_admin: bool = False) -> None:
    """Without MOODSHELF_AUTH every tab is on one page, the admin ones included: that page stays on this
    machine unless the user says, with --allow-open-admin, that the network may use the admin tabs."""
    if accounts or allow_open_admin or is_loopback(host):
        return
    from db.errors import UserError

    raise UserError(f"--host {host} would open the admin tabs (Generate, Curate, Train, Evaluate, Backends) to the "
                    "network without a login: set MOODSHELF_AUTH=user:password to put them behind one, or pass "
                    "--allow-open-admin if everyone who can reach this address may use them.")


def serve(db: Database, host: str = "127.0.0.1", port: int = 7860, base_model: str | None = None,
          block: bool = True, auth: str | None = None, allow_open_admin: bool = False):
    """Serve the app. `auth` defaults to $MOODSHELF_AUTH. With block=False, returns the uvicorn server
    (set `should_exit = True` to stop it)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    accounts = parse_auth(auth if auth is not None else os.environ.get("MOODSHELF_AUTH"))
    check_bind(host, accounts, allow_open_admin)
    settings = AppSettings.from_env()  # a bad variable stops the start, with every problem named
    reconcile_runs(db)  # a run whose worker died while the app was down is marked failed, not 'running'
    from datagen.worker import reconcile_jobs

    reconcile_jobs(db)
    from training.evals import reconcile_evals

    reconcile_evals(db)
    services = Services(db=db, base_model=base_model or DEFAULT_BASE_MODEL, settings=settings)
    from training.threads import share_cores

    share_cores()  # this process generates: training runs (and sweeps) it launches leave it a core

    import threading

    import uvicorn

    config = uvicorn.Config(build_server(services, accounts), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    if accounts:
        print(f"moodshelf: http://{host}:{port}/ (readers' page; the workbench is at http://{host}:{port}{ADMIN_PATH}/, "
              "login required)", flush=True)
    else:
        print(f"moodshelf: http://{host}:{port}/ (every tab on one page: without MOODSHELF_AUTH this page is the "
              "admin)", flush=True)
    if block:
        server.run()
    else:
        threading.Thread(target=server.run, name="uvicorn", daemon=True).start()
    return server


if __name__ == "__main__":
    serve(open_db())
