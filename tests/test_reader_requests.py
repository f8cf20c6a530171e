"""What readers tell the public tabs, served for real through gradio_client: a request that signals self-harm or
suicidal thoughts gets the caring message with the crisis line first in Recommend, Compare and Arena (books
follow); Compare and Arena store requests without the reader's free text unless the operator keeps it, and the
page says so; `moodshelf purge --older-than` removes old ones."""
import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.services import Services
from browser import api_client
from db.models import Comparison
from fakes.fixtures import fake_anthropic, fake_openai  # noqa: F401

KEY = "sk-test-abcdef123456"
GPT, CLAUDE = "openai:gpt-4.1-mini", "anthropic:claude-haiku-4-5"
KO_CRISIS = ["ko", "우울함", "직장인", [], "잠들기 전 휴식", "가볍게 읽을 수 있음", "요즘 정말 살고 싶지 않아요", False]
EN_CRISIS = ["en", "I want to die", "nurse", ["calm"], "the commute", "light and easy", "", False]
EN_ORDINARY = ["en", "sad", "nurse", ["calm"], "the commute", "light and easy", "tired of work, dying to read", False]
SECRET = "my husband left me last week"


@pytest.fixture
def api_env(fake_openai, fake_anthropic, monkeypatch):
    for vendor, server in (("OPENAI", fake_openai), ("ANTHROPIC", fake_anthropic)):
        monkeypatch.setenv(f"{vendor}_API_KEY", KEY)
        monkeypatch.setenv(f"{vendor}_BASE_URL", server.base_url)


@pytest.fixture
def client_for(catalog_db, free_port):
    from app.ui import build_app

    demos = []

    def start():
        demo = build_app(Services(db=catalog_db)).queue()
        demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False,
                    quiet=True)
        demos.append(demo)
        return api_client(f"http://127.0.0.1:{free_port}/")

    yield start
    for demo in demos:
        demo.close()


def test_crisis_message_comes_first_in_every_public_tab_and_the_books_follow(api_env, client_for, monkeypatch):
    client = client_for()
    job = client.submit(GPT, *KO_CRISIS, api_name="/recommend")
    job.result()
    first, last = job.outputs()[0], job.outputs()[-1]
    assert first[0] == "" and "109" in first[2] and "119" in first[2]  # before any book arrived
    assert last[0].startswith("1. ") and "109" in last[2]  # and the books still follow

    answer, _, notice = client.predict(GPT, *EN_CRISIS, api_name="/recommend")
    assert "988" in notice and "911" in notice and answer.startswith("1. ")
    assert client.predict(GPT, *EN_ORDINARY, api_name="/recommend")[2] == ""  # no false alarm

    out = client.predict(GPT, CLAUDE, "(none)", *KO_CRISIS, api_name="/compare")
    assert "109" in out[-1] and out[0].startswith("1. ") and out[2].startswith("1. ")
    out = client.predict([GPT, CLAUDE], *EN_CRISIS, api_name="/battle")
    assert "988" in out[-1] and out[0].startswith("1. ") and out[2].startswith("1. ")

    monkeypatch.delenv("ANTHROPIC_API_KEY")  # a backend that cannot answer still shows the message
    answer, line, notice = client.predict(CLAUDE, *EN_CRISIS, api_name="/recommend")
    assert "988" in notice and "ANTHROPIC_API_KEY" in line and answer == ""


def page_line(client) -> str:
    config = client.config
    return next(c["props"]["value"] for c in config["components"]
                if c.get("props", {}).get("elem_id") == "reader_data_line")


def test_public_tabs_store_requests_without_the_readers_free_text(api_env, client_for, catalog_db):
    client = client_for()
    assert "not what you write" in page_line(client)
    form = ["en", "lonely", "nurse", ["calm"], "the commute", "light and easy", SECRET, False]
    client.predict(GPT, CLAUDE, "(none)", *form, api_name="/compare")
    client.predict([GPT, CLAUDE], *form, api_name="/battle")
    client.predict(api_name="/vote_A")
    with catalog_db.session() as s:
        rows = list(s.scalars(select(Comparison).order_by(Comparison.id)))
    assert [r.blind for r in rows] == [False, True] and rows[1].vote == "A"
    for row in rows:
        assert row.request["emotion"] == "lonely" and row.request["occupation"] == "nurse"  # the fields are kept
        assert "free_text" not in row.request and "left me" not in row.prompt and "husband" not in row.prompt
        assert "husband" not in json.dumps([row.prompt, row.request], ensure_ascii=False)
        assert row.prompt.startswith("Recommend 3 books") and "Note:" not in row.prompt


def test_operator_can_keep_the_free_text_and_the_page_says_so(api_env, client_for, catalog_db, monkeypatch):
    monkeypatch.setenv("MOODSHELF_STORE_READER_TEXT", "1")
    client = client_for()
    assert "and what you write in “Anything else”" in page_line(client)
    form = ["en", "lonely", "nurse", ["calm"], "the commute", "light and easy", SECRET, False]
    client.predict(GPT, CLAUDE, "(none)", *form, api_name="/compare")
    with catalog_db.session() as s:
        row = s.scalars(select(Comparison)).one()
    assert row.request["free_text"] == SECRET and row.prompt.endswith("Note: " + SECRET)


def test_purge_removes_reader_requests_older_than_the_age(catalog_db, capsys):
    from app.cli import main

    now = datetime.now(timezone.utc)
    with catalog_db.begin() as s:
        for days, blind in ((40, False), (40, True), (31, True), (10, False), (0, True)):
            s.add(Comparison(prompt="p", request={}, results=[], blind=blind, created_at=now - timedelta(days=days)))
    assert main(["purge", "--older-than", "30d"]) == 0
    assert "removed 1 comparisons and 2 arena battles with their votes, older than 30d" in capsys.readouterr().out
    assert main(["purge", "--older-than", "1w"]) == 0
    assert "removed 1 comparisons and 0 arena battles" in capsys.readouterr().out
    assert main(["purge", "--older-than", "12h"]) == 0
    assert "nothing to remove" in capsys.readouterr().out
    with catalog_db.session() as s:
        assert len(list(s.scalars(select(Comparison)))) == 1  # the one from today


@pytest.mark.parametrize("age", ["30", "abc", "0d", "90m", "-3d", "3 days", "99999999w", ""])
def test_purge_with_a_bad_age_is_one_line_and_removes_nothing(age, catalog_db, capsys):
    from app.cli import main

    with catalog_db.begin() as s:
        s.add(Comparison(prompt="p", request={}, results=[], blind=False,
                         created_at=datetime.now(timezone.utc) - timedelta(days=400)))
    assert main(["purge", f"--older-than={age}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --older-than") and err.count("\n") == 1
    with catalog_db.session() as s:
        assert len(list(s.scalars(select(Comparison)))) == 1
