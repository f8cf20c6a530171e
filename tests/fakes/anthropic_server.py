"""A fake Anthropic API for the tests: the official `anthropic` SDK talks to it unchanged.

    with FakeAnthropicServer() as server:
        client = anthropic.Anthropic(base_url=server.base_url, api_key="sk-ant-test", max_retries=0)

Endpoints (base_url is http://127.0.0.1:PORT):
    POST /v1/messages                      structured book answer: forced tool use -> tool_use block,
                                           no tools -> text block (JSON when asked for it, else prose)
    POST /v1/messages/count_tokens         {"input_tokens": n}
    GET  /v1/models, /v1/models/{id}
    POST /v1/messages/batches              {requests: [{custom_id, params}]}
    GET  /v1/messages/batches, /v1/messages/batches/{id}, /v1/messages/batches/{id}/results (JSONL)
"""
from __future__ import annotations

import json
import re
import time
from typing import Any

from .common import (
    FakeServer,
    PromptView,
    RecordedRequest,
    Reply,
    cut_in_half,
    iso_time,
    new_id,
    render_answer,
    render_text,
    sse,
    text_deltas,
    text_of,
    wants_plain_text,
    word_count,
)

_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                403: "permission_error", 404: "not_found_error", 409: "conflict_error", 413: "request_too_large",
                429: "rate_limit_error", 500: "api_error", 504: "timeout_error", 529: "overloaded_error"}
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class FakeAnthropicServer(FakeServer):
    """Fake Anthropic API. Knobs beyond the shared ones (see FakeServer):

        models     ids listed by GET /v1/models
    """

    main_path = "/v1/messages"
    url_prefix = ""

    def __init__(self) -> None:
        self.models = ["claude-haiku-4-5", "claude-sonnet-4-5", "fake-claude"]
        self.batches: dict[str, dict[str, Any]] = {}
        self._batch_state: dict[str, dict[str, Any]] = {}
        super().__init__()

    # ------------------------------------------------------------------------------------------------ plumbing
    def setup_routes(self) -> None:
        self.route("POST", r"/v1/messages", self._messages)
        self.route("POST", r"/v1/messages/count_tokens", self._count_tokens)
        self.route("GET", r"/v1/models", self._list_models)
        self.route("GET", r"/v1/models/(?P<model>[^/]+)", self._get_model)
        self.route("POST", r"/v1/messages/batches", self._create_batch)
        self.route("GET", r"/v1/messages/batches", self._list_batches)
        self.route("GET", r"/v1/messages/batches/(?P<batch_id>[^/]+)", self._get_batch)
        self.route("GET", r"/v1/messages/batches/(?P<batch_id>[^/]+)/results", self._results)

    def request_key(self, req: RecordedRequest) -> str | None:
        return req.headers.get("x-api-key") or super().request_key(req)

    def error_body(self, status: int, message: str, *, type: str | None = None,
                   request_id: str | None = None) -> dict[str, Any]:
        etype = type or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": etype, "message": message},
                "request_id": request_id or new_id("req_")}

    def error_reply(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                    type: str | None = None, **_: Any) -> Reply:
        body = self.error_body(status, message, type=type)
        return Reply(status, body, headers={"request-id": body["request_id"], **(headers or {})})

    def auth_error_reply(self, key: str | None) -> Reply:
        return self.error_reply(401, "invalid x-api-key")

    def fault_error_reply(self, fault: dict[str, Any]) -> Reply:
        reply = super().fault_error_reply(fault)
        if fault.get("type"):
            reply.body["error"]["type"] = fault["type"]
        return reply

    # ------------------------------------------------------------------------------------------------ messages
    def _messages(self, req: RecordedRequest) -> Reply | None:
        fault = self.next_fault()
        if fault.get("delay") and not self.sleep(float(fault["delay"])):
            return None
        return self.message(req.body, fault)

    @staticmethod
    def _texts(body: dict[str, Any]) -> tuple[list[str], list[str]]:
        messages = body.get("messages") or []
        user = [text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        other = [text_of(body.get("system"))]
        other += [text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") != "user"]
        return user, other

    def message(self, body: Any, fault: dict[str, Any], *, batch: bool = False) -> Reply:
        """The reply to one Messages request under one fault (also used for each request of a batch)."""
        status = fault.get("status")
        if status is not None and int(status) >= 400:
            return self.fault_error_reply(fault)
        if not isinstance(body, dict):
            return self.error_reply(400, "Request body is not valid JSON.")
        for key in ("model", "max_tokens", "messages"):
            if key not in body:
                return self.error_reply(400, f"{key}: Field required")
        if not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1:
            return self.error_reply(400, "max_tokens: Input should be a valid positive integer")
        messages = body["messages"]
        if not isinstance(messages, list) or not messages:
            return self.error_reply(400, "messages: at least one message is required")
        if body.get("stream") and body.get("tools"):
            return self.error_reply(400, "stream: streaming tool use is not supported by the fake server")

        tools = [t for t in (body.get("tools") or []) if isinstance(t, dict)]
        choice = body.get("tool_choice") or {"type": "auto"}
        tool = None
        if tools and choice.get("type") != "none":
            if choice.get("type") == "tool":
                tool = next((t for t in tools if t.get("name") == choice.get("name")), None)
                if tool is None:
                    return self.error_reply(400, f"tool_choice: tool '{choice.get('name')}' not found in 'tools'")
            else:  # "auto" / "any": the fake always uses the first tool that has an input schema
                tool = next((t for t in tools if "input_schema" in t), None)
        schema = tool.get("input_schema") if tool else None

        user, other = self._texts(body)
        view = PromptView.build(user, other, schema)
        books = self.answers.books(view.candidates, view.n_books, view.language, fault)
        answer = render_answer({"books": books}, fault)
        if tool is not None:
            if answer.truncated:  # cut off mid-call: the input holds what was written before the limit
                tool_input: dict[str, Any] = {"books": books[: len(books) // 2]}
            elif answer.malformed:  # not the schema: `books` is a broken JSON string instead of an array
                tool_input = {"books": answer.text}
            else:
                tool_input = {"books": books}
            content = [{"type": "tool_use", "id": new_id("toolu_"), "name": tool["name"], "input": tool_input}]
            out_text = json.dumps(tool_input, ensure_ascii=False)
            stop_reason = "max_tokens" if answer.truncated else "tool_use"
        else:
            if wants_plain_text(bool(body.get("stream")), schema is not None, user + other):
                answer.text = render_text(books, view.language)
                if answer.truncated:
                    answer.text = cut_in_half(answer.text)
            content = [{"type": "text", "text": answer.text, "citations": None}]
            out_text = answer.text
            stop_reason = "max_tokens" if answer.truncated else "end_turn"
        msg = {
            "id": new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": {"input_tokens": word_count(view.all_text), "output_tokens": word_count(out_text),
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "service_tier": "batch" if batch else "standard"},
        }
        if body.get("stream"):
            return Reply(200, headers={"request-id": new_id("req_")},
                         events=self._stream_events(msg, out_text, fault.get("fail_after"), fault.get("stall")))
        return Reply(200, msg, headers={"request-id": new_id("req_")})

    def _stream_events(self, msg: dict[str, Any], text: str, fail_after: int | None, stall: float | None = None):
        """The Messages streaming protocol: message_start, content_block_start, ping, text deltas,
        content_block_stop, message_delta (stop_reason, output tokens), message_stop. `fail_after` n: an
        `error` event (overloaded_error) after n deltas, as the API sends when it fails mid-stream. `stall` s:
        only pings, every 0.5 s, for s seconds before the first delta (a hung model on a live connection)."""
        start = {**msg, "content": [], "stop_reason": None,
                 "usage": {**msg["usage"], "output_tokens": 1}}
        yield sse({"type": "message_start", "message": start}, "message_start")
        yield sse({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                  "content_block_start")
        yield sse({"type": "ping"}, "ping")
        stalled_until = time.monotonic() + float(stall or 0)
        while time.monotonic() < stalled_until:
            if not self.sleep(min(0.5, stalled_until - time.monotonic())):
                return
            yield sse({"type": "ping"}, "ping")
        for i, piece in enumerate(text_deltas(text)):
            if fail_after is not None and i >= int(fail_after):
                yield sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error")
                return
            if not self.sleep(self.stream_delay):
                return
            yield sse({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                      "content_block_delta")
        yield sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        yield sse({"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None},
                   "usage": {"output_tokens": msg["usage"]["output_tokens"]}}, "message_delta")
        yield sse({"type": "message_stop"}, "message_stop")

    def _count_tokens(self, req: RecordedRequest) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        user, other = self._texts(body)
        return Reply(200, {"input_tokens": word_count("\n".join(other + user))})

    # -------------------------------------------------------------------------------------------------- models
    def _model(self, mid: str) -> dict[str, Any]:
        return {"id": mid, "type": "model", "display_name": mid, "created_at": "2025-01-01T00:00:00Z"}

    def _list_models(self, req: RecordedRequest) -> Reply:
        data = [self._model(m) for m in self.models]
        return Reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                           "last_id": data[-1]["id"] if data else None})

    def _get_model(self, req: RecordedRequest, model: str) -> Reply:
        if model not in self.models:
            return self.error_reply(404, f"model: {model}")
        return Reply(200, self._model(model))

    # ------------------------------------------------------------------------------------------------- batches
    def _create_batch(self, req: RecordedRequest) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return self.error_reply(400, "requests: List should have at least 1 item")
        seen: set[str] = set()
        for i, r in enumerate(requests):
            cid = r.get("custom_id") if isinstance(r, dict) else None
            if not isinstance(cid, str) or not _CUSTOM_ID.match(cid):
                return self.error_reply(400, f"requests.{i}.custom_id: String should match pattern "
                                             "'^[a-zA-Z0-9_-]{1,64}$'")
            if cid in seen:
                return self.error_reply(400, f"requests.{i}.custom_id: Duplicate custom_id '{cid}'")
            if not isinstance(r.get("params"), dict):
                return self.error_reply(400, f"requests.{i}.params: Field required")
            seen.add(cid)

        now = time.time()
        bid = new_id("msgbatch_")
        batch = {
            "id": bid, "type": "message_batch", "processing_status": "in_progress",
            "request_counts": {"processing": len(requests), "succeeded": 0, "errored": 0, "canceled": 0,
                               "expired": 0},
            "ended_at": None, "created_at": iso_time(now), "expires_at": iso_time(now + 24 * 3600),
            "archived_at": None, "cancel_initiated_at": None, "results_url": None,
        }
        results = []
        for r in requests:  # answered now, one fault per request; released when the batch ends
            reply = self.message(r["params"], self.next_fault(), batch=True)
            if reply.status == 200:
                result = {"type": "succeeded", "message": reply.body}
            else:
                result = {"type": "errored", "error": reply.body}
            results.append({"custom_id": r["custom_id"], "result": result})
        with self._lock:
            self.batches[bid] = batch
            self._batch_state[bid] = {"polls": 0, "results": results}
        return Reply(200, dict(batch))

    def _advance_batch(self, bid: str) -> dict[str, Any]:
        with self._lock:
            batch, state = self.batches[bid], self._batch_state[bid]
            state["polls"] += 1
            now = time.time()
            if batch["processing_status"] == "in_progress" and state["polls"] >= self.batch_polls_until_done:
                self._end_batch(batch, state, now)
            return dict(batch)

    def _end_batch(self, batch: dict[str, Any], state: dict[str, Any], now: float) -> None:
        kinds = [line["result"]["type"] for line in state["results"]]
        batch.update(
            processing_status="ended", ended_at=iso_time(now),
            results_url=f"{self.root_url}/v1/messages/batches/{batch['id']}/results",
            request_counts={"processing": 0, "succeeded": kinds.count("succeeded"), "errored": kinds.count("errored"),
                            "canceled": kinds.count("canceled"), "expired": kinds.count("expired")},
        )

    def _get_batch(self, req: RecordedRequest, batch_id: str) -> Reply:
        if batch_id not in self.batches:
            return self.error_reply(404, f"message_batch_id: no batch with id '{batch_id}'")
        return Reply(200, self._advance_batch(batch_id))

    def _list_batches(self, req: RecordedRequest) -> Reply:
        with self._lock:
            data = [dict(b) for b in reversed(self.batches.values())]
        return Reply(200, {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                           "last_id": data[-1]["id"] if data else None})

    def _results(self, req: RecordedRequest, batch_id: str) -> Reply:
        if batch_id not in self.batches:
            return self.error_reply(404, f"message_batch_id: no batch with id '{batch_id}'")
        with self._lock:
            if self.batches[batch_id]["processing_status"] != "ended":
                return self.error_reply(404, f"Batch {batch_id} has not ended yet; results are not available.")
            lines = list(self._batch_state[batch_id]["results"])
        data = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")
        return Reply(200, data, content_type="application/binary")
