"""The fake OpenAI / Anthropic servers (tests/fakes), driven by the official SDKs exactly as the product uses
them: only base_url and a dummy key point the clients at the fakes."""
from __future__ import annotations

import asyncio
import io
import json
import time

import anthropic
import openai
import pytest

from fakes import FakeOpenAIServer
from fakes.common import n_books_from_schema, parse_candidates
from fakes.fixtures import fake_anthropic, fake_openai  # noqa: F401  (fixtures, imported as a product test would)

CANDIDATES = [("Quiet Water", "Ann Lake"), ("Morning Pages", "Ben Dawn"), ("The Long Walk Home", "Cara Field"),
              ("Small Kindnesses", "Dan Moss"), ("Night Garden", "Eve Stone")]
KO_CANDIDATES = [("달러구트 꿈 백화점", "이미예"), ("아몬드", "손원평"), ("불편한 편의점", "김호연"), ("나미야 잡화점의 기적", "히가시노 게이고")]


def prompt(cands=CANDIDATES, lead="Recommend books for a tired office worker looking for calm. Answer in JSON."):
    block = "\n".join(f"{t} | {a}" for t, a in cands)
    return f"{lead}\n<candidates>\n{block}\n</candidates>"


def books_schema(n: int) -> dict:
    book = {"type": "object", "additionalProperties": False, "required": ["title", "author", "reason", "effect"],
            "properties": {k: {"type": "string"} for k in ("title", "author", "reason", "effect")}}
    return {"type": "object", "additionalProperties": False, "required": ["books"],
            "properties": {"books": {"type": "array", "items": book, "minItems": n, "maxItems": n}}}


def json_schema_format(n: int) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "recommendation", "strict": True, "schema": books_schema(n)}}


def titles(obj) -> list[str]:
    return [b["title"] for b in obj["books"]]


CANDIDATE_TITLES = {t for t, _ in CANDIDATES}


# ---------------------------------------------------------------------------------------------------- helpers


def test_candidate_and_schema_parsing():
    text = "x\n<candidates>\n- A | Ann | calm\n1984 | George Orwell\n2) B | Bo\nnot a candidate\n</candidates>"
    assert [(c.title, c.author) for c in parse_candidates(text)] == [("A", "Ann"), ("1984", "George Orwell"),
                                                                   ("B", "Bo")]
    assert n_books_from_schema(books_schema(4)) == 4
    ref = {"$defs": {"A": {"type": "object", "properties": {"books": {"type": "array", "description": "{minItems: 5}"}}}},
           "$ref": "#/$defs/A"}
    assert n_books_from_schema(ref) == 5
    assert n_books_from_schema({"type": "object"}) is None


# ----------------------------------------------------------------------------------------------------- OpenAI


def oai(server, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=kw.pop("api_key", "sk-test"), max_retries=0, **kw)


def ask(client, content=None, **kw):
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "You recommend books."},
                                       {"role": "user", "content": content or prompt()}], **kw)


def test_openai_structured_answer_uses_candidates(fake_openai):
    assert fake_openai.base_url.startswith("http://127.0.0.1:") and fake_openai.base_url.endswith("/v1")
    client = oai(fake_openai)
    r1 = ask(client, response_format=json_schema_format(2))
    r2 = ask(client, response_format=json_schema_format(2))
    a1, a2 = (json.loads(r.choices[0].message.content) for r in (r1, r2))
    assert len(a1["books"]) == 2 and set(titles(a1)) <= CANDIDATE_TITLES
    assert titles(a1) != titles(a2)  # the starting candidate rotates
    b = a1["books"][0]
    assert b["author"] == dict(CANDIDATES)[b["title"]] and b["reason"] and b["effect"]
    assert r1.choices[0].finish_reason == "stop" and r1.model == "gpt-4o-mini" and r1.object == "chat.completion"
    assert r1.usage.total_tokens == r1.usage.prompt_tokens + r1.usage.completion_tokens > 0
    req = fake_openai.generation_requests[0]
    assert req.method == "POST" and req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.body["response_format"]["type"] == "json_schema"


def test_openai_json_mode_plain_text_and_languages(fake_openai):
    client = oai(fake_openai)
    a = json.loads(ask(client, response_format={"type": "json_object"}).choices[0].message.content)
    assert len(a["books"]) == 3 and set(titles(a)) <= CANDIDATE_TITLES  # no schema: 3 books
    a = json.loads(ask(client).choices[0].message.content)  # no response_format: still JSON text
    assert len(a["books"]) == 3
    with pytest.raises(openai.BadRequestError, match="json"):  # the real API's rule for JSON mode
        ask(client, content="no format word here", response_format={"type": "json_object"})

    ko = ask(client, content=prompt(KO_CANDIDATES, "지친 직장인에게 위로가 되는 책 2권을 추천해줘."))
    a = json.loads(ko.choices[0].message.content)
    assert len(a["books"]) == 2 and set(titles(a)) <= {t for t, _ in KO_CANDIDATES}
    assert any("\uac00" <= ch <= "\ud7a3" for ch in a["books"][0]["reason"])
    a = json.loads(ask(client, content="위로가 되는 책을 추천해줘", response_format=json_schema_format(2))
                   .choices[0].message.content)
    assert titles(a) == ["가상의 책 1", "가상의 책 2"]
    a = json.loads(ask(client, content="Recommend some books").choices[0].message.content)
    assert titles(a) == ["Imaginary Book 1", "Imaginary Book 2", "Imaginary Book 3"]


def test_openai_rate_limit_and_server_errors(fake_openai):
    client = oai(fake_openai)
    fake_openai.faults.put({"status": 429, "retry_after": 1.5})
    fake_openai.faults.put({"status": 500})
    fake_openai.faults.put({"status": 503})
    with pytest.raises(openai.RateLimitError) as e:
        ask(client)
    assert e.value.response.headers["retry-after"] == "1.5"
    assert e.value.status_code == 429 and e.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError) as e:
        ask(client)
    assert e.value.status_code == 500 and e.value.type == "server_error"
    with pytest.raises(openai.InternalServerError) as e:
        ask(client)
    assert e.value.status_code == 503
    assert ask(client).choices[0].finish_reason == "stop"  # faults are consumed
    assert len(fake_openai.generation_requests) == 4


def test_openai_delay_triggers_client_timeout(fake_openai):
    fake_openai.faults.put({"delay": 1.0})
    with pytest.raises(openai.APITimeoutError):
        ask(oai(fake_openai, timeout=0.2))
    assert ask(oai(fake_openai)).choices[0].message.content  # the server keeps serving


def test_openai_content_faults(fake_openai):
    client = oai(fake_openai)
    for fault in ({"truncate": True}, {"malformed": True}, {"ungrounded": True}, {"wrong_count": True}):
        fake_openai.faults.put(fault)
    r = ask(client, response_format=json_schema_format(3))
    assert r.choices[0].finish_reason == "length"
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content)
    r = ask(client, response_format=json_schema_format(3))
    assert r.choices[0].finish_reason == "stop"
    with pytest.raises(ValueError):
        json.loads(r.choices[0].message.content)
    a = json.loads(ask(client, response_format=json_schema_format(3)).choices[0].message.content)
    assert len(a["books"]) == 3 and not set(titles(a)) & CANDIDATE_TITLES
    a = json.loads(ask(client, response_format=json_schema_format(3)).choices[0].message.content)
    assert len(a["books"]) == 2


def test_openai_reject_json_schema_then_json_mode(fake_openai):
    fake_openai.reject_json_schema = True
    client = oai(fake_openai)
    with pytest.raises(openai.BadRequestError) as e:
        ask(client, response_format=json_schema_format(3))
    assert "json_schema" in e.value.message and "response_format" in e.value.message
    assert e.value.param == "response_format"
    a = json.loads(ask(client, response_format={"type": "json_object"}).choices[0].message.content)
    assert len(a["books"]) == 3


def test_openai_auth(fake_openai):
    fake_openai.fail_auth_unless = "sk-right"
    with pytest.raises(openai.AuthenticationError) as e:
        ask(oai(fake_openai, api_key="sk-wrong-key"))
    assert e.value.status_code == 401 and e.value.code == "invalid_api_key"
    assert ask(oai(fake_openai, api_key="sk-right")).choices[0].message.content


def test_openai_latency(fake_openai):
    fake_openai.latency = 0.3
    t0 = time.monotonic()
    oai(fake_openai).models.list()
    assert time.monotonic() - t0 >= 0.3


def batch_jsonl(n_lines: int, n_books: int = 2) -> bytes:
    lines = [{"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt-4o-mini", "response_format": json_schema_format(n_books),
                       "messages": [{"role": "user", "content": prompt()}]}} for i in range(n_lines)]
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def test_openai_batch_end_to_end_with_resume(fake_openai):
    client = oai(fake_openai)
    f = client.files.create(file=("batch.jsonl", io.BytesIO(batch_jsonl(4))), purpose="batch")
    assert f.id.startswith("file-") and f.purpose == "batch" and f.bytes > 0
    upload = fake_openai.requests_to("/v1/files", "POST")[0]
    assert upload.form["purpose"] == "batch" and upload.form["file"]["filename"] == "batch.jsonl"

    fake_openai.faults.put({})                    # req-0: fine
    fake_openai.faults.put({"status": 500})       # req-1: error line
    fake_openai.faults.put({"ungrounded": True})  # req-2: invented books
    fake_openai.faults.put({"malformed": True})   # req-3: invalid JSON content
    batch = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                                  metadata={"job": "t"})
    assert batch.status == "validating" and batch.output_file_id is None and batch.metadata == {"job": "t"}
    assert client.batches.retrieve(batch.id).status == "in_progress"

    resumed = oai(fake_openai)  # a new client (e.g. after a restart) picks the batch up by id
    done = resumed.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id and done.completed_at
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)
    assert done.error_file_id is None and done.usage.total_tokens > 0

    lines = [json.loads(x) for x in resumed.files.content(done.output_file_id).text.splitlines()]
    by_id = {x["custom_id"]: x for x in lines}
    assert [x["custom_id"] for x in lines] == ["req-0", "req-1", "req-2", "req-3"]
    ok = by_id["req-0"]
    assert ok["error"] is None and ok["response"]["status_code"] == 200 and ok["id"].startswith("batch_req_")
    answer = json.loads(ok["response"]["body"]["choices"][0]["message"]["content"])
    assert len(answer["books"]) == 2 and set(titles(answer)) <= CANDIDATE_TITLES
    assert by_id["req-1"]["error"]["code"] == "server_error" and by_id["req-1"]["response"]["status_code"] == 500
    ungrounded = json.loads(by_id["req-2"]["response"]["body"]["choices"][0]["message"]["content"])
    assert not set(titles(ungrounded)) & CANDIDATE_TITLES
    with pytest.raises(ValueError):
        json.loads(by_id["req-3"]["response"]["body"]["choices"][0]["message"]["content"])
    assert [b.id for b in resumed.batches.list()] == [batch.id]


def test_openai_batch_split_errors(fake_openai):
    fake_openai.split_batch_errors = True
    fake_openai.batch_polls_until_done = 1
    client = oai(fake_openai)
    f = client.files.create(file=("b.jsonl", batch_jsonl(2)), purpose="batch")
    fake_openai.faults.put({"status": 429})
    b = client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    done = client.batches.retrieve(b.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id
    assert len(client.files.content(done.output_file_id).text.splitlines()) == 1
    err = json.loads(client.files.content(done.error_file_id).text)
    assert err["custom_id"] == "req-0" and err["error"]["code"] == "rate_limit_exceeded"

    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nope")


def test_openai_async_client(fake_openai):
    async def main():
        client = openai.AsyncOpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0)
        fake_openai.faults.put({"status": 429, "retry_after": 2})
        with pytest.raises(openai.RateLimitError) as e:
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt()}])
        assert e.value.response.headers["retry-after"] == "2"
        rs = await asyncio.gather(*[
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt()}],
                                           response_format=json_schema_format(2)) for _ in range(4)])
        await client.close()
        return [json.loads(r.choices[0].message.content) for r in rs]

    answers = asyncio.run(main())
    assert all(len(a["books"]) == 2 for a in answers)
    assert len({tuple(titles(a)) for a in answers}) > 1


def test_stop_is_prompt_with_a_request_in_flight():
    server = FakeOpenAIServer().start()
    server.faults.put({"delay": 30})
    client = oai(server, timeout=0.2)
    with pytest.raises(openai.APITimeoutError):
        ask(client)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 3


# -------------------------------------------------------------------------------------------------- Anthropic

TOOL = {"name": "recommend_books", "description": "Return the recommendation.", "input_schema": books_schema(2)}


def ant(server, **kw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.base_url, api_key=kw.pop("api_key", "sk-ant-test"), max_retries=0,
                               **kw)


def claude(client, content=None, tools=True, **kw):
    if tools:
        kw.update(tools=[TOOL], tool_choice={"type": "tool", "name": TOOL["name"]})
    return client.messages.create(model="claude-haiku-4-5", max_tokens=1024, system="You recommend books.",
                                  messages=[{"role": "user", "content": content or prompt()}], **kw)


def test_anthropic_forced_tool_use(fake_anthropic):
    assert fake_anthropic.base_url.startswith("http://127.0.0.1:") and not fake_anthropic.base_url.endswith("/v1")
    client = ant(fake_anthropic)
    m1, m2 = claude(client), claude(client)
    assert m1.stop_reason == "tool_use" and m1.type == "message" and m1.role == "assistant"
    block = m1.content[0]
    assert block.type == "tool_use" and block.name == "recommend_books" and block.id.startswith("toolu_")
    assert len(block.input["books"]) == 2 and set(titles(block.input)) <= CANDIDATE_TITLES
    assert titles(block.input) != titles(m2.content[0].input)
    assert m1.usage.input_tokens > 0 and m1.usage.output_tokens > 0
    req = fake_anthropic.generation_requests[0]
    assert req.path == "/v1/messages" and req.body["tool_choice"] == {"type": "tool", "name": "recommend_books"}
    assert req.headers.get("anthropic-version")


def test_anthropic_text_answers(fake_anthropic):
    client = ant(fake_anthropic)
    m = claude(client, tools=False)
    assert m.stop_reason == "end_turn" and m.content[0].type == "text"
    a = json.loads(m.content[0].text)
    assert len(a["books"]) == 3 and set(titles(a)) <= CANDIDATE_TITLES
    m = claude(client, content=prompt(KO_CANDIDATES, "불안한 학생에게 안정을 주는 책을 추천해줘."), tools=False)
    a = json.loads(m.content[0].text)
    assert set(titles(a)) <= {t for t, _ in KO_CANDIDATES}
    assert any("\uac00" <= ch <= "\ud7a3" for ch in a["books"][0]["effect"])


def test_anthropic_errors_and_auth(fake_anthropic):
    client = ant(fake_anthropic)
    fake_anthropic.faults.put({"status": 429, "retry_after": 1.5})
    fake_anthropic.faults.put({"status": 500})
    fake_anthropic.faults.put({"status": 529})
    with pytest.raises(anthropic.RateLimitError) as e:
        claude(client)
    assert e.value.response.headers["retry-after"] == "1.5"
    assert e.value.body["error"]["type"] == "rate_limit_error" and e.value.body["type"] == "error"
    with pytest.raises(anthropic.InternalServerError) as e:
        claude(client)
    assert e.value.body["error"]["type"] == "api_error"
    with pytest.raises(anthropic.InternalServerError) as e:  # OverloadedError, a subclass
        claude(client)
    assert e.value.status_code == 529
    assert claude(client).stop_reason == "tool_use"

    fake_anthropic.fail_auth_unless = "sk-ant-right"
    with pytest.raises(anthropic.AuthenticationError) as e:
        claude(client)
    assert e.value.body["error"]["type"] == "authentication_error"
    assert claude(ant(fake_anthropic, api_key="sk-ant-right")).content


def test_anthropic_delay_triggers_client_timeout(fake_anthropic):
    fake_anthropic.faults.put({"delay": 1.0})
    with pytest.raises(anthropic.APITimeoutError):
        claude(ant(fake_anthropic, timeout=0.2))


def test_anthropic_content_faults(fake_anthropic):
    client = ant(fake_anthropic)
    fake_anthropic.faults.put({"truncate": True})
    m = claude(client, tools=False)
    assert m.stop_reason == "max_tokens"
    with pytest.raises(ValueError):
        json.loads(m.content[0].text)
    fake_anthropic.faults.put({"malformed": True})
    with pytest.raises(ValueError):
        json.loads(claude(client, tools=False).content[0].text)
    fake_anthropic.faults.put({"truncate": True})
    m = claude(client)
    assert m.stop_reason == "max_tokens" and len(m.content[0].input["books"]) < 2
    fake_anthropic.faults.put({"malformed": True})
    assert not isinstance(claude(client).content[0].input["books"], list)
    fake_anthropic.faults.put({"ungrounded": True})
    assert not set(titles(claude(client).content[0].input)) & CANDIDATE_TITLES
    fake_anthropic.faults.put({"wrong_count": True})
    assert len(claude(client).content[0].input["books"]) == 1


def batch_requests(n: int) -> list[dict]:
    return [{"custom_id": f"req-{i}", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 1024, "tools": [TOOL],
        "tool_choice": {"type": "tool", "name": TOOL["name"]},
        "messages": [{"role": "user", "content": prompt()}]}} for i in range(n)]


def test_anthropic_batch_end_to_end_with_resume(fake_anthropic):
    client = ant(fake_anthropic)
    fake_anthropic.faults.put({})
    fake_anthropic.faults.put({"status": 500})
    fake_anthropic.faults.put({"wrong_count": True})
    b = client.messages.batches.create(requests=batch_requests(3))
    assert b.processing_status == "in_progress" and b.request_counts.processing == 3 and b.results_url is None
    assert client.messages.batches.retrieve(b.id).processing_status == "in_progress"

    resumed = ant(fake_anthropic)
    done = resumed.messages.batches.retrieve(b.id)
    assert done.processing_status == "ended" and done.ended_at is not None
    assert done.results_url == f"{fake_anthropic.base_url}/v1/messages/batches/{b.id}/results"
    assert (done.request_counts.succeeded, done.request_counts.errored) == (2, 1)
    results = {r.custom_id: r.result for r in resumed.messages.batches.results(b.id)}
    assert results["req-0"].type == "succeeded"
    msg = results["req-0"].message
    assert msg.content[0].type == "tool_use" and len(msg.content[0].input["books"]) == 2
    assert msg.usage.service_tier == "batch"
    assert results["req-1"].type == "errored" and results["req-1"].error.error.type == "api_error"
    assert len(results["req-2"].message.content[0].input["books"]) == 1
    assert [x.id for x in resumed.messages.batches.list()] == [b.id]


def test_anthropic_batch_validation(fake_anthropic):
    client = ant(fake_anthropic)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.create(requests=[{**batch_requests(1)[0], "custom_id": "bad id!"}])
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")


def test_anthropic_async_client(fake_anthropic):
    async def main():
        client = anthropic.AsyncAnthropic(base_url=fake_anthropic.base_url, api_key="sk-ant-test", max_retries=0)
        fake_anthropic.faults.put({"status": 429, "retry_after": 3})
        with pytest.raises(anthropic.RateLimitError) as e:
            await client.messages.create(model="m", max_tokens=100, messages=[{"role": "user", "content": prompt()}])
        assert e.value.response.headers["retry-after"] == "3"
        ms = await asyncio.gather(*[
            client.messages.create(model="m", max_tokens=100, tools=[TOOL],
                                   tool_choice={"type": "tool", "name": TOOL["name"]},
                                   messages=[{"role": "user", "content": prompt()}]) for _ in range(4)])
        fake_anthropic.batch_polls_until_done = 1
        b = await client.messages.batches.create(requests=batch_requests(2))
        assert (await client.messages.batches.retrieve(b.id)).processing_status == "ended"
        results = [r async for r in await client.messages.batches.results(b.id)]
        await client.close()
        return ms, results

    ms, results = asyncio.run(main())
    assert all(m.content[0].type == "tool_use" and len(m.content[0].input["books"]) == 2 for m in ms)
    assert [r.result.type for r in results] == ["succeeded", "succeeded"]
