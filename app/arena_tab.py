"""Arena tab: a blind battle. Two backends drawn at random from the pool answer the same request, shown as
A and B in random order with their names hidden; the user votes A, B, tie or both bad. The prompt, both
answers, the backends and the vote are stored (comparisons, blind = true; the reader's free text only when the
operator keeps it, app/reader_data.py), the names are revealed, and the leaderboard — win rates and Bradley–Terry
scores with bootstrap 95% intervals — is recomputed from every vote. A request that signals self-harm or suicidal
thoughts gets a caring message with the crisis line above the answers (datagen/safety.py).
"""
from __future__ import annotations

import random
from datetime import datetime, timezone

import gradio as gr
import pandas as pd
from sqlalchemy import select

from app.answer_view import CUT_SHORT, cards_markdown, constrained_checkbox, crisis_markdown, stats_line
from app.escape import html_text
from app.offered import require_offered
from app.parallel import run_columns
from app.reader_data import stored_request
from app.request_form import build_request_form
from app.services import Services, form_request
from db.engine import Database
from db.models import Comparison
from training.backends import BackendError, Usage
from training.leaderboard import Battle, leaderboard
from vendors.labels import current_label

VOTE_BUTTONS = {"A": "👈 A is better", "B": "👉 B is better", "tie": "🤝 Tie", "both_bad": "👎 Both are bad"}
LEADERBOARD_COLUMNS = ["rank", "backend", "score", "95% interval", "win rate", "votes", "both bad"]
# Below this many votes for a backend, a bootstrap interval is noise (one vote gives "1095 – 1095"): the table
# says how many more votes it needs instead.
MIN_VOTES_FOR_INTERVAL = 10
SCORE_EXPLAINED = ("**Score**: Bradley–Terry strength on the Elo scale, from blind votes only — 1000 is the "
                   "average backend, +100 means winning about 64% of battles against it. Ties count half; “both bad” says "
                   "nothing about which is better and is left out. The 95% interval appears once a backend has "
                   f"{MIN_VOTES_FOR_INTERVAL} votes.")
MAX_TEMPERATURE = 1.5
TEMPERATURE_INFO = ("0: each model answers as it answers a reader (a local model word for word the same every time). "
                    "Higher: both answers are sampled at it (nucleus, top-p 0.9 locally), so two battles on one "
                    "request differ.")


def arena_battles(db: Database) -> list[Battle]:
    """Every voted blind battle, as the leaderboard reads it (A/B votes become 'a'/'b')."""
    with db.session() as s:
        rows = s.execute(select(Comparison.backend_a, Comparison.backend_b, Comparison.vote).where(
            Comparison.blind.is_(True), Comparison.vote.is_not(None), Comparison.backend_a.is_not(None))).all()
    # Names stored in an older spelling ("run #3: tiny") count for the same backend as today's ("run:3 (tiny)").
    return [Battle(current_label(a), current_label(b), {"A": "a", "B": "b"}.get(v, v)) for a, b, v in rows]


def leaderboard_table(db: Database, *, n_bootstrap: int = 200) -> pd.DataFrame:
    rows = leaderboard(arena_battles(db), n_bootstrap=n_bootstrap, seed=0)
    return pd.DataFrame([[k, r.backend, round(r.score), interval_text(r.games, r.ci_low, r.ci_high),
                          "-" if r.win_rate is None else f"{r.win_rate:.0%}", r.games, r.both_bad]
                         for k, r in enumerate(rows, 1)], columns=LEADERBOARD_COLUMNS)


def interval_text(votes: int, low: float, high: float) -> str:
    if votes < MIN_VOTES_FOR_INTERVAL:
        more = MIN_VOTES_FOR_INTERVAL - votes
        return f"after {more} more vote{'s' if more > 1 else ''}"
    return f"{low:.0f} – {high:.0f}"


def pick_pair(pool: list[str], rng: random.Random) -> list[str]:
    """Two different backends in random order (the order decides which is shown as A)."""
    if len(set(pool)) < 2:
        raise gr.Error("The arena needs at least two backends in the pool.")
    return rng.sample(sorted(set(pool)), 2)


def build_arena_tab(services: Services, rng: random.Random | None = None) -> gr.CheckboxGroup:
    rng = rng or random.Random()
    with gr.Tab("Arena", id="arena"):
        gr.Markdown("Two models answer the same request, shown as **A** and **B** with their names hidden. "
                    "Vote for the better answer; the names are revealed after your vote and the leaderboard "
                    "updates.")
        local, api = services.backend_choices(), services.api_choices()
        pool = gr.CheckboxGroup(local + api, value=local + [a for a in api if services.has_key(a)],
                                label="Pool of backends (two are drawn at random)", elem_id="arena_pool")
        form = build_request_form("en", prefix="arena_")
        constrained = constrained_checkbox("arena_")
        temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=0.0, step=0.1, label="Sampling temperature",
                                info=TEMPERATURE_INFO, elem_id="arena_temperature")
        start = gr.Button("New battle", variant="primary", elem_id="arena_start")
        crisis = gr.Markdown(elem_id="arena_crisis")
        battle_id = gr.State(None)  # server-side per session: the page never holds the backends' names
        with gr.Row():
            with gr.Column():
                a_text = gr.Textbox(label="Model A", lines=12, interactive=False, elem_id="arena_a")
                a_line = gr.Markdown(elem_id="arena_a_stats")
            with gr.Column():
                b_text = gr.Textbox(label="Model B", lines=12, interactive=False, elem_id="arena_b")
                b_line = gr.Markdown(elem_id="arena_b_stats")
        with gr.Row():
            votes = {v: gr.Button(text, interactive=False, elem_id=f"arena_vote_{v}") for v, text in VOTE_BUTTONS.items()}
        reveal = gr.Markdown(elem_id="arena_reveal")
        gr.Markdown("### Leaderboard")
        table = gr.Dataframe(leaderboard_table(services.db), interactive=False, elem_id="arena_leaderboard")
        gr.Markdown(SCORE_EXPLAINED, elem_id="arena_score_explained")

        def battle(pool_labels, language, emotion, occupation, effects, situation, focus, free_text, constrain=True,
                   temp=0.0):
            try:
                request = form_request(language, emotion, occupation, effects, situation, focus, free_text)
                temp = float(temp or 0.0)
                if not 0.0 <= temp <= MAX_TEMPERATURE:
                    raise ValueError(f"The sampling temperature must be between 0 and {MAX_TEMPERATURE:g}, not {temp:g}.")
            except ValueError as e:
                raise gr.Error(str(e))
            try:  # the pool comes from the page: only offered backends may be drawn
                require_offered(list(pool_labels or []), services.offered_backends())
            except BackendError as e:
                raise gr.Error(str(e))
            pair = pick_pair(pool_labels or [], rng)
            notice = crisis_markdown(request.fields(), language)
            off = gr.Button(interactive=False)
            state = None
            for state in run_columns(services, pair, request, generating_line="*answering…*",
                                     constrained=bool(constrain), temperature=temp):
                # Stats lines can carry the cost, which would give an API backend away: hidden until the vote.
                lines = ["*answering…*" if not state.done else "*finished*"] * 2
                for k in range(2):
                    if state.lines[k].startswith("⚠️"):
                        lines[k] = "⚠️ this model failed; vote “both bad” or start a new battle"
                    elif state.done and state.results[k].get("truncated"):  # any backend can be: it gives none away
                        lines[k] = f"*finished* · {CUT_SHORT[language]}"
                    if state.done and not state.lines[k].startswith("⚠️"):
                        # The catalog cards give no backend away, and a reader judges the books by them.
                        lines[k] += "\n\n" + cards_markdown(services.book_cards(state.texts[k], language), language)
                yield None, state.texts[0], lines[0], state.texts[1], lines[1], "", off, off, off, off, notice
            # The vote keeps the request fields; the reader's free text only when the operator keeps it.
            kept_prompt, kept_fields = stored_request(state.prompt, request.fields(),
                                                      keep_text=services.settings.store_reader_text)
            with services.db.begin() as s:
                row = Comparison(prompt=kept_prompt, request=kept_fields, results=state.results, blind=True,
                                 backend_a=pair[0], backend_b=pair[1])
                s.add(row)
                s.flush()
                cid = row.id
            on = gr.Button(interactive=True)
            yield (cid, state.texts[0], lines[0], state.texts[1], lines[1], "*Vote to reveal the models.*",
                   on, on, on, on, notice)

        def vote(cid, choice):
            if cid is None:
                raise gr.Error("Start a battle first.")
            with services.db.begin() as s:
                row = s.get(Comparison, cid)
                if row.vote is not None:
                    raise gr.Error("This battle already has a vote: start a new one.")
                row.vote, row.voted_at = choice, datetime.now(timezone.utc)
                res, language = row.results, (row.request or {}).get("language", "en")
            def line(r):
                if r.get("error"):
                    return f"⚠️ {html_text(r['error'])}"
                u = Usage(r.get("prompt_tokens") or 0, r.get("tokens") or 0, r.get("cost_usd"), r.get("ttft_s"),
                          r.get("total_s") or 0.0, truncated=bool(r.get("truncated")))
                cards = services.book_cards(r["output"], language)
                return stats_line(u, cards, language) + "\n\n" + cards_markdown(cards, language)

            text = f"**A** was `{res[0]['backend']}` · **B** was `{res[1]['backend']}` — you voted **{VOTE_BUTTONS[choice]}**"
            if res[0].get("temperature"):
                text += f" · both sampled at temperature {res[0]['temperature']:g}"
            off = gr.Button(interactive=False)
            return None, line(res[0]), line(res[1]), text, leaderboard_table(services.db), off, off, off, off

        start.click(battle, [pool, *form.inputs, constrained, temperature],
                    [battle_id, a_text, a_line, b_text, b_line, reveal, *votes.values(), crisis])
        for choice, button in votes.items():
            button.click(lambda cid, c=choice: vote(cid, c), battle_id,
                         [battle_id, a_line, b_line, reveal, table, *votes.values()], api_name=f"vote_{choice}")
    return pool
