"""The admin surface while logged out, unknown endpoints, login throttling and the network bind, served for real:
a client without the login gets the login form at /admin/ and a 401 everywhere else there; the public app
answers an unknown endpoint with a 404; failed logins are throttled per client; serving on a network address
without MOODSHELF_AUTH is refused unless --allow-open-admin says so."""
import time

import httpx
import pytest

from app.server_guard import LoginThrottle
from app.ui import check_bind, is_loopback, serve

ADMIN_ENDPOINTS = ("start_job_clicked", "add_backend", "remove_backend")  # named admin functions


@pytest.fixture
def served_server(catalog_db, free_port, monkeypatch):
    monkeypatch.setenv("MOODSHELF_LOGIN_ATTEMPTS_PER_MINUTE", "5")
    server = serve(catalog_db, port=free_port, block=False, auth="admin:s3cret-pw")
    base = f"http://127.0.0.1:{free_port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(base + "/config", timeout=5)
            break
        except httpx.HTTPError:
            time.sleep(0.3)
    yield base, server
    server.should_exit = True


@pytest.fixture
def served(served_server):
    return served_server[0]


def test_logged_out_admin_gets_the_login_form_and_nothing_else(served):
    page = httpx.get(served + "/admin/")
    assert page.status_code == 200 and '"auth_required":true' in page.text.replace(" ", "")
    assert not any(name in page.text for name in ADMIN_ENDPOINTS)  # no API description in the page
    assert len(page.text) < 20_000  # Gradio's own logged-out page embedded ~270 kB of it
    assert httpx.get(served + "/admin", follow_redirects=False).status_code == 307
    for path in ("/admin/config", "/admin/info", "/admin/gradio_api/info", "/admin/gradio_api/openapi.json",
                 "/admin/gradio_api/heartbeat/abc", "/admin/gradio_api/queue/status", "/admin/monitoring",
                 "/admin/gradio_api/file=/etc/passwd", "/admin/gradio_api/startup-events", "/admin/user"):
        r = httpx.get(served + path, timeout=5)
        assert r.status_code == 401, path
        assert not any(name in r.text for name in ADMIN_ENDPOINTS)
    for path, body in (("/admin/gradio_api/queue/join", {"fn_index": 0, "data": [], "session_hash": "x"}),
                       ("/admin/gradio_api/run/add_backend", {"data": ["openai", "gpt-x", ""]}),
                       ("/admin/gradio_api/call/add_backend", {"data": ["openai", "gpt-x", ""]})):
        assert httpx.post(served + path, json=body).status_code == 401, path
    assert httpx.get(served + "/admin/theme.css").status_code == 200  # what the login form itself needs

    with httpx.Client(base_url=served) as c:
        assert c.post("/admin/login", data={"username": "admin", "password": "s3cret-pw"}).status_code == 200
        page = c.get("/admin/")
        assert page.status_code == 200 and "add_backend" in page.text  # the admin app, once logged in
        assert c.get("/admin/gradio_api/info").status_code == 200


def test_public_app_answers_unknown_endpoints_with_404(served):
    for method, path, body in (
            ("POST", "/gradio_api/queue/join", {"fn_index": 999, "data": [], "session_hash": "x"}),
            ("POST", "/gradio_api/run/no_such_thing", {"data": []}),
            ("POST", "/gradio_api/api/no_such_thing", {"data": []}),
            ("POST", "/gradio_api/call/no_such_thing", {"data": []}),
            ("GET", "/gradio_api/queue/data?session_hash=nobody", None),
            ("GET", "/gradio_api/call/recommend/no-such-event", None),
            ("GET", "/no/such/page", None)):
        r = httpx.request(method, served + path, json=body, timeout=5)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
    assert httpx.post(served + "/gradio_api/run/no_such_thing", json={"data": []}).json()["detail"].startswith(
        "Unknown endpoint")


def routes_of(app, prefix: str = ""):
    for route in app.routes:
        if hasattr(route, "original_router"):  # FastAPI's included router (Gradio's /gradio_api routes)
            yield from routes_of(route.original_router, prefix)
        elif hasattr(route, "routes") and not hasattr(route, "endpoint"):
            yield from routes_of(route, prefix + getattr(route, "path", ""))
        elif hasattr(route, "path"):
            yield prefix + route.path


def test_no_route_of_the_public_app_answers_junk_with_a_5xx(served_server):
    """Every route Gradio serves, with made-up path parameters and junk bodies: a 4xx, never a 5xx."""
    import re

    from app.server_guard import mounted_app

    base, server = served_server
    routes = sorted(set(routes_of(mounted_app(server.config.app, "/"))))
    assert "/gradio_api/queue/join" in routes and len(routes) > 30
    bodies = ({"json": {"fn_index": 999, "data": "x", "session_hash": "s", "event_id": "e"}},
              {"content": b"not json", "headers": {"content-type": "application/json"}})
    failures = []
    for route in routes:
        path = re.sub(r"\{[^}]+\}", "nope", route)
        for method in ("GET", "POST"):
            for body in (bodies if method == "POST" else ({},)):
                try:
                    r = httpx.request(method, base + path, timeout=httpx.Timeout(5, read=1.5), **body)
                except httpx.ReadTimeout:  # an event stream held open (the heartbeat): not an error
                    continue
                if r.status_code >= 500:
                    failures.append((method, path, r.status_code, r.text[:80]))
    assert failures == []


def test_failed_logins_are_throttled_per_client(served):
    wrong = {"username": "admin", "password": "guess"}
    with httpx.Client(base_url=served) as c:
        assert [c.post("/admin/login", data=wrong).status_code for _ in range(5)] == [400] * 5
        r = c.post("/admin/login", data={"username": "admin", "password": "s3cret-pw"})
        assert r.status_code == 429 and 1 <= int(r.headers["Retry-After"]) <= 60
        assert "try again in" in r.json()["detail"]
    # Another client (another loopback address) is not held back by the first one's failures.
    other = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=served, transport=other) as c:
        assert c.post("/admin/login", data={"username": "admin", "password": "s3cret-pw"}).status_code == 200


def test_throttle_window_slides_and_a_success_clears_it():
    now = [0.0]
    t = LoginThrottle(limit=2, window_s=60, clock=lambda: now[0])
    t.failed("a")
    now[0] = 10.0
    t.failed("a")
    assert t.retry_after("a") == 50 and t.retry_after("b") is None
    now[0] = 60.5  # the first failure left the window
    assert t.retry_after("a") is None
    t.failed("a")
    assert t.retry_after("a") == 10
    t.succeeded("a")
    assert t.retry_after("a") is None


def test_network_bind_without_auth_is_refused_unless_the_admin_may_be_open():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.10")
    assert not is_loopback("no-such-host.invalid")
    with pytest.raises(Exception, match="--allow-open-admin"):
        check_bind("0.0.0.0", [])
    check_bind("0.0.0.0", [("admin", "pw")])  # behind a login
    check_bind("0.0.0.0", [], allow_open_admin=True)
    check_bind("127.0.0.1", [])


@pytest.mark.parametrize("command", [["serve"], ["demo", "--no-train"]])
def test_cli_refuses_a_network_bind_without_auth_in_one_line(command, home, monkeypatch, capsys):
    from app.cli import main

    monkeypatch.delenv("MOODSHELF_AUTH", raising=False)
    assert main([*command, "--host", "0.0.0.0", "--port", "7999"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and err.startswith("error: --host 0.0.0.0 would open the admin tabs")
    assert "[1/" not in out and not (home / "moodshelf.db").exists()  # refused before any work
