"""The app in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright opens the served
app, gets a recommendation from the API baseline (a fake OpenAI server) with catalog checks, runs a
three-column comparison (fine-tuned adapter, base model, API), fights a blind arena battle, votes, and
sees the leaderboard change. The key never appears in the page."""
import pytest

from browser import AppServer, chromium, require_browser
from fakes.fixtures import fake_openai  # noqa: F401

pytestmark = pytest.mark.browser
KEY = "sk-test-BROWSER-0123456789abcdef"
TIMEOUT_MS = 90_000


def pick(page, dropdown_id: str, value: str) -> None:
    """Choose a value in a Gradio dropdown the way a user does: open it, click the option."""
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=value, exact=True).click()


def test_recommend_compare_vote_and_leaderboard_in_chromium(catalog_db, adapter_run, tiny_model_dir, home,
                                                           fake_openai):
    require_browser()
    from training.publish import publish_run

    run_label = f"run:{adapter_run} (tiny)"
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake_openai.base_url}
    publish_run(catalog_db, adapter_run)  # the operator's choice: what readers get (issue 13, item 1)
    with AppServer(home, env=env, base_model=tiny_model_dir) as app, chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)

        # The reader's model is the published run, under a plain name, not "run:N (tiny)".
        page.wait_for_selector("#rec_backend input")
        shown = page.locator("#rec_backend input").input_value()
        assert shown.startswith("moodshelf model, fine-tuned on") and "run:" not in shown

        # Recommend: the API baseline gets the request's catalog candidates (the teacher's shape), streams an
        # answer chosen among them, and each book gets its catalog card.
        pick(page, "rec_backend", "openai:gpt-4.1-mini")
        page.locator("#rec_button").click()
        page.wait_for_function("document.querySelector('#rec_cards').innerText.includes('in the catalog')")
        assert page.locator("#rec_answer textarea").input_value().startswith("1. ")
        assert "3 of 3 books are in the catalog" in page.locator("#rec_cards").inner_text()
        assert fake_openai.generation_requests[-1].body["stream"] is True

        # Compare: adapter, base model and API side by side, each with its figures.
        page.get_by_role("tab", name="Compare").click()
        assert page.locator("#cmp_col0 input").input_value() == run_label
        assert page.locator("#cmp_col2 input").input_value() == "openai:gpt-4.1-mini"  # a key is set
        page.locator("#cmp_button").click()
        for i in range(3):
            page.wait_for_function(f"document.querySelector('#cmp_stats{i}').innerText.includes('first token')")
        assert "~$" in page.locator("#cmp_stats2").inner_text()
        assert "$0 (local)" in page.locator("#cmp_stats0").inner_text()

        # Arena: a blind battle, a vote, the names revealed, the leaderboard filled.
        page.get_by_role("tab", name="Arena").click()
        board = page.locator("#arena_leaderboard")
        before = board.inner_text()
        assert run_label not in before and "base" not in before
        page.locator("#arena_start").click()
        vote = page.locator("#arena_vote_A")
        page.wait_for_function("!document.querySelector('#arena_vote_A').disabled")
        assert "Vote to reveal" in page.locator("#arena_reveal").inner_text()  # names not shown yet
        vote.click()
        page.wait_for_function("document.querySelector('#arena_reveal').innerText.includes('A was')")
        page.wait_for_function("document.querySelector('#arena_leaderboard').innerText.includes('100%')")
        after = board.inner_text()
        assert after != before and "100%" in after and "0%" in after
        # One vote gives no interval worth showing: the count, and how many votes one needs (issue 13, item 4).
        assert "after 9 more votes" in after and " – " not in after
        assert KEY not in page.content()
