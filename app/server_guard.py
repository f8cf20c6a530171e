"""What stands in front of the Gradio apps on `moodshelf serve` (app/ui.build_server installs it):

- `AdminGate`, an ASGI middleware: a client without the admin login gets the login form at /admin/ and nothing
  else there. Gradio 6 renders its page with the whole API description of the app embedded (every endpoint and
  its parameters) even while it shows the login form, and answers some routes (the heartbeat stream) without
  a login; the gate serves its own copy of Gradio's login page with no API description in it and answers
  every other admin path with 401, except the static files the login form needs.
- failed logins are throttled per client (`LoginThrottle`: 5 a minute by default, then 429 with Retry-After).
- `answer_unknown_endpoints` makes a Gradio app answer an unknown fn_index or api_name with 404 instead of a
  500 and a traceback in the log.

    server = FastAPI()
    ... gr.mount_gradio_app(server, admin_blocks, path="/admin", auth=accounts) ...
    server.add_middleware(AdminGate, admin_path="/admin", admin_app=mounted_app(server, "/admin"),
                          throttle=LoginThrottle(limit=5))
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import defaultdict, deque
from typing import Callable

# What the login form itself loads: Gradio's compiled frontend, its theme and icons (nothing about the app).
STATIC_PATHS = re.compile(r"^/(theme\.css|favicon\.ico|manifest\.json|robots\.txt|pwa_icon[^/]*|"
                          r"(static|assets|svelte)/.+)$")
# The routes that look a function up by fn_index or api_name.
DISPATCH_PATHS = re.compile(r"/gradio_api/(queue/join|run/|api/|call/)")
# The event stream of one call: GET /gradio_api/call/[v2/]API_NAME/EVENT_ID.
EVENT_STREAM_PATH = re.compile(r"/gradio_api/call/(?:v2/)?[^/]+/([^/]+)/?$")
EMPTY_API_INFO = {"named_endpoints": {}, "unnamed_endpoints": {}}


class LoginThrottle:
    """Failed logins per client in a sliding window; `retry_after` says how long a client must wait."""

    def __init__(self, limit: int = 5, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int | None:
        now = self.clock()
        with self._lock:
            times = self._failures[client]
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) < self.limit:
                return None
            return max(1, math.ceil(times[0] + self.window_s - now))

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures[client].append(self.clock())

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)


def mounted_app(server, path: str):
    """The Gradio App (a FastAPI app) that gr.mount_gradio_app mounted at `path`."""
    for route in server.routes:
        if getattr(route, "path", None) == path.rstrip("/") and hasattr(route, "app"):
            return route.app
    raise LookupError(f"nothing is mounted at {path}")


async def _send_json(send, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
    data = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
           (b"cache-control", b"no-store")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class AdminGate:
    """ASGI middleware for the admin app mounted at `admin_path` (see the module docstring)."""

    def __init__(self, app, *, admin_path: str, admin_app, throttle: LoginThrottle):
        self.app, self.admin_path, self.admin_app, self.throttle = app, admin_path.rstrip("/"), admin_app, throttle

    def user(self, scope) -> str | None:
        from starlette.requests import Request

        cookies = Request(scope).cookies
        cid = self.admin_app.cookie_id
        token = cookies.get(f"access-token-{cid}") or cookies.get(f"access-token-unsecure-{cid}")
        return self.admin_app.tokens.get(token) if token else None

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == self.admin_path or path.startswith(self.admin_path + "/")):
            await self.app(scope, receive, send)
            return
        sub, method = path[len(self.admin_path):], scope["method"]
        if sub == "":
            query = scope.get("query_string", b"").decode("latin-1")
            location = self.admin_path + "/" + (f"?{query}" if query else "")
            await send({"type": "http.response.start", "status": 307,
                        "headers": [(b"location", location.encode()), (b"content-length", b"0")]})
            await send({"type": "http.response.body", "body": b""})
            return
        if sub.rstrip("/") == "/login" and method == "POST":
            await self.login(scope, receive, send)
            return
        if self.user(scope) is not None or sub.rstrip("/") == "/logout" or \
                (method in ("GET", "HEAD") and STATIC_PATHS.match(sub)):
            await self.app(scope, receive, send)
            return
        if sub == "/" and method in ("GET", "HEAD"):
            await self.login_page(scope, receive, send)
            return
        await _send_json(send, 401, {"detail": {"error": "Not authenticated",
                                                "auth_message": "Log in at " + self.admin_path + "/"}})

    async def login(self, scope, receive, send) -> None:
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.throttle.retry_after(client)
        if wait is not None:
            await _send_json(send, 429, {"detail": f"Too many failed logins: try again in {wait} s."},
                             {"Retry-After": str(wait)})
            return
        status: list[int] = []

        async def watch(message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] < 300:
            self.throttle.succeeded(client)
        elif status and 400 <= status[0] < 500:  # Gradio answers wrong credentials with 400
            self.throttle.failed(client)

    async def login_page(self, scope, receive, send) -> None:
        """Gradio's own page in its logged-out state (the login form), without the API description."""
        from gradio import route_utils
        from gradio.routes import templates
        from starlette.requests import Request

        request = Request(scope, receive)
        blocks = self.admin_app.get_blocks()
        root = route_utils.get_root_url(request=request, route_path="/", root_path=self.admin_path)
        config = {"auth_required": True, "auth_message": blocks.auth_message, "space_id": blocks.space_id,
                  "root": root, "page": {"": {"layout": {}}}, "pages": [""], "components": [],
                  "dependencies": [], "current_page": ""}
        response = templates.TemplateResponse(
            request=request, name="frontend/index.html",
            context={"base_url": "./", "config": config, "gradio_api_info": EMPTY_API_INFO},
            headers={"Cache-Control": "no-store"})
        await response(scope, receive, send)


class UnknownSessionGuard:
    """ASGI middleware of one Gradio app: the event stream of a session that has no pending events is a 404
    up front (Gradio starts a 200 stream, then fails inside it with a traceback in the log)."""

    def __init__(self, app, *, gradio_app):
        self.app, self.gradio_app = app, gradio_app

    def known(self, scope) -> bool:
        from urllib.parse import parse_qs

        path = scope.get("path", "")
        queue = getattr(self.gradio_app.get_blocks(), "_queue", None)
        if queue is None:
            return True
        if path.endswith("/gradio_api/queue/data"):
            session = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash") or [""])[0]
            return session in queue.pending_messages_per_session
        if m := EVENT_STREAM_PATH.search(path):
            event_id = m.group(1)
            return event_id in queue.event_ids_to_events or \
                any(event_id in ids for ids in queue.pending_event_ids_session.values())
        return True

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("method") == "GET":
            try:
                known = self.known(scope)
            except AttributeError:  # another Gradio version's queue: let Gradio answer as it does
                known = True
            if not known:
                await _send_json(send, 404, {"detail": "Unknown session or event: nothing is pending for it."})
                return
        await self.app(scope, receive, send)


def answer_unknown_endpoints(gradio_app) -> None:
    """An unknown fn_index, api_name or session gets 404 with one line, not a 500 (or a stream that fails
    inside) with a traceback in the log."""
    from fastapi.responses import JSONResponse
    from gradio.route_utils import FnIndexInferError

    gradio_app.add_middleware(UnknownSessionGuard, gradio_app=gradio_app)

    def unknown(request, exc):
        if DISPATCH_PATHS.search(request.url.path):
            return JSONResponse({"detail": "Unknown endpoint: no function has this fn_index or api_name."},
                                status_code=404)
        raise exc  # any other KeyError is a bug: let it be the 500 it is

    gradio_app.add_exception_handler(FnIndexInferError, unknown)
    gradio_app.add_exception_handler(KeyError, unknown)
