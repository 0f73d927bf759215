"""Browser: a Playground run always says what it is doing (status line, live carbon, running indicator), a second
session sees that it is waiting, and a run cut short leaves no stale answers and reaches the History as aborted."""
import re

from tests.browser.conftest import fill_prompt as fill

LONG_PROMPT = "Write a long story about a cat who learns to fly."


def start_run(page, app_url, prompt: str, max_new: int) -> None:
    page.goto(app_url + "/playground")
    fill(page, prompt, max_new)
    page.get_by_role("button", name="Run", exact=True).click()


def stop(page) -> None:
    # the page's Stop (Streamlit's toolbar has a "Stop" of its own while a script runs)
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").click()
    page.get_by_text("This run was cancelled").wait_for(timeout=60_000)


def test_progress_and_live_carbon_during_a_run(page, app_url):
    start_run(page, app_url, LONG_PROMPT, 160)
    page.get_by_text(re.compile(r"Generating L0 \(1 of 3\)… \d+ tokens")).wait_for(timeout=180_000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="visible", timeout=10_000)  # running indicator
    live = page.get_by_text(re.compile(r"\d+ tokens · .* · [\d.,]+ (mJ|J|kJ) · [\d.,]+ (µg|mg|g) CO₂e so far"))
    live.first.wait_for(timeout=60_000)
    carbon = page.locator('[data-testid="stMetric"]').filter(has_text="Carbon so far")
    first = carbon.locator('[data-testid="stMetricValue"]').inner_text()
    assert re.match(r"^[\d.,]+ (µg|mg|g) CO₂e$", first), first
    page.wait_for_function(  # the run's carbon grows while tokens stream
        """(v) => { const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
                     .find(e => e.innerText.includes('Carbon so far'));
                    return m && !m.innerText.includes(v); }""", arg=first, timeout=60_000)
    assert page.get_by_role("textbox", name="Prompt").is_disabled()  # inputs are locked during the run
    page.get_by_text(re.compile(r"(Reading the prompt|Generating) for? ?L1 \(2 of 3\)|Generating L1 \(2 of 3\)")).first \
        .wait_for(timeout=240_000)
    done = page.locator('[data-testid="stMetric"]').filter(has_text="Answers done")
    assert "1 of 3" in done.inner_text()
    stop(page)
    assert not page.get_by_role("textbox", name="Prompt").is_disabled()


def test_second_session_sees_that_it_is_waiting(browser, app_url):
    a_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    b_ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        a, b = a_ctx.new_page(), b_ctx.new_page()
        for p in (a, b):
            p.set_default_timeout(60_000)
        start_run(a, app_url, LONG_PROMPT, 200)
        a.get_by_text(re.compile(r"Generating L0 \(1 of 3\)")).wait_for(timeout=180_000)
        start_run(b, app_url, "What is the capital of France?", 6)
        waiting = b.get_by_text(re.compile(r"waiting for 1 run ahead of yours"))
        waiting.wait_for(timeout=60_000)
        assert b.get_by_role("textbox", name="Prompt").is_disabled()
        stop(a)  # the first user stops: the second one gets the model
        b.get_by_text("Per level", exact=True).wait_for(timeout=240_000)
        for level in ("L0", "L1", "L2"):
            b.get_by_text(re.compile(rf"^{level} answer: \d+ new tokens")).wait_for()
    finally:
        a_ctx.close()
        b_ctx.close()


def test_a_run_cut_short_leaves_no_stale_answers_and_reaches_the_history(page, app_url):
    start_run(page, app_url, "What is the capital of France?", 6)
    page.get_by_text("Per level", exact=True).wait_for(timeout=240_000)
    page.get_by_text("Prompt: What is the capital of France?").wait_for()
    # A second run: while it runs, the first run's answers are gone and the settings cannot be toggled.
    fill(page, LONG_PROMPT, 200)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text(re.compile(r"Generating L0 \(1 of 3\)")).wait_for(timeout=180_000)
    assert page.get_by_text("Prompt: What is the capital of France?").count() == 0  # no stale answers on screen
    assert page.get_by_role("switch", name="Sample").is_disabled()
    assert page.get_by_role("button", name="Run", exact=True).is_disabled()
    stop(page)
    banner = page.get_by_text("This run was cancelled").inner_text()
    assert "you pressed Stop" in banner and "cut short: L0" in banner
    page.get_by_text(f"Prompt: {LONG_PROMPT}").wait_for()
    page.goto(app_url + "/history")
    page.get_by_text("Download CSV (all columns)").wait_for(timeout=120_000)
    table = page.locator('[data-testid="stDataFrame"]').first
    table.wait_for()
    note = page.locator('[data-testid="stMetric"]').filter(has_text="Requests").locator(
        '[data-testid="stMetricDelta"]').inner_text()
    assert re.match(r"^[1-9]\d* aborted", note), note  # the cut answer is in the History, marked aborted
