"""The reader's page as a phone shows it, in headless Chromium: fonts that cover Hangul are declared, nothing is
cut or scrolls sideways at 420 px, and the arena's leaderboard says what its score means (issue 13, items 4
and 9)."""
import pytest

from browser import REPO, AppServer, chromium, require_browser

pytestmark = pytest.mark.browser
TIMEOUT_MS = 90_000
SHOTS = REPO / "docs" / "screenshots"

# Every visible label, and every dropdown's value, whose text is cut (wider than its box: a value once
# disappeared under the dropdown's arrow at 420 px).
CUT_TEXT_JS = """() => [...document.querySelectorAll('label span, .block-title, [data-testid="block-info"], .wrap-inner input')]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText || e.value)"""


def open_tab(page, name: str) -> None:
    """Click a tab the way a phone user does: tabs that do not fit are behind Gradio's "More tabs" button."""
    tab = page.get_by_role("tab", name=name)
    if not tab.is_visible():
        page.get_by_role("button", name="More tabs").click()
        tab = page.get_by_role("button", name=name, exact=True).last
    tab.click()


def test_the_reader_page_declares_hangul_fonts_and_fits_a_420_px_screen(catalog_db, home):
    require_browser()
    with AppServer(home) as app, chromium() as browser:
        page = browser.new_page(viewport={"width": 420, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        page.wait_for_selector("#rec_button")
        family = page.evaluate("getComputedStyle(document.querySelector('#rec_button')).fontFamily")
        assert "Noto Sans CJK KR" in family and "Malgun Gothic" in family and family.rstrip().endswith("sans-serif")
        for tab in ("Recommend", "Compare", "Arena"):
            open_tab(page, tab)
            page.wait_for_timeout(300)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{tab}: the page scrolls sideways by {overflow} px at 420 px"
            assert page.evaluate(CUT_TEXT_JS) == [], f"{tab}: text cut at 420 px"

        # The leaderboard says what its score means (its numbers after votes: test_browser_app.py).
        assert "1000 is the average" in page.locator("#arena_score_explained").inner_text()


def test_without_a_key_the_teacher_answers_beside_its_student_in_compare(catalog_db, tiny_model_dir, home):
    # Issue 13, item 10: the offline template teacher is a Compare column from `make demo` on, no key needed.
    require_browser()
    env = {"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
    with AppServer(home, env=env, base_model=tiny_model_dir) as app, chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        page.get_by_role("tab", name="Compare").click()
        assert page.locator("#cmp_col1 input").input_value() == "offline template teacher"
        page.locator("#cmp_button").click()
        page.wait_for_function("document.querySelector('#cmp_stats1').innerText.includes('books in catalog')")
        assert "3/3 books in catalog" in page.locator("#cmp_stats1").inner_text()
        assert page.locator("#cmp_answer1 textarea").input_value().startswith("1. ")


def test_a_readers_thumbs_up_is_kept_for_that_model_and_shown_in_curate(catalog_db, home):
    # Issue 13, item 4: a thumbs up on a Recommend answer is stored (the model and its books, not the request)
    # and visible in Curate as feedback on that model. On the way it takes the README's screenshots of the
    # Recommend page in English and Korean (docs/screenshots/, rewritten by every run of this test).
    require_browser()
    from db.models import ReaderFeedback

    with AppServer(home, env={"OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}) as app, chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        page.locator("#rec_backend input").click()
        page.get_by_role("option", name="offline template teacher", exact=True).click()
        page.locator("#rec_free_text textarea").fill("short chapters, I read on the train")
        page.locator("#rec_button").click()
        page.wait_for_function("document.querySelector('#rec_cards').innerText.includes('in the catalog')")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "recommend-en.png"), full_page=True)
        page.locator("#rec_up").click()
        page.wait_for_function("document.querySelector('#rec_thanks').innerText.includes('Thank you')")
        with catalog_db.session() as s:
            (row,) = s.query(ReaderFeedback).all()
        assert row.backend == "offline template teacher" and row.vote == "up" and len(row.titles) == 3

        # Issue 13, item 1: an example request, clicked, fills the form (in its language) and asks at once.
        page.locator("#rec_example_2").click()
        page.wait_for_function("document.querySelector('#rec_cards').innerText.includes('카탈로그에 있습니다')")
        assert page.locator("#rec_button").inner_text() == "추천 받기"
        assert page.locator("#rec_emotion input").input_value() == "지침"  # not reset by the language switch
        assert page.locator("#rec_free_text textarea").input_value() == "짧은 장으로 나뉜 책이면 좋겠어요"
        assert page.locator("#rec_answer textarea").input_value().startswith("1. ")
        page.screenshot(path=str(SHOTS / "recommend-ko.png"), full_page=True)
        page.get_by_role("tab", name="Curate").click()
        page.get_by_role("tab", name="Statistics").click()
        page.wait_for_function("document.querySelector('#cur_feedback').innerText.includes('offline template teacher')")
        assert "100%" in page.locator("#cur_feedback").inner_text()
