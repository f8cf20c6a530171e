"""The reader's page as a phone shows it, in headless Chromium: fonts that cover Hangul are declared, nothing is
cut or scrolls sideways at 420 px, and the arena's leaderboard says what its score means (issue 13, items 4
and 9)."""
import pytest

from browser import AppServer, chromium, require_browser

pytestmark = pytest.mark.browser
TIMEOUT_MS = 90_000

# Every label of the page whose text is cut (its content wider than its box), and the page's overflow.
CUT_LABELS_JS = """() => [...document.querySelectorAll('label span, .block-title, [data-testid="block-info"]')]
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1).map(e => e.innerText)"""


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
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(300)
            overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert overflow <= 1, f"{tab}: the page scrolls sideways by {overflow} px at 420 px"
            assert page.evaluate(CUT_LABELS_JS) == [], f"{tab}: labels cut at 420 px"

        # The leaderboard says what its score means (its numbers after votes: test_browser_app.py).
        page.get_by_role("tab", name="Arena").click()
        assert "1000 is the average" in page.locator("#arena_score_explained").inner_text()
