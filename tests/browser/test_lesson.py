"""Browser: the lesson walks from one prompt under three directives to what a month of it saves."""
import re

from tests.browser.conftest import wait_for_app_idle


def one_chart(page) -> None:
    """Each step shows exactly one chart (the previous step's is gone once its script run has finished)."""
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stPlotlyChart\"]').length === 1",
                           timeout=60_000)
    wait_for_app_idle(page)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1


def test_lesson_walks_from_a_prompt_to_a_months_saving(page, app_url):
    page.goto(app_url + "/lesson")
    page.get_by_text("Step 1 · One prompt, three directives").wait_for(timeout=180_000)
    mx = page.get_by_role("spinbutton", name="Max new tokens")
    mx.fill("24")
    mx.press("Enter")
    wait_for_app_idle(page)
    page.get_by_role("button", name="Run the three answers").click()
    page.get_by_text(re.compile(r"Generating L0 \(1 of 3\)|Reading the prompt for L0")).first.wait_for(timeout=120_000)
    page.get_by_text("With no directive (L0) the model wrote").wait_for(timeout=240_000)
    one_chart(page)
    steps = [("Step 2 · The same answer on other grids and hours", "at its cleanest"),
             ("Step 3 · The optimizer's choice as the grid gets dirtier", "the optimizer serves"),
             ("Step 4 · What a month of it saves", "less carbon")]
    for heading, sentence in steps:
        page.get_by_role("button", name="Next →").click()
        page.get_by_text(heading).wait_for(timeout=120_000)
        page.get_by_text(sentence).first.wait_for(timeout=120_000)
        one_chart(page)
    month = page.locator("p").filter(has_text="less carbon").first.inner_text()
    assert re.search(r"keeping \d+ % of always-L0's judged quality", month), month
    assert page.get_by_role("link", name=re.compile("Go deeper")).count() == 1
