"""Server-side request forgery through the public tabs: the public API answers with offered backends only, so a
typed URL reaches no listener; the operator adds a URL on the admin side and then every tab offers it; a key
configured for one server is never sent to another."""
import socket
import threading
import time

import pytest

from app.offered import OfferError, add_custom_backend, key_sent, spec_for
from app.services import BASE_LABEL, Services
from browser import api_client
from fakes.fixtures import fake_openai  # noqa: F401
from fakes.openai_server import FakeOpenAIServer
from training.backends import BackendError
from vendors import VendorError, get_client
from vendors.base import same_server

KEY = "sk-compat-NEVERSENT-0123456789"
FORM = ["en", "anxious", "nurse", ["calm"], "the commute", "light and easy", "", False]


class Listener:
    """A TCP socket on 127.0.0.1 that counts every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def wait_until_up(url: str, timeout_s: float = 30) -> None:
    import httpx

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            httpx.get(url + "config", timeout=5)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer")


def test_public_api_asked_for_a_typed_url_reaches_no_listener(catalog_db, free_port, monkeypatch):
    from app.ui import serve

    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)  # would be sent along, as Bearer, before the fix
    listener = Listener()
    typed = f"openai-compatible:m@http://127.0.0.1:{listener.port}/v1"
    server = serve(catalog_db, port=free_port, block=False, auth="admin:s3cret-pw")
    url = f"http://127.0.0.1:{free_port}/"
    try:
        wait_until_up(url)
        client = api_client(url)
        # Refused by the dropdown's list of choices, or by the handler's own check against what is offered now.
        refused = "not offered by this server|not in the list of choices"
        with pytest.raises(Exception, match=refused):
            client.predict(typed, *FORM, api_name="/recommend")
        # Compare and Arena are on the workbench, behind the login: the readers' page has no such endpoints.
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert "/recommend" in endpoints and "/compare" not in endpoints and "/battle" not in endpoints
        with pytest.raises(Exception, match=refused):  # a model name is typed input too
            client.predict("openai:gpt-5-pro-max", *FORM, api_name="/recommend")
        time.sleep(0.5)
        assert listener.connections == 0
    finally:
        server.should_exit = True
        listener.close()


def test_services_refuse_a_label_they_do_not_offer_before_making_anything(catalog_db, monkeypatch):
    services = Services(db=catalog_db)
    assert BASE_LABEL in services.offered_backends() and "openai:gpt-4.1-mini" in services.offered_backends()
    with pytest.raises(BackendError, match="not offered"):
        services.backend("openai-compatible:m@http://169.254.169.254/latest")
    with pytest.raises(BackendError, match="not offered"):
        services.backend("run:999 (ghost)")


def test_operator_adds_a_url_on_the_admin_side_and_every_tab_offers_it_without_the_key(
        catalog_db, fake_openai, monkeypatch, free_port):
    from app.ui import build_app

    configured = FakeOpenAIServer().start()  # the server the key belongs to
    try:
        monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", configured.base_url)
        monkeypatch.setenv("OPENAI_COMPATIBLE_MODEL", "served")
        monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)
        services = Services(db=catalog_db)
        demo = build_app(services).queue()  # no MOODSHELF_AUTH: the single local page is the admin
        demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False,
                    quiet=True)
        try:
            client = api_client(f"http://127.0.0.1:{free_port}/")
            typed = f"openai-compatible:other@{fake_openai.base_url}"
            with pytest.raises(Exception, match="not in the list of choices"):
                client.predict(typed, *FORM, api_name="/recommend")
            table, _, status = client.predict("openai-compatible", "other", fake_openai.base_url,
                                              api_name="/add_backend")
            assert "Added" in status and "none (OPENAI_COMPATIBLE_API_KEY goes only to" in status
            assert typed in services.offered_backends()
            with pytest.raises(Exception, match="already offered"):
                client.predict("openai-compatible", "other", fake_openai.base_url + "/", api_name="/add_backend")

            client.predict(api_name="/refresh_backends")  # what a page load does: the dropdowns offer it now
            answer, cards = client.predict(typed, *FORM, api_name="/recommend")[:2]
            assert answer.startswith("1. ") and "in the catalog" in cards
            sent = fake_openai.generation_requests[-1].headers.get("authorization", "")
            assert KEY not in sent  # a URL typed on the admin side is not the key's server

            env_label = f"openai-compatible:served@{configured.base_url}"
            client.predict(env_label, *FORM, api_name="/recommend")
            assert configured.generation_requests[-1].headers["authorization"] == f"Bearer {KEY}"

            # Removed on the admin side: the page's dropdowns still list it, the handlers refuse it.
            client.predict(typed, api_name="/remove_backend")
            before = len(fake_openai.generation_requests)
            with pytest.raises(Exception, match="not offered by this server"):
                client.predict(typed, *FORM, api_name="/recommend")
            with pytest.raises(Exception, match="not offered by this server"):
                client.predict(BASE_LABEL, typed, "(none)", *FORM, api_name="/compare")
            with pytest.raises(Exception, match="not offered by this server"):
                client.predict([BASE_LABEL, typed], *FORM, api_name="/battle")
            assert len(fake_openai.generation_requests) == before
        finally:
            demo.close()
    finally:
        configured.stop()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/v1", "http://user:pw@host/v1",
                                 "http://host:99999/v1", "http:///v1", "http://host/v1 extra", ""])
def test_admin_form_refuses_what_is_not_an_http_server_url(url):
    with pytest.raises(OfferError):
        spec_for("openai-compatible", "m", url)


def test_admin_form_refuses_bad_models_and_urls_on_vendor_kinds():
    with pytest.raises(OfferError, match="one name"):
        spec_for("openai-compatible", "a @ http://evil/v1", "http://127.0.0.1:8000/v1")
    with pytest.raises(OfferError, match="leave the URL empty"):
        spec_for("openai", "gpt-4.1", "http://127.0.0.1:8000/v1")
    with pytest.raises(OfferError, match="Unknown kind"):
        spec_for("local", "x")
    assert spec_for("anthropic", "claude-sonnet-4-5").label == "anthropic:claude-sonnet-4-5"


def test_removed_backend_is_no_longer_offered(catalog_db):
    from app.offered import remove_custom_backend

    services = Services(db=catalog_db)
    spec = add_custom_backend(catalog_db, "openai", "gpt-4.1", offered=services.offered_backends())
    assert spec.label in services.offered_backends()
    with pytest.raises(OfferError, match="already offered"):
        add_custom_backend(catalog_db, "openai", "gpt-4.1-mini", offered=services.offered_backends())
    assert remove_custom_backend(catalog_db, spec.label)
    assert spec.label not in services.offered_backends()


def test_keys_are_sent_only_to_the_server_they_were_configured_for(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-0123456789")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-0123456789")
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_COMPATIBLE_BASE_URL", "http://127.0.0.1:8000/v1")

    assert get_client("openai").api_key == "sk-openai-0123456789"  # the vendor's default URL
    assert get_client("openai", base_url="HTTPS://api.openai.com:443/v1/").api_key  # the same server
    with pytest.raises(VendorError, match="only sent to https://api.openai.com/v1, not to http://evil"):
        get_client("openai", base_url="http://evil.example/v1")
    with pytest.raises(VendorError, match="ANTHROPIC_API_KEY is only sent to"):
        get_client("anthropic", base_url="http://127.0.0.1:9/")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9100/v1")  # a proxy: now the key goes there only
    assert get_client("openai").api_key and get_client("openai", base_url="http://127.0.0.1:9100/v1/").api_key
    with pytest.raises(VendorError, match=r"OPENAI_BASE_URL \(http://127.0.0.1:9100/v1\)"):
        get_client("openai", base_url="https://api.openai.com/v1")

    assert get_client("openai-compatible").api_key == KEY
    assert get_client("openai-compatible", base_url="http://127.0.0.1:8000/v1/").api_key == KEY
    assert get_client("openai-compatible", base_url="http://127.0.0.1:8001/v1").api_key is None
    assert get_client("openai-compatible", base_url="http://localhost:8000/v1").api_key is None
    assert key_sent(spec_for("openai-compatible", "m", "http://127.0.0.1:8000/v1")) == "OPENAI_COMPATIBLE_API_KEY"


def test_same_server_compares_scheme_host_port_and_path():
    assert same_server("http://Host:80/v1/", "http://host/v1")
    assert not same_server("http://host/v1", "https://host/v1")
    assert not same_server("http://host/v1", "http://host/v2")
    assert not same_server("http://host:x/v1", "http://host/v1")  # a malformed port matches nothing, raises nothing
    assert not same_server(None, "http://host/v1")


def test_a_backend_stored_in_the_older_spelling_is_offered_in_todays_and_can_be_removed(catalog_db):
    from app.offered import custom_backend_labels, remove_custom_backend, require_offered
    from db.models import ChatBackend

    with catalog_db.begin() as s:  # a row written before the one grammar: spaces, and the kind with "_"
        s.add(ChatBackend(label="openai-compatible: m @ http://127.0.0.1:8000/v1", kind="openai_compatible",
                          model="m", base_url="http://127.0.0.1:8000/v1"))
    assert custom_backend_labels(catalog_db) == ["openai-compatible:m@http://127.0.0.1:8000/v1"]
    offered = Services(db=catalog_db).offered_backends()
    require_offered(["openai-compatible: m @ http://127.0.0.1:8000/v1"], offered)  # the old name still passes
    with pytest.raises(BackendError, match="not offered"):
        require_offered(["openai-compatible:other@http://127.0.0.1:8000/v1"], offered)
    assert remove_custom_backend(catalog_db, "openai-compatible:m@http://127.0.0.1:8000/v1")
    assert custom_backend_labels(catalog_db) == []
