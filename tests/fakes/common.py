"""Shared bits of the fake provider servers: the threaded HTTP server, request recording, the fault plan,
and the answer factory that writes a plausible structured book recommendation from the request itself.

Nothing here talks to the network beyond 127.0.0.1.
"""
from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import queue
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

# --------------------------------------------------------------------------------------------------------------
# Requests, responses
# --------------------------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake received it. `headers` has lower-cased names; `body` is the parsed JSON body
    (None when the body is not JSON); `form` holds the fields of a multipart upload (file parts as
    {"filename", "content_type", "content": bytes})."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes = b""
    form: dict[str, Any] = field(default_factory=dict)
    received_at: float = field(default_factory=time.time)

    def __getitem__(self, key: str) -> Any:  # r["body"], r["path"], ... for dict-minded tests
        return getattr(self, key)

    @property
    def json(self) -> Any:
        return self.body


@dataclass
class Reply:
    status: int
    body: Any = None                      # dict/list -> JSON; bytes/str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    events: Iterable[bytes] | None = None  # server-sent events: sent chunked, one write per event

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        if self.body is None:
            return b""
        return json.dumps(self.body, ensure_ascii=False).encode("utf-8")


def new_id(prefix: str, n: int = 24) -> str:
    return f"{prefix}{uuid.uuid4().hex[:n]}"


# --------------------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"      # keep-alive, like the real APIs; every reply carries Content-Length
    fake: "FakeServer"                  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        self.fake._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            self.fake._track(self.connection, add=False)

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, OSError, ValueError):
            # The client went away (e.g. its timeout fired during a `delay` fault) or the server is stopping.
            self.close_connection = True

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        raw = self._read_body()
        parts = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        ctype = headers.get("content-type", "")
        body: Any = None
        form: dict[str, Any] = {}
        if raw and ctype.startswith("multipart/form-data"):
            form = parse_multipart(raw, ctype)
        elif raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        req = RecordedRequest(self.command, parts.path, parse_qs(parts.query), headers, body, raw, form)
        try:
            reply = self.fake._serve(req)
        except Exception as exc:  # a bug in the fake: say so loudly rather than hang the client
            reply = self.fake.error_reply(500, f"fake server bug: {type(exc).__name__}: {exc}")
        if reply is None:  # dropped (server stopping)
            self.close_connection = True
            return
        if reply.events is not None:
            self._send_events(reply)
            return
        data = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def _send_events(self, reply: Reply) -> None:
        """A streamed reply (stream=true): chunked transfer encoding, each SSE event flushed as it is made,
        as the real APIs do, so a client sees the first token before the last one is written."""
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in reply.headers.items():
            self.send_header(k, v)
        self.end_headers()
        for event in reply.events:
            if event:
                self.wfile.write(f"{len(event):x}\r\n".encode() + event + b"\r\n")
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch


class FakeServer:
    """Base of the fakes: a ThreadingHTTPServer on 127.0.0.1:<free port> in a daemon thread.

    Knobs shared by both providers:
        faults                   queue.Queue of dicts; one is consumed per request to the main generation
                                 endpoint (and per line of a batch), see `apply_fault` in the subclasses
        latency                  seconds slept before answering every request (throughput benchmarks)
        fail_auth_unless         a key: requests carrying another key get 401 in the provider's error shape
        batch_polls_until_done   GETs of a batch before it reports done (default 2)
        stream_delay             seconds between streamed text deltas (stream=true; default 0)
        canned                   [(needle, text)]: a chat request whose messages contain `needle` is answered
                                 with `text` instead of books (e.g. an LLM judge's JSON verdict); first match wins
        requests                 every request received, as RecordedRequest, in arrival order
    """

    main_path: str = "/"
    url_prefix: str = ""

    def __init__(self) -> None:
        self.faults: "queue.Queue[dict[str, Any]]" = queue.Queue()
        self.latency: float = 0.0
        self.fail_auth_unless: str | None = None
        self.batch_polls_until_done: int = 2
        self.stream_delay: float = 0.0
        self.canned: list[tuple[str, str]] = []
        self.requests: list[RecordedRequest] = []
        self.answers = AnswerFactory()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self.port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Reply | None]]] = []
        self.setup_routes()

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "FakeServer":
        if self._httpd is not None:
            return self
        handler = type(f"{type(self).__name__}Handler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.request_queue_size = 256
        httpd.allow_reuse_address = True
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stopping.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers sleeping in `delay`/`latency`
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            conns = list(self._conns)
        for c in conns:  # idle keep-alive connections: unblock their handler threads
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the fake server is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + self.url_prefix

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    # -- helpers for tests -------------------------------------------------------------------------------------
    def add_fault(self, **fault: Any) -> None:
        """`server.add_fault(status=429, retry_after=1.5)` is `server.faults.put({...})`."""
        self.faults.put(dict(fault))

    def next_fault(self) -> dict[str, Any]:
        try:
            return dict(self.faults.get_nowait())
        except queue.Empty:
            return {}

    def canned_reply(self, texts: Iterable[str]) -> str | None:
        joined = "\n".join(texts)
        return next((text for needle, text in self.canned if needle in joined), None)

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if r.path.rstrip("/") == path.rstrip("/") and (method is None or r.method == method)]

    @property
    def generation_requests(self) -> list[RecordedRequest]:
        """The requests to the main generation endpoint (POST), in order."""
        return self.requests_to(self.main_path, "POST")

    def sleep(self, seconds: float) -> bool:
        """Sleep, unless the server stops first. False when interrupted."""
        if seconds and seconds > 0:
            return not self._stopping.wait(seconds)
        return True

    # -- routing -----------------------------------------------------------------------------------------------
    def route(self, method: str, pattern: str, fn: Callable[..., Reply | None]) -> None:
        self._routes.append((method, re.compile("^" + pattern + "/?$"), fn))

    def override(self, method: str, pattern: str, fn: Callable[..., Reply | None]) -> None:
        """Answer `method pattern` with fn before the regular routes, e.g. a gateway without a batch API:
        `server.override("POST", r"/v1/batches", lambda req: server.error_reply(404, "Not found"))`."""
        self._routes.insert(0, (method, re.compile("^" + pattern + "/?$"), fn))

    def setup_routes(self) -> None:  # subclasses
        pass

    def _serve(self, req: RecordedRequest) -> Reply | None:
        with self._lock:
            self.requests.append(req)
        if self.latency and not self.sleep(self.latency):
            return None
        if self.fail_auth_unless is not None and self.request_key(req) != self.fail_auth_unless:
            return self.auth_error_reply(self.request_key(req))
        for method, pattern, fn in self._routes:
            m = pattern.match(req.path)
            if m and method == req.method:
                return fn(req, **m.groupdict())
        if any(p.match(req.path) for _, p, _ in self._routes):
            return self.error_reply(405, f"Method {req.method} not allowed on {req.path}")
        return self.error_reply(404, f"Unknown route {req.method} {req.path} (fake server)")

    # -- provider specifics ------------------------------------------------------------------------------------
    def request_key(self, req: RecordedRequest) -> str | None:
        auth = req.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return None

    def error_reply(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                    **extra: Any) -> Reply:
        raise NotImplementedError

    def auth_error_reply(self, key: str | None) -> Reply:
        return self.error_reply(401, "Invalid API key")

    def fault_error_reply(self, fault: dict[str, Any]) -> Reply:
        """A fault with a `status` (>= 400): the provider's error JSON, with Retry-After when asked."""
        status = int(fault["status"])
        headers = {}
        if fault.get("retry_after") is not None:
            ra = fault["retry_after"]
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        return self.error_reply(status, fault.get("message") or DEFAULT_ERROR_MESSAGES.get(status, f"HTTP {status}"),
                                headers=headers)


DEFAULT_ERROR_MESSAGES = {
    400: "Bad request.",
    401: "Invalid authentication credentials.",
    403: "Permission denied.",
    404: "Not found.",
    408: "Request timed out.",
    429: "Rate limit reached for requests. Please try again later.",
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
    504: "Gateway timed out.",
    529: "Overloaded.",
}


def parse_multipart(raw: bytes, content_type: str) -> dict[str, Any]:
    """multipart/form-data -> {field: str} and {file field: {"filename", "content_type", "content": bytes}}."""
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + raw
    )
    out: dict[str, Any] = {}
    if not msg.is_multipart():
        return out
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            out[name] = {"filename": filename, "content_type": part.get_content_type(), "content": payload}
        else:
            out[name] = payload.decode("utf-8", errors="replace")
    return out


# --------------------------------------------------------------------------------------------------------------
# Reading the request: candidates, number of books, language
# --------------------------------------------------------------------------------------------------------------

_CANDIDATES = re.compile(r"<candidates>\s*(.*?)\s*</candidates>", re.S | re.I)
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


@dataclass(frozen=True)
class Candidate:
    title: str
    author: str


def parse_candidates(text: str) -> list[Candidate]:
    """Lines `Title | Author` (extra `| ...` fields ignored) or `- Title - Author` (moodshelf's book_line)
    from the first <candidates> block."""
    m = _CANDIDATES.search(text or "")
    if not m:
        return []
    out: list[Candidate] = []
    for line in m.group(1).splitlines():
        line = _BULLET.sub("", line).strip()
        if "|" in line:
            title, author = (p.strip() for p in line.split("|")[:2])
        elif " - " in line:
            title, author = (p.strip() for p in line.rsplit(" - ", 1))
        else:
            continue
        if title:
            out.append(Candidate(title, author))
    return out


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text or ""))


def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return schema
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema, seen = node, seen + 1
    return schema


def n_books_from_schema(schema: Any) -> int | None:
    """N from the `books` array of a JSON schema: maxItems (== minItems when both), else minItems; also
    reads constraints the Anthropic SDK moves into the description ('{minItems: 3, maxItems: 3}')."""
    if not isinstance(schema, dict):
        return None
    root = schema
    schema = _resolve(schema, root)
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or "books" not in props:
        return None
    books = _resolve(props["books"], root)
    if not isinstance(books, dict):
        return None
    for key in ("maxItems", "minItems"):
        if isinstance(books.get(key), int) and books[key] > 0:
            return int(books[key])
    desc = books.get("description") or ""
    for key in ("maxItems", "minItems"):
        m = re.search(key + r"\W+(\d+)", desc)
        if m and int(m.group(1)) > 0:
            return int(m.group(1))
    return None


_N_TEXT = [re.compile(r"(\d+)\s*권"), re.compile(r"\b(\d+)\s+(?:\w+\s+)?books?\b", re.I)]


def n_books_from_text(text: str) -> int | None:
    """'책 3권' / 'Recommend 3 books' in the prompt, when no schema says N."""
    for rx in _N_TEXT:
        m = rx.search(text or "")
        if m and 0 < int(m.group(1)) <= 20:
            return int(m.group(1))
    return None


def word_count(text: str) -> int:
    return max(1, len((text or "").split()))


# --------------------------------------------------------------------------------------------------------------
# Writing the answer
# --------------------------------------------------------------------------------------------------------------

_REASONS = {
    "en": ["{title} meets the mood you described with a warm, steady voice.",
           "{title} is easy to pick up and rewards a quiet hour of reading.",
           "{title} speaks gently to what you are going through right now."],
    "ko": ["'{title}'은(는) 지금의 마음에 다정하게 말을 걸어 주는 책입니다.",
           "'{title}'은(는) 부담 없이 펼쳐 조용히 읽기 좋은 책입니다.",
           "'{title}'은(는) 지금 겪고 있는 감정을 차분히 들여다보게 해 줍니다."],
}
_EFFECTS = {
    "en": ["It may help you feel calmer and less alone.",
           "It can lift your mood and give you a little hope.",
           "It helps you slow down and breathe."],
    "ko": ["마음이 한결 차분해지고 혼자가 아니라는 위로를 줍니다.",
           "가라앉은 기분을 조금 끌어올리고 작은 희망을 줍니다.",
           "서두르던 마음을 내려놓고 숨을 고르게 해 줍니다."],
}
_IMAGINARY = {"en": ("Imaginary Book {i}", "Nobody Real {i}"), "ko": ("가상의 책 {i}", "가상의 저자 {i}")}


class AnswerFactory:
    """Books for an answer: the first N candidates from a rotating start (successive answers differ)."""

    def __init__(self) -> None:
        self._counter = itertools.count()
        self._lock = threading.Lock()

    def _next(self) -> int:
        with self._lock:
            return next(self._counter)

    def books(self, candidates: list[Candidate], n: int, language: str, fault: dict[str, Any]) -> list[dict]:
        turn = self._next()
        if fault.get("wrong_count"):
            n = max(0, n - 1)
        picks: list[tuple[str, str]]
        if candidates:
            start = turn % len(candidates)
            rotated = candidates[start:] + candidates[:start]
            picks = [(c.title, c.author) for c in rotated[:n]]
        else:
            picks = [_imaginary(language, i + 1) for i in range(n)]
        ungrounded = fault.get("ungrounded")
        if ungrounded:
            k = len(picks) if ungrounded is True else min(len(picks), int(ungrounded))
            base = 100 + turn * 10
            for j in range(len(picks) - k, len(picks)):
                picks[j] = _imaginary(language, base + j + 1)
        out = []
        for i, (title, author) in enumerate(picks):
            out.append({
                "title": title,
                "author": author,
                "reason": _REASONS[language][(turn + i) % 3].format(title=title),
                "effect": _EFFECTS[language][(turn + i) % 3],
            })
        return out


def _imaginary(language: str, i: int) -> tuple[str, str]:
    t, a = _IMAGINARY[language]
    return t.format(i=i), a.format(i=i)


@dataclass
class Answer:
    """The answer object and how it is rendered as text under the fault plan."""

    obj: dict[str, Any]
    text: str
    truncated: bool = False
    malformed: bool = False


def render_answer(obj: dict[str, Any], fault: dict[str, Any]) -> Answer:
    text = json.dumps(obj, ensure_ascii=False)
    if fault.get("truncate"):
        return Answer(obj, text[: len(text) // 2], truncated=True)
    if fault.get("malformed"):
        # Prose before it, single quotes, a trailing comma: no JSON parser (or "find the braces" fallback) takes it.
        bad = "Sure! Here are my picks:\n" + text.replace('"', "'")[:-2] + ",]}"
        return Answer(obj, bad, malformed=True)
    return Answer(obj, text)


def cut_in_half(text: str) -> str:
    """A text answer stopped by its token limit: the first half, mid-sentence."""
    return text[: len(text) // 2]


def wants_plain_text(streamed: bool, structured: bool, texts: Iterable[str]) -> bool:
    """A streamed chat request (the app's backends) with no schema, no tool and no mention of JSON gets
    prose in the sample format (numbered books with reason and effect lines), as a real model asked in
    that format writes it. Unstreamed requests keep answering JSON text, as the teacher tests expect."""
    return streamed and not structured and "json" not in "\n".join(texts).lower()


_TEXT_LABELS = {"en": ("Why this book", "How it may help"), "ko": ("추천 이유", "이 책이 도움이 될 수 있는 이유")}


def render_text(books: list[dict], language: str) -> str:
    reason, effect = _TEXT_LABELS.get(language, _TEXT_LABELS["en"])
    return "\n".join(f"{i}. {b['title']} - {b['author']}\n - {reason}: {b['reason']}\n - {effect}: {b['effect']}"
                     for i, b in enumerate(books, 1))


def text_deltas(text: str) -> list[str]:
    """The answer cut into word-sized deltas (whitespace kept), like a tokenizer-driven stream."""
    return re.findall(r"\S+\s*|\s+", text)


def sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    body = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"{head}data: {body}\n\n".encode("utf-8")


def text_of(content: Any) -> str:
    """The text of a message `content`: a string, or a list of {type: text, text} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(text_of(p.get("text") if isinstance(p, dict) else p) for p in content
                         if not isinstance(p, dict) or p.get("type", "text") in ("text", "input_text"))
    return ""


@dataclass
class PromptView:
    """What the fake reads from a request: user text, all text, candidates, N and the language."""

    user_text: str
    all_text: str
    candidates: list[Candidate]
    n_books: int
    language: str

    @classmethod
    def build(cls, user_texts: Iterable[str], other_texts: Iterable[str], schema: Any) -> "PromptView":
        user_text = "\n".join(user_texts)
        all_text = "\n".join([*other_texts, user_text])
        candidates = parse_candidates(user_text) or parse_candidates(all_text)
        n = n_books_from_schema(schema) or n_books_from_text(_CANDIDATES.sub(" ", user_text)) or 3
        language = "ko" if has_hangul(user_text) else "en"
        return cls(user_text, all_text, candidates, n, language)


def iso_time(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int((ts % 1) * 1e6):06d}Z"
