"""Arena, parallel Compare and the login split, served for real: a blind battle stores both backends and
the vote, the leaderboard reads them back; Compare runs three columns (one of them an API baseline on the
fake server, one failing mid-stream); admin tabs need a login when MOODSHELF_AUTH is set; no key in the page."""
import random
import time

import httpx
import pytest
from sqlalchemy import select

from app.arena_tab import MIN_VOTES_FOR_INTERVAL, arena_battles, leaderboard_table, pick_pair
from app.services import BASE_LABEL, Services
from app.ui import build_app, parse_auth, serve
from browser import api_client
from db.models import Comparison
from fakes.fixtures import fake_openai  # noqa: F401
from training.leaderboard import Battle

KEY = "sk-test-NEVERSHOWN-0123456789"


def tab_labels(config: dict) -> set[str]:
    return {c.get("props", {}).get("label") for c in config["components"] if "tab" in c.get("type", "").lower()
            and c.get("props", {}).get("label")}


def test_parse_auth_accounts_and_bad_values():
    assert parse_auth("admin:pa:ss") == [("admin", "pa:ss")]
    assert parse_auth("alice:one;bob:two") == [("alice", "one"), ("bob", "two")]
    assert parse_auth("") == [] and parse_auth(None) == []
    with pytest.raises(ValueError, match="user:password"):
        parse_auth("justaname")


def test_pair_is_two_different_backends_in_random_order():
    rng = random.Random(0)
    pairs = {tuple(pick_pair(["a", "b", "c"], rng)) for _ in range(60)}
    assert all(x != y for x, y in pairs) and ("a", "b") in pairs and ("b", "a") in pairs
    with pytest.raises(Exception, match="at least two"):
        pick_pair(["a", "a"], rng)


def test_leaderboard_reads_voted_blind_battles_only(sqlite_db):
    with sqlite_db.begin() as s:
        s.add_all([Comparison(prompt="p", results=[], blind=True, backend_a="x", backend_b="y", vote="A"),
                   Comparison(prompt="p", results=[], blind=True, backend_a="y", backend_b="x", vote="tie"),
                   Comparison(prompt="p", results=[], blind=True, backend_a="x", backend_b="y"),  # not voted
                   Comparison(prompt="p", results=[], blind=False, vote=None)])
    assert sorted(arena_battles(sqlite_db), key=lambda b: b.outcome) == [Battle("x", "y", "a"), Battle("y", "x", "tie")]
    table = leaderboard_table(sqlite_db, n_bootstrap=20)
    assert list(table["backend"]) == ["x", "y"] and list(table["win rate"]) == ["75%", "25%"]
    # Two votes say nothing about an interval: the table shows how many votes each backend has and needs.
    assert list(table["votes"]) == [2, 2] and list(table["95% interval"]) == ["after 8 more votes"] * 2


def test_the_interval_appears_once_a_backend_has_enough_votes(sqlite_db):
    with sqlite_db.begin() as s:
        s.add_all([Comparison(prompt="p", results=[], blind=True, backend_a="x", backend_b="y",
                              vote="A" if i % 3 else "B") for i in range(MIN_VOTES_FOR_INTERVAL)])
    table = leaderboard_table(sqlite_db, n_bootstrap=50)
    low, high = (float(v) for v in table["95% interval"][0].split(" – "))
    assert low < table["score"][0] < high and list(table["votes"]) == [MIN_VOTES_FOR_INTERVAL] * 2


def test_compare_streams_three_columns_and_a_failing_one_keeps_the_others(catalog_db, adapter_run, tiny_model_dir,
                                                                           fake_openai, monkeypatch, free_port):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    services = Services(db=catalog_db, base_model=tiny_model_dir)
    run_label = f"run:{adapter_run} (tiny)"
    demo = build_app(services).queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        form = ["en", "anxious", "nurse", ["calm"], "the commute", "light and easy", ""]
        out = client.predict(run_label, BASE_LABEL, "openai:gpt-4.1-mini", *form, api_name="/compare")
        texts, stats = out[0::2], out[1::2]
        assert all("first token" in s and "books in catalog" in s for s in stats)
        assert "$0 (local)" in stats[0] and "~$" in stats[2]  # the API column has an estimated cost
        assert texts[2].startswith("1. ") and "Why this book" in texts[2]
        with catalog_db.session() as s:
            row = s.scalars(select(Comparison)).one()
        assert [r["backend"] for r in row.results] == [run_label, BASE_LABEL, "openai:gpt-4.1-mini"]
        assert row.results[2]["books"] == 3 and row.results[2]["cost_usd"] > 0 and not row.blind

        fake_openai.add_fault(fail_after=5)  # the API column dies mid-answer; the local ones finish
        out = client.predict(BASE_LABEL, "openai:gpt-4.1-mini", run_label, *form, api_name="/compare")
        assert out[3].startswith("⚠️") and "openai" in out[3] and "first token" in out[1] and "first token" in out[5]
        assert len(out[2].split()) >= 4  # what arrived before the failure stays on the page

        monkeypatch.delenv("OPENAI_API_KEY")  # no key: the column says what to export, the others run
        out = client.predict(BASE_LABEL, "openai:gpt-4.1-mini", run_label, *form, api_name="/compare")
        assert "export OPENAI_API_KEY" in out[3] and "first token" in out[1] and "first token" in out[5]
        with pytest.raises(Exception, match="request is empty"):
            client.predict(BASE_LABEL, run_label, "(none)", "en", "", "", [], "", "", "", api_name="/compare")
        with pytest.raises(Exception, match="at least two"):
            client.predict(BASE_LABEL, "(none)", "(none)", *form, api_name="/compare")
    finally:
        demo.close()


def test_arena_battle_vote_reveal_and_leaderboard(catalog_db, adapter_run, tiny_model_dir, free_port):
    services = Services(db=catalog_db, base_model=tiny_model_dir)
    run_label = f"run:{adapter_run} (tiny)"
    demo = build_app(services).queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        form = ["en", "anxious", "nurse", ["calm"], "the commute", "light and easy", ""]
        out = client.predict([run_label, BASE_LABEL], *form, api_name="/battle")
        shown = " ".join(str(x) for x in out)
        assert run_label not in shown and BASE_LABEL not in shown  # blind until the vote
        with catalog_db.session() as s:
            row = s.scalars(select(Comparison)).one()
        assert row.blind and {row.backend_a, row.backend_b} == {run_label, BASE_LABEL} and row.vote is None
        assert [r["backend"] for r in row.results] == [row.backend_a, row.backend_b]

        client.predict(api_name="/vote_B")
        with catalog_db.session() as s:
            row = s.scalars(select(Comparison)).one()
        assert row.vote == "B" and row.voted_at is not None
        assert arena_battles(catalog_db) == [Battle(row.backend_a, row.backend_b, "b")]
        with pytest.raises(Exception, match="Start a battle first"):
            client.predict(api_name="/vote_A")  # the vote cleared the battle: one vote per battle
    finally:
        demo.close()


def test_arena_samples_at_the_chosen_temperature_so_two_battles_can_differ(catalog_db, adapter_run, tiny_model_dir,
                                                                         free_port):
    services = Services(db=catalog_db, base_model=tiny_model_dir)
    pool = [f"run:{adapter_run} (tiny)", BASE_LABEL]
    demo = build_app(services).queue()
    demo.launch(server_name="127.0.0.1", server_port=free_port, prevent_thread_lock=True, ssr_mode=False, quiet=True)
    try:
        client = api_client(f"http://127.0.0.1:{free_port}/")
        form = ["en", "anxious", "nurse", ["calm"], "the commute", "light and easy", "", True]

        def answers(temperature: float) -> list[dict]:
            for _ in range(2):
                client.predict(pool, *form, temperature, api_name="/battle")
            with catalog_db.session() as s:
                rows = list(s.scalars(select(Comparison).order_by(Comparison.id.desc()).limit(2)))
            return [{r["backend"]: r for r in row.results} for row in rows]

        first, second = answers(0.0)  # greedy: the answer a reader gets, word for word the same
        assert all(first[b]["output"] == second[b]["output"] and first[b]["temperature"] == 0 for b in pool)
        first, second = answers(1.0)
        assert any(first[b]["output"] != second[b]["output"] for b in pool)
        assert all(first[b]["temperature"] == 1.0 for b in pool)
        client.predict(api_name="/vote_tie")
        with pytest.raises(Exception, match="between 0 and 1.5|greater than maximum value 1.5"):
            client.predict(pool, *form, 3.0, api_name="/battle")
    finally:
        demo.close()


def test_admin_tabs_need_a_login_and_no_key_reaches_the_page(catalog_db, free_port, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = serve(catalog_db, port=free_port, block=False, auth="admin:s3cret-pw")
    base = f"http://127.0.0.1:{free_port}"
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                public = httpx.get(base + "/config", timeout=5)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert public.status_code == 200
        assert tab_labels(public.json()) == {"Recommend"}  # the readers' page; the rest is the workbench
        assert httpx.get(base + "/admin/config").status_code == 401
        with httpx.Client(base_url=base) as c:
            assert c.post("/admin/login", data={"username": "admin", "password": "wrong"}).status_code == 400
            assert c.post("/admin/login", data={"username": "admin", "password": "s3cret-pw"}).status_code == 200
            admin = c.get("/admin/config")
            assert admin.status_code == 200 and {"Compare", "Arena", "Generate", "Curate", "Train"} <= tab_labels(
                admin.json())
            for page in (public.text, admin.text, httpx.get(base + "/").text, c.get("/admin/").text):
                assert KEY not in page and "NEVERSHOWN" not in page and "s3cret-pw" not in page
    finally:
        server.should_exit = True
