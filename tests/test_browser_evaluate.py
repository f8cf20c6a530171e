"""The Evaluate tab as an operator opens it, in headless Chromium: a running evaluation is reattached after a
reload, the default sample count finishes in minutes and its estimate is shown (issue 13, item 7)."""
import os

import pytest

from browser import AppServer, chromium, require_browser

pytestmark = pytest.mark.browser
TIMEOUT_MS = 90_000


def test_a_reload_reattaches_to_the_running_evaluation_and_the_default_is_a_few_minutes(catalog_db, home):
    require_browser()
    from db.models import EvalRun

    with catalog_db.begin() as s:
        # A worker that is alive (this test's own process stands in for it) owns a running evaluation.
        ev = EvalRun(label="base", backend={"name": "base", "kind": "local"}, config={}, sample_ids=[], total=10,
                     done=3, status="running", pid=os.getpid())
        s.add(ev)
        s.flush()
        eval_id = ev.id
    with AppServer(home) as app, chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        for _ in range(2):  # the first visit, then a reload: both show the running evaluation
            page.goto(app.url)
            page.get_by_role("tab", name="Evaluate").click()
            page.wait_for_selector("#eval_status")
            assert page.locator("#eval_ids textarea, #eval_ids input").first.input_value() == str(eval_id)
            status = page.locator("#eval_status").inner_text()
            assert "running" in status and "3/10" in status and "No evaluation running" not in status
        assert page.locator("#eval_limit input").input_value() == "20"  # not "all samples": hours on a CPU
        assert "About" in page.locator("#eval_estimate").inner_text()
