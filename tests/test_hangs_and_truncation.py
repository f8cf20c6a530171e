"""Hangs and truncation in the chat backends: a hung API column gives up after the first-token timeout with one
line (and says it is waiting until then); an answer that ended at its token limit is marked as cut short by every
backend; a local answer cut in the middle of a Korean character never ends in U+FFFD."""
import threading
import time

import pytest

from app.answer_view import stats_line, waiting_line, writing_line
from app.parallel import run_columns
from app.services import Services
from app.settings import AppSettings, SettingsError
from fakes.fixtures import fake_anthropic, fake_openai  # noqa: F401
from training.backends import BASE_LABEL, FIRST_TOKEN_TIMEOUT_S, BackendError, BackendSpec, Usage, make_backend
from training.reader_request import RecommendRequest

KEY = "sk-test-abcdef123456"
MESSAGES = [{"role": "user", "content": "Recommend 3 books for a tired nurse looking for calm."}]
REQUEST = RecommendRequest.from_fields("en", "tired", "nurse", ["calm"])
SPECS = {"openai": BackendSpec(kind="openai", model="gpt-4.1-mini"),
         "anthropic": BackendSpec(kind="anthropic", model="claude-haiku-4-5")}


@pytest.fixture
def api_env(fake_openai, fake_anthropic, monkeypatch):
    for vendor, server in (("OPENAI", fake_openai), ("ANTHROPIC", fake_anthropic)):
        monkeypatch.setenv(f"{vendor}_API_KEY", KEY)
        monkeypatch.setenv(f"{vendor}_BASE_URL", server.base_url)
    return {"openai": fake_openai, "anthropic": fake_anthropic}


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", [{"stall": 30}, {"delay": 30}])
def test_hung_api_backend_gives_up_after_the_first_token_timeout(vendor, fault, api_env):
    """`stall`: the stream is open (Anthropic even sends pings) but no token comes; `delay`: no response at all."""
    api_env[vendor].add_fault(**fault)
    backend = make_backend(SPECS[vendor], first_token_timeout_s=1.0)
    t0 = time.perf_counter()
    with pytest.raises(BackendError) as e:
        backend.complete(MESSAGES)
    assert time.perf_counter() - t0 < 6  # not the SDK's 60 s, not the fake's 30 s
    assert "no answer within 1 s (first-token timeout)" in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(f"{vendor}:")
    assert make_backend(SPECS[vendor], first_token_timeout_s=1.0).complete(MESSAGES).startswith("1. ")  # next is fine


def test_first_token_timeout_defaults_to_20_s_and_comes_from_the_environment(monkeypatch):
    assert FIRST_TOKEN_TIMEOUT_S == 20.0 and AppSettings().first_token_timeout_s == 20.0
    monkeypatch.setenv("MOODSHELF_FIRST_TOKEN_TIMEOUT_S", "45")
    assert AppSettings.from_env().first_token_timeout_s == 45.0
    monkeypatch.setenv("MOODSHELF_FIRST_TOKEN_TIMEOUT_S", "soon")
    monkeypatch.setenv("MOODSHELF_STORE_READER_TEXT", "maybe")
    with pytest.raises(SettingsError) as e:  # every problem at once
        AppSettings.from_env()
    assert "MOODSHELF_FIRST_TOKEN_TIMEOUT_S='soon'" in str(e.value) and "MOODSHELF_STORE_READER_TEXT" in str(e.value)


def test_compare_column_says_it_is_waiting_then_fails_while_the_other_finishes(catalog_db, api_env):
    api_env["openai"].add_fault(stall=30)
    services = Services(db=catalog_db, settings=AppSettings(first_token_timeout_s=2.5))
    states = [(list(s.lines), s.done) for s in run_columns(
        services, ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"], REQUEST)]
    waiting = [lines[0] for lines, _ in states if lines[0].startswith("*waiting for the first token")]
    assert waiting and "(gives up after 2.5 s)" in waiting[-1]
    final = states[-1][0]
    assert states[-1][1] and final[0].startswith("⚠️ openai:gpt-4.1-mini: no answer within 2.5 s")
    assert "first token" in final[1]  # the other column finished with its figures


def test_local_columns_say_where_they_are_in_the_queue_then_that_they_write(catalog_db, adapter_run, tiny_model_dir):
    services = Services(db=catalog_db, base_model=tiny_model_dir)
    run_label = f"run:{adapter_run} (tiny)"
    list(run_columns(services, [run_label, BASE_LABEL], REQUEST, max_new_tokens=8))  # loads and merges both
    lm = services.model()  # the app's one shared local model
    seen: list[list[str]] = []
    reader = threading.Thread(target=lambda: seen.extend(list(s.lines) for s in run_columns(
        services, [run_label, BASE_LABEL], REQUEST, max_new_tokens=60)), daemon=True)
    # Models busy: whichever column asked first has its turn (its model loading), the other waits behind it. Each
    # column asks from its own thread, so which one is first is the scheduler's choice (on one core, often the
    # second column).
    with lm._models_lock:
        reader.start()
        deadline = time.monotonic() + 180  # ends as soon as it is seen; a loaded CI box may take long to start
        while time.monotonic() < deadline and not any("waiting: 1 ahead" in line for lines in list(seen)
                                                      for line in lines):
            time.sleep(0.05)
    reader.join(60)
    waiting = [lines for lines in seen if any("waiting: 1 ahead" in line for line in lines)]
    assert waiting, seen[:3]
    second = next(i for i, line in enumerate(waiting[0]) if "waiting: 1 ahead" in line)
    first = 1 - second
    assert waiting[0][first].startswith("*starting…")  # its turn has come, its model is busy
    assert any(lines[first].startswith("*writing…") for lines in seen)
    assert all("first token" in line for line in seen[-1])  # both finished with their figures


def test_waiting_and_writing_lines_give_the_place_and_an_estimate():
    from training.batching import StreamStats

    class Local:
        def __init__(self, **live):
            self.stats = StreamStats(**live)

        def queue_stats(self):
            return self.stats

    assert waiting_line(Local(ahead_now=2, wait_s=40.4), 3.2) == "*waiting: 2 ahead · about 40 s · waited 3 s*"
    assert waiting_line(Local(ahead_now=1, wait_s=200, estimate_is_bound=True), 1, "ko") == \
        "*대기 중: 앞에 1개 · 최대 3분 · 1초 기다림*"
    assert waiting_line(Local(ahead_now=1), 2) == "*waiting: 1 ahead · waited 2 s*"  # no step measured yet
    assert waiting_line(Local(ahead_now=0), 2) == "*starting… 2 s*"
    assert waiting_line(Local(writing=True, left_s=12.2), 5) == "*writing… about 12 s left*"
    assert writing_line(Local(writing=True, left_s=12.2), "ko") == "*쓰는 중… 약 12초 남음*"


@pytest.mark.parametrize("vendor,reason", [("openai", "length"), ("anthropic", "max_tokens")])
def test_answer_stopped_by_its_token_limit_is_marked_cut_short(vendor, reason, api_env):
    api_env[vendor].add_fault(truncate=True)
    backend = make_backend(SPECS[vendor])
    cut = backend.complete(MESSAGES)
    assert backend.usage.truncated and backend.usage.finish_reason == reason
    assert "cut short at the token limit" in stats_line(backend.usage, [])
    whole = backend.complete(MESSAGES)
    assert not backend.usage.truncated and len(cut) < len(whole)
    assert "cut short" not in stats_line(backend.usage, [])


def test_compare_marks_a_cut_short_column_and_stores_it(catalog_db, api_env):
    api_env["anthropic"].add_fault(truncate=True)
    services = Services(db=catalog_db)
    *_, state = run_columns(services, ["openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"], REQUEST)
    assert "cut short" not in state.lines[0] and "cut short at the token limit" in state.lines[1]
    assert [r["truncated"] for r in state.results] == [False, True]
    assert "토큰 한도에서 잘렸습니다" in stats_line(Usage(truncated=True), [], "ko")


class Scripted:
    """A row processor that makes the model write `tokens`, whatever it wanted (a scripted answer)."""

    def __init__(self, tokens: list[int]):
        self.tokens = tokens

    def __call__(self, generated, scores):
        scores.fill_(float("-inf"))
        scores[self.tokens[len(generated)]] = 0.0
        return scores


def test_local_answer_cut_inside_a_korean_character_never_ends_in_a_broken_one(tiny_model_dir):
    from training.base_model import stop_token_ids
    from training.inference import LocalModel, StreamStats

    lm = LocalModel.load(tiny_model_dir)
    tok = lm.tokenizer
    ids = tok.encode("1. 불편한 편의점 - 김호연\n - 추천 이유: 따뜻한 위로", add_special_tokens=False)
    cut = next(k for k in range(1, len(ids)) if tok.decode(ids[:k]).endswith("\ufffd"))  # mid-syllable
    stats = StreamStats()
    text = "".join(lm.stream("추천해 줘", max_new_tokens=cut, stats=stats, row_processor=Scripted(ids)))
    assert "\ufffd" not in text and text == tok.decode(ids[:cut]).rstrip("\ufffd")
    assert stats.truncated  # it stopped at the limit, not at an end token

    stats = StreamStats()
    script = Scripted(ids + [stop_token_ids(tok)[0]])
    text = "".join(lm.stream("추천해 줘", max_new_tokens=len(ids) + 5, stats=stats, row_processor=script))
    assert text == tok.decode(ids) and not stats.truncated  # ended on its own: complete


def test_local_backend_marks_an_answer_that_reached_max_new_tokens(tiny_model_dir):
    from training.inference import LocalModel

    lm = LocalModel.load(tiny_model_dir)
    backend = make_backend(BackendSpec(kind="local"), local_model=lm)
    backend.complete(MESSAGES, max_new_tokens=6)  # random weights: no end token within 6 tokens
    assert backend.usage.truncated and backend.usage.finish_reason == "length"
    assert backend.first_token_timeout_s is None  # a local column waits its turn instead
