"""Fake OpenAI- and Anthropic-compatible HTTP servers for the tests (127.0.0.1 only, in-process threads).

The product code is exercised with the official SDKs unchanged: only `base_url` and a dummy key point them
at a fake.

    # in a test module (tests/ is on sys.path under pytest's default import mode: it has no __init__.py)
    from fakes.fixtures import fake_openai, fake_anthropic  # noqa: F401  (function-scoped fixtures)

    def test_something(fake_openai):
        client = openai.OpenAI(base_url=fake_openai.base_url, api_key="sk-test", max_retries=0)
        fake_openai.faults.put({"status": 429, "retry_after": 1.5})
        ...
        assert fake_openai.generation_requests[-1].body["response_format"]["type"] == "json_schema"

Or without pytest: `with FakeOpenAIServer() as server: ...` (start()/stop() also work).

Fault plan — `server.faults` is a queue.Queue; each entry is consumed by the next request to the main
generation endpoint (OpenAI POST /v1/chat/completions, Anthropic POST /v1/messages) that passes the auth
check, and by each line/request of a batch when the batch is created:
    {"status": 429, "retry_after": 1.5}   error in the provider's JSON shape (+ Retry-After header);
                                          any status >= 400 works (500, 503, 529, ...); optional
                                          "message", "type", "code" (OpenAI) override the error body
    {"delay": 3.0}                        sleep before answering (lets a client timeout fire); then answers
    {"truncate": True}                    JSON (or streamed text) cut in half; finish_reason "length" /
                                          stop_reason "max_tokens"
    {"malformed": True}                   content is not valid JSON
    {"ungrounded": True}                  invented books instead of candidates (an int n: only the last n)
    {"wrong_count": True}                 one book fewer than asked
    {"fail_after": 4}                     stream=true only: an error event after 4 text deltas (OpenAI: a data
                                          chunk with "error"; Anthropic: `event: error`, overloaded_error)
    {"stall": 30}                         stream=true only: the stream opens (headers, the first event; Anthropic
                                          also a ping every 0.5 s) and then no token comes for 30 s — a hung
                                          model behind a live connection
Keys combine, e.g. {"delay": 0.5, "wrong_count": True}.

Streaming (stream=true): chat.completion.chunk SSE (usage chunk with stream_options.include_usage, then
[DONE]) and the Messages event sequence, sent chunked, one write per event; `server.stream_delay` seconds
between deltas. A streamed request with no schema/tool and no mention of JSON is answered in the sample's
text format (numbered books, reason and effect lines), as the app's chat backends ask for it.

Other knobs: server.latency (seconds added to every request), server.fail_auth_unless (a key; others get
401), server.batch_polls_until_done (default 2), FakeOpenAIServer.reject_json_schema,
FakeOpenAIServer.json_mode_requires_json_word (default True, as the real API),
FakeOpenAIServer.split_batch_errors (default False). `server.requests` records every request.
"""
from .anthropic_server import FakeAnthropicServer
from .common import Candidate, RecordedRequest, parse_candidates
from .openai_server import FakeOpenAIServer

__all__ = ["FakeAnthropicServer", "FakeOpenAIServer", "Candidate", "RecordedRequest", "parse_candidates"]
