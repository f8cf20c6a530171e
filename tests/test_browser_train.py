"""The Train tab as an operator opens it, in headless Chromium: the few settings people change, the rest under
"Advanced", starting from the demo's settings in the language of the approved samples (issue 13, item 5)."""
import pytest

from browser import REPO, AppServer, chromium, require_browser

pytestmark = pytest.mark.browser
TIMEOUT_MS = 90_000
SHOTS = REPO / "docs" / "screenshots"
# The loss plot's axis labels and titles that do not lie whole inside the plot (cut off or hidden).
PLOT_TEXT_CUT_JS = """() => {
    const svg = document.querySelector('#train_plot svg').getBoundingClientRect();
    return [...document.querySelectorAll('#train_plot svg text')].filter(t => t.textContent.trim()).filter(t => {
        const r = t.getBoundingClientRect();
        return r.width === 0 || r.left < svg.left - 0.5 || r.right > svg.right + 0.5;
    }).map(t => t.textContent);
}"""


def test_a_run_started_in_the_browser_shows_what_it_does_then_stops_when_asked(catalog_db, tiny_model_dir, home):
    # Issue 13, items 2 and 5: the form opens with the basics and the demo's defaults; before step 1 the status
    # says what the worker does instead of "step 0"; the loss plot and the figures follow the steps; Stop & save
    # says "stopping after this step…" at once and the run ends stopped with its adapter. On the way it takes the
    # README's screenshot of the Train tab mid-run.
    require_browser()
    import re

    from datagen.job_config import JobConfig
    from datagen.jobs import create_job, run_job
    from db.models import TrainingRun

    run_job(catalog_db, create_job(catalog_db, JobConfig(language="en", count=8, seed=3, auto_approve=True)))
    with AppServer(home, base_model=tiny_model_dir) as app, chromium() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app.url)
        page.get_by_role("tab", name="Train").click()
        page.wait_for_selector("#train_learning_rate input")
        # The form opens with the basics and the demo's settings: the demo trained at 1e-3 for 40 steps; the form
        # once said 2e-4 and mixed languages by default. The rest is under "Advanced", closed.
        assert float(page.locator("#train_learning_rate input").input_value()) == pytest.approx(1e-3)
        assert page.locator("#train_max_steps input").input_value() == "40"
        assert page.locator("#train_language input").input_value() == "en"
        assert page.locator("#train_lora_r input").is_visible()
        assert not page.locator("#train_lora_alpha input").is_visible()
        page.locator("#train_advanced").get_by_text("Advanced").first.click()
        page.wait_for_selector("#train_lora_alpha input", state="visible")

        page.locator("#train_base_model").locator("input, textarea").first.fill(tiny_model_dir)
        page.locator("#train_max_steps input").fill("400")
        # Batch 1 instead of the demo's 4: the tiny model's 49k-word output layer makes a step of 4 x 500 tokens
        # slow on a shared machine, and this test needs three steps, not their size.
        page.locator("#train_batch_size input").fill("1")
        page.locator("#train_check").click()
        page.wait_for_selector("#train_start:not([disabled])")
        page.locator("#train_start").click()
        seen, step = [], 0
        for _ in range(600):  # what the status said, every 0.2 s, until the run is a few steps in
            text = page.locator("#train_status").inner_text()
            seen.append(text)
            found = re.search(r"step (\d+)/400", text)
            step = int(found.group(1)) if found else 0
            if step >= 3 and "loss" in text:
                break
            page.wait_for_timeout(200)
        assert step >= 3, seen[-1]
        assert any("⏳" in t and "step 0/400" in t for t in seen)  # what it does before step 1, not a bare "step 0"
        page.wait_for_function("document.querySelector('#train_plot').innerText.includes('optimizer step')")
        # Readable axes: the plot opened empty, and its loss labels ("815" for 10.815) and the y title were cut off.
        page.wait_for_function(f"({PLOT_TEXT_CUT_JS})().length === 0 && "
                               "document.querySelector('#train_plot').innerText.includes('cross-entropy loss')")
        page.screenshot(path=str(SHOTS / "train-running.png"))
        page.locator("#train_stop").click()
        page.wait_for_function("['stopping after this step', '— stopped'].some("
                               "s => document.querySelector('#train_status').innerText.includes(s))")
        page.wait_for_function("document.querySelector('#train_status').innerText.includes('— stopped')")
    with catalog_db.session() as s:
        (run,) = s.query(TrainingRun).all()
    assert run.status == "stopped" and run.adapter_path and run.config["max_steps"] == 400
    assert run.config["batch_size"] == 1
