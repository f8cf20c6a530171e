"""Security in a real browser (headless Chromium from Debian's `chromium`, driven by Playwright): a model answer
that carries HTML and Markdown payloads reaches the book cards as text, with no element injected and no script
run; a request that signals distress shows the crisis line above the answer; a logged-out visitor of /admin/
sees the login form only, and the admin tabs after logging in."""
import pytest

from browser import AppServer, chromium, require_browser
from fakes.fixtures import fake_openai  # noqa: F401

pytestmark = pytest.mark.browser
KEY = "sk-test-BROWSER-0123456789abcdef"
TIMEOUT_MS = 90_000
TITLE = "<img src=x onerror=window.__xss=1>"
AUTHOR = "<b>Evil</b> [link](javascript:window.__xss=2)"
PAYLOAD = (f"1. {TITLE} - {AUTHOR}\n - Why this book: <script>window.__xss=3</script> it helps\n"
           " - How it may help: **calm** ![pic](http://127.0.0.1:9/x.png)\n"
           "2. Second www.evil.example - Someone\n - Why this book: fine\n - How it may help: fine")


def pick(page, dropdown_id: str, value: str) -> None:
    page.locator(f"#{dropdown_id} input").click()
    page.get_by_role("option", name=value, exact=True).click()


def test_model_answer_with_markup_reaches_the_cards_as_text(catalog_db, home, fake_openai):
    require_browser()
    fake_openai.canned = [("Recommend", PAYLOAD)]
    env = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": fake_openai.base_url}
    with AppServer(home, env=env) as app, chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        pick(page, "rec_backend", "openai:gpt-4.1-mini")
        page.locator("#rec_button").click()
        page.wait_for_function("document.querySelector('#rec_cards').innerText.includes('in the catalog')")
        cards = page.locator("#rec_cards")
        text = cards.inner_text()
        assert TITLE in text and AUTHOR in text and "www.evil.example" in text  # shown as typed
        for tag in ("img", "a", "b", "script"):
            assert cards.locator(tag).count() == 0, tag  # no element injected
        assert page.evaluate("window.__xss") is None  # and nothing ran
        assert page.locator("#rec_answer textarea").input_value().startswith(f"1. {TITLE}")  # plain text box

        # A request that signals distress: the crisis line shows above the answer, the books follow.
        emotion = page.locator("#rec_emotion input")
        emotion.fill("I want to die")
        emotion.press("Enter")
        page.locator("#rec_button").click()
        page.wait_for_function("document.querySelector('#rec_crisis').innerText.includes('988')")
        page.wait_for_function("document.querySelector('#rec_cards').innerText.includes('in the catalog')")
        crisis = page.locator("#rec_crisis").bounding_box()
        answer = page.locator("#rec_answer").bounding_box()
        assert crisis["y"] < answer["y"] and "911" in page.locator("#rec_crisis").inner_text()


def test_logged_out_admin_sees_the_login_form_only_then_the_tabs(catalog_db, home):
    require_browser()
    with AppServer(home, env={"MOODSHELF_AUTH": "admin:s3cret-pw"}) as app, chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url + "admin/")
        page.get_by_role("button", name="Login").wait_for()
        html = page.content()
        assert "add_backend" not in html and "start_job_clicked" not in html
        page.get_by_label("username").fill("admin")
        page.get_by_label("password").fill("s3cret-pw")
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Backends").wait_for()
        assert page.get_by_role("tab", name="Curate").count() == 1
