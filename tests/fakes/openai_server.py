"""A fake OpenAI-compatible API for the tests: the official `openai` SDK talks to it unchanged.

    with FakeOpenAIServer() as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="sk-test", max_retries=0)
        server.faults.put({"status": 429, "retry_after": 1.5})

Endpoints (base_url is http://127.0.0.1:PORT/v1):
    POST /v1/chat/completions         structured book answer (response_format json_schema / json_object / none)
    GET  /v1/models, /v1/models/{id}  a couple of model objects
    POST /v1/files                    multipart upload (purpose "batch": JSONL of {custom_id, method, url, body})
    GET  /v1/files, /v1/files/{id}, /v1/files/{id}/content
    POST /v1/batches, GET /v1/batches, GET /v1/batches/{id}
"""
from __future__ import annotations

import json
import time
from typing import Any

from .common import (
    FakeServer,
    PromptView,
    RecordedRequest,
    Reply,
    cut_in_half,
    new_id,
    render_answer,
    render_text,
    sse,
    text_deltas,
    text_of,
    wants_plain_text,
    word_count,
)

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
                404: "invalid_request_error", 409: "invalid_request_error", 422: "invalid_request_error",
                429: "requests"}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}
_BATCH_LINE_CODES = {400: "invalid_request", 401: "invalid_api_key", 429: "rate_limit_exceeded"}

JSON_SCHEMA_UNSUPPORTED = ("response_format of type 'json_schema' is not supported by this server; "
                           "use response_format of type 'json_object' instead.")


class FakeOpenAIServer(FakeServer):
    """Fake OpenAI API. Knobs beyond the shared ones (see FakeServer):

        reject_json_schema            400 for response_format json_schema (like some OpenAI-compatible servers)
        json_mode_requires_json_word  400 for json_object mode when no message mentions "json" (real API rule)
        split_batch_errors            False: failed batch lines are in the output file (error_file_id None);
                                      True: as the real API, output file = successes, error file = failures
        models                        ids listed by GET /v1/models
    """

    main_path = "/v1/chat/completions"
    url_prefix = "/v1"

    def __init__(self) -> None:
        self.reject_json_schema = False
        self.json_mode_requires_json_word = True
        self.split_batch_errors = False
        self.models = ["gpt-4o-mini", "gpt-4.1-mini", "fake-model"]
        self.files: dict[str, dict[str, Any]] = {}
        self.file_contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._batch_state: dict[str, dict[str, Any]] = {}
        super().__init__()

    # ------------------------------------------------------------------------------------------------ plumbing
    def setup_routes(self) -> None:
        self.route("POST", r"/v1/chat/completions", self._chat)
        self.route("GET", r"/v1/models", self._list_models)
        self.route("GET", r"/v1/models/(?P<model>[^/]+)", self._get_model)
        self.route("POST", r"/v1/files", self._upload_file)
        self.route("GET", r"/v1/files", self._list_files)
        self.route("GET", r"/v1/files/(?P<file_id>[^/]+)", self._get_file)
        self.route("GET", r"/v1/files/(?P<file_id>[^/]+)/content", self._file_content)
        self.route("POST", r"/v1/batches", self._create_batch)
        self.route("GET", r"/v1/batches", self._list_batches)
        self.route("GET", r"/v1/batches/(?P<batch_id>[^/]+)", self._get_batch)

    def error_reply(self, status: int, message: str, *, headers: dict[str, str] | None = None,
                    type: str | None = None, code: str | None = None, param: str | None = None,
                    **_: Any) -> Reply:
        body = {"error": {"message": message,
                          "type": type or _ERROR_TYPES.get(status, "server_error"),
                          "param": param,
                          "code": code if code is not None else _ERROR_CODES.get(status)}}
        return Reply(status, body, headers={"x-request-id": new_id("req_"), **(headers or {})})

    def auth_error_reply(self, key: str | None) -> Reply:
        shown = (key[:3] + "*" * 4 + key[-4:]) if key and len(key) > 8 else (key or "")
        return self.error_reply(401, f"Incorrect API key provided: {shown}. You can find your API key at "
                                     "https://platform.openai.com/account/api-keys.", code="invalid_api_key")

    def fault_error_reply(self, fault: dict[str, Any]) -> Reply:
        reply = super().fault_error_reply(fault)
        if fault.get("type") or fault.get("code"):
            reply.body["error"].update({k: fault[k] for k in ("type", "code") if fault.get(k)})
        return reply

    # ------------------------------------------------------------------------------------- chat completions
    def _chat(self, req: RecordedRequest) -> Reply | None:
        fault = self.next_fault()
        if fault.get("delay") and not self.sleep(float(fault["delay"])):
            return None
        return self.chat_completion(req.body, fault)

    def chat_completion(self, body: Any, fault: dict[str, Any]) -> Reply:
        """The reply to one chat completion request under one fault (also used for each line of a batch)."""
        status = fault.get("status")
        if status is not None and int(status) >= 400:
            return self.fault_error_reply(fault)
        if not isinstance(body, dict):
            return self.error_reply(400, "We could not parse the JSON body of your request. (HINT: This likely "
                                         "means you aren't using your HTTP library correctly.)")
        if not body.get("model"):
            return self.error_reply(400, "you must provide a model parameter", param="model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return self.error_reply(400, "'messages' is a required property and must be a non-empty array.",
                                    param="messages")

        rf = body.get("response_format") or {}
        rtype = rf.get("type") if isinstance(rf, dict) else None
        schema = None
        if rtype == "json_schema":
            if self.reject_json_schema:
                return self.error_reply(400, JSON_SCHEMA_UNSUPPORTED, param="response_format")
            js = rf.get("json_schema") or {}
            if not isinstance(js, dict) or not js.get("name"):
                return self.error_reply(400, "Missing required parameter: 'response_format.json_schema.name'.",
                                        param="response_format.json_schema.name", code="missing_required_parameter")
            schema = js.get("schema")
        elif rtype not in (None, "text", "json_object"):
            return self.error_reply(400, f"Invalid value: '{rtype}'. Supported values are: 'json_object', "
                                         "'json_schema', and 'text'.", param="response_format.type",
                                    code="invalid_value")

        user_texts = [text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        other_texts = [text_of(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") != "user"]
        if rtype == "json_object" and self.json_mode_requires_json_word and \
                "json" not in "\n".join(other_texts + user_texts).lower():
            return self.error_reply(400, "'messages' must contain the word 'json' in some form, to use "
                                         "'response_format' of type 'json_object'.", param="messages")

        view = PromptView.build(user_texts, other_texts, schema)
        books = self.answers.books(view.candidates, view.n_books, view.language, fault)
        answer = render_answer({"books": books}, fault)
        if wants_plain_text(bool(body.get("stream")), rtype is not None, other_texts + user_texts):
            answer.text = render_text(books, view.language)
            if answer.truncated:
                answer.text = cut_in_half(answer.text)
        if (canned := self.canned_reply(other_texts + user_texts)) is not None:
            answer.text = canned
        prompt_tokens = word_count(view.all_text)
        completion_tokens = word_count(answer.text)
        if body.get("stream"):
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return Reply(200, headers={"x-request-id": new_id("req_")},
                         events=self._chunks(body["model"], answer.text, "length" if answer.truncated else "stop",
                                             usage if include_usage else None, fault.get("fail_after"),
                                             fault.get("stall")))
        completion = {
            "id": new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": "length" if answer.truncated else "stop",
            }],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }
        return Reply(200, completion, headers={"x-request-id": new_id("req_")})

    def _chunks(self, model: str, text: str, finish_reason: str, usage: dict | None, fail_after: int | None,
                stall: float | None = None):
        """chat.completion.chunk events as the real API streams them: a role delta, content deltas, a
        finish_reason chunk, the usage chunk (choices []) when stream_options.include_usage, then [DONE].
        `fail_after` n: an error event after n content deltas, the way the API reports a mid-stream failure.
        `stall` s: nothing after the role delta for s seconds (a hung model on a live connection)."""
        cid, created = new_id("chatcmpl-"), int(time.time())

        def chunk(choices: list, **extra: Any) -> bytes:
            return sse({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                        "system_fingerprint": "fp_fake", "choices": choices, **extra})

        yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None}])
        if stall and not self.sleep(float(stall)):
            return
        for i, piece in enumerate(text_deltas(text)):
            if fail_after is not None and i >= int(fail_after):
                yield sse({"error": {"message": "The server had an error while processing your request.",
                                     "type": "server_error", "param": None, "code": None}})
                return
            if not self.sleep(self.stream_delay):
                return
            yield chunk([{"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}])
        yield chunk([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}])
        if usage is not None:
            yield chunk([], usage=usage)
        yield sse("[DONE]")

    # -------------------------------------------------------------------------------------------------- models
    def _model(self, mid: str) -> dict[str, Any]:
        return {"id": mid, "object": "model", "created": 1700000000, "owned_by": "fake"}

    def _list_models(self, req: RecordedRequest) -> Reply:
        return Reply(200, {"object": "list", "data": [self._model(m) for m in self.models]})

    def _get_model(self, req: RecordedRequest, model: str) -> Reply:
        if model not in self.models:
            return self.error_reply(404, f"The model '{model}' does not exist or you do not have access to it.",
                                    code="model_not_found")
        return Reply(200, self._model(model))

    # --------------------------------------------------------------------------------------------------- files
    def add_file(self, content: bytes, *, filename: str, purpose: str) -> dict[str, Any]:
        fid = new_id("file-")
        obj = {"id": fid, "object": "file", "bytes": len(content), "created_at": int(time.time()),
               "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
               "status_details": None}
        with self._lock:
            self.files[fid] = obj
            self.file_contents[fid] = content
        return obj

    def _upload_file(self, req: RecordedRequest) -> Reply:
        form = req.form
        if not isinstance(form.get("file"), dict):
            return self.error_reply(400, "Missing required parameter: 'file'.", param="file",
                                    code="missing_required_parameter")
        purpose = form.get("purpose")
        if not purpose:
            return self.error_reply(400, "Missing required parameter: 'purpose'.", param="purpose",
                                    code="missing_required_parameter")
        f = form["file"]
        if purpose == "batch" and not str(f["filename"]).endswith(".jsonl"):
            return self.error_reply(400, "Invalid file format for Batch API. Must be .jsonl", param="file")
        return Reply(200, self.add_file(f["content"], filename=f["filename"], purpose=purpose))

    def _list_files(self, req: RecordedRequest) -> Reply:
        with self._lock:
            data = list(reversed(self.files.values()))
        purpose = (req.query.get("purpose") or [None])[0]
        if purpose:
            data = [f for f in data if f["purpose"] == purpose]
        return Reply(200, {"object": "list", "data": data, "has_more": False,
                           "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})

    def _get_file(self, req: RecordedRequest, file_id: str) -> Reply:
        if file_id not in self.files:
            return self.error_reply(404, f"No such File object: {file_id}", param="id")
        return Reply(200, self.files[file_id])

    def _file_content(self, req: RecordedRequest, file_id: str) -> Reply:
        if file_id not in self.file_contents:
            return self.error_reply(404, f"No such File object: {file_id}", param="id")
        return Reply(200, self.file_contents[file_id], content_type="application/octet-stream")

    # ------------------------------------------------------------------------------------------------- batches
    def _create_batch(self, req: RecordedRequest) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        for key in ("input_file_id", "endpoint", "completion_window"):
            if not body.get(key):
                return self.error_reply(400, f"Missing required parameter: '{key}'.", param=key,
                                        code="missing_required_parameter")
        if body["endpoint"] != "/v1/chat/completions":
            return self.error_reply(400, f"The fake server only batches /v1/chat/completions, not "
                                         f"{body['endpoint']}.", param="endpoint", code="invalid_value")
        if body["completion_window"] != "24h":
            return self.error_reply(400, "Invalid value: completion_window must be '24h'.",
                                    param="completion_window", code="invalid_value")
        fid = body["input_file_id"]
        if fid not in self.files:
            return self.error_reply(404, f"No such File object: {fid}", param="input_file_id")
        if self.files[fid]["purpose"] != "batch":
            return self.error_reply(400, f"File {fid} does not have purpose 'batch'.", param="input_file_id")

        now = int(time.time())
        bid = new_id("batch_")
        batch: dict[str, Any] = {
            "id": bid, "object": "batch", "endpoint": body["endpoint"], "errors": None, "input_file_id": fid,
            "completion_window": "24h", "status": "validating", "output_file_id": None, "error_file_id": None,
            "created_at": now, "in_progress_at": None, "expires_at": now + 24 * 3600, "finalizing_at": None,
            "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
            "cancelled_at": None, "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "model": None, "usage": None,
        }
        state: dict[str, Any] = {"polls": 0, "lines": [], "ok": [], "failed": [], "errors": None, "usage": [0, 0]}
        self._run_batch_lines(self.file_contents[fid], body["endpoint"], batch, state)
        with self._lock:
            self.batches[bid] = batch
            self._batch_state[bid] = state
        return Reply(200, dict(batch))

    def _run_batch_lines(self, content: bytes, endpoint: str, batch: dict[str, Any], state: dict[str, Any]) -> None:
        """Answer every line now (one fault per line); the results are released when the batch completes."""
        errors = []
        seen: set[str] = set()
        lines = [ln for ln in content.decode("utf-8", errors="replace").splitlines() if ln.strip()]
        parsed = []
        for i, line in enumerate(lines, start=1):
            try:
                item = json.loads(line)
            except ValueError:
                errors.append({"code": "invalid_json_line", "line": i, "param": None,
                               "message": f"This line is not parsable as valid JSON (line {i})."})
                continue
            if not isinstance(item, dict) or not item.get("custom_id"):
                errors.append({"code": "missing_required_parameter", "line": i, "param": "custom_id",
                               "message": "Missing required parameter: 'custom_id'."})
            elif item["custom_id"] in seen:
                errors.append({"code": "duplicate_custom_id", "line": i, "param": "custom_id",
                               "message": f"The custom_id '{item['custom_id']}' is not unique in the file."})
            elif item.get("method") != "POST" or item.get("url") != endpoint:
                errors.append({"code": "mismatched_endpoint", "line": i, "param": "url",
                               "message": f"The url on line {i} does not match the batch endpoint {endpoint}."})
            else:
                seen.add(item["custom_id"])
                parsed.append(item)
        if not lines:
            errors.append({"code": "empty_file", "line": None, "param": None, "message": "The input file is empty."})
        if errors:
            state["errors"] = errors
            return
        batch["request_counts"]["total"] = len(parsed)
        models = {it.get("body", {}).get("model") for it in parsed if isinstance(it.get("body"), dict)}
        batch["model"] = next(iter(models)) if len(models) == 1 else None
        for item in parsed:
            fault = self.next_fault()
            reply = self.chat_completion(item.get("body"), fault)
            request_id = reply.headers.get("x-request-id", new_id("req_"))
            line: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": item["custom_id"],
                                    "response": {"status_code": reply.status, "request_id": request_id,
                                                 "body": reply.body},
                                    "error": None}
            state["lines"].append(line)
            if reply.status == 200:
                state["ok"].append(line)
                state["usage"][0] += reply.body["usage"]["prompt_tokens"]
                state["usage"][1] += reply.body["usage"]["completion_tokens"]
            else:
                err = reply.body["error"]
                line["error"] = {"code": err.get("code") or _BATCH_LINE_CODES.get(reply.status, "server_error"),
                                 "message": err.get("message")}
                state["failed"].append(line)

    def _advance_batch(self, bid: str, *, poll: bool) -> dict[str, Any]:
        with self._lock:
            batch, state = self.batches[bid], self._batch_state[bid]
            if poll:
                state["polls"] += 1
            now = int(time.time())
            if batch["status"] in ("validating", "in_progress") and poll:
                if state["errors"]:
                    batch.update(status="failed", failed_at=now,
                                 errors={"object": "list", "data": state["errors"]})
                elif state["polls"] >= self.batch_polls_until_done:
                    self._complete_batch(batch, state, now)
                else:
                    batch.update(status="in_progress", in_progress_at=batch["in_progress_at"] or now)
            return dict(batch)

    def _complete_batch(self, batch: dict[str, Any], state: dict[str, Any], now: int) -> None:
        def jsonl(lines: list[dict[str, Any]]) -> bytes:
            return "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines).encode("utf-8")

        if self.split_batch_errors:
            out_lines, err_lines = state["ok"], state["failed"]
        else:
            out_lines, err_lines = state["lines"], []  # input order, failures included
        if out_lines:
            batch["output_file_id"] = self.add_file(jsonl(out_lines), filename=f"{batch['id']}_output.jsonl",
                                                    purpose="batch_output")["id"]
        if err_lines:
            batch["error_file_id"] = self.add_file(jsonl(err_lines), filename=f"{batch['id']}_error.jsonl",
                                                   purpose="batch_output")["id"]
        inp, outp = state["usage"]
        batch.update(
            status="completed", in_progress_at=batch["in_progress_at"] or now, finalizing_at=now, completed_at=now,
            request_counts={"total": len(state["ok"]) + len(state["failed"]), "completed": len(state["ok"]),
                            "failed": len(state["failed"])},
            usage={"input_tokens": inp, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": outp,
                   "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": inp + outp},
        )

    def _get_batch(self, req: RecordedRequest, batch_id: str) -> Reply:
        if batch_id not in self.batches:
            return self.error_reply(404, f"No batch found with id '{batch_id}'.", param="batch_id")
        return Reply(200, self._advance_batch(batch_id, poll=True))

    def _list_batches(self, req: RecordedRequest) -> Reply:
        with self._lock:
            data = [dict(b) for b in reversed(self.batches.values())]
        return Reply(200, {"object": "list", "data": data, "has_more": False,
                           "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})
