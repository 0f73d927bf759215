"""Browser: move the Optimizer's CI slider and see the decision redraw; replay a window on What-if."""
import re

from tests.browser.conftest import metric_value as _metric
from tests.browser.conftest import wait_for_app_idle


def test_optimizer_slider_redraws_the_decision(page, app_url):
    page.goto(app_url + "/optimizer")
    page.get_by_text("Decision for this hour").wait_for(timeout=180_000)
    page.get_by_text(re.compile(r"Window: SPROUT")).wait_for(timeout=180_000)  # the page's last element
    wait_for_app_idle(page)
    before_c, before_q = _metric(page, "Expected carbon"), _metric(page, "Quality kept")
    assert "g CO₂e/request" in before_c
    page.get_by_text(re.compile(r"Promise: with 90% confidence the hour keeps ≥")).wait_for()
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="CI (g CO₂eq/kWh)").get_by_role("slider")
    slider.focus()
    slider.press("End")  # the dirtiest CI the slider offers
    page.wait_for_function(
        "(v) => { const m = [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
        ".find(e => e.innerText.includes('Quality kept')); return m && !m.innerText.includes(v); }",
        arg=before_q, timeout=180_000)
    wait_for_app_idle(page)
    after_q = _metric(page, "Quality kept")
    assert float(after_q.rstrip("%")) < float(before_q.rstrip("%"))
    assert _metric(page, "Expected carbon") != before_c
    page.get_by_text(re.compile(r"method `?reference:sprout-paper")).first.wait_for()
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 3


def test_whatif_replays_real_traces(page, app_url):
    # a direct link works: each url_path equals its file's name in pages/, which Streamlit also
    # resolves on a first load before st.navigation runs
    page.goto(app_url + "/whatif")
    run = page.get_by_role("button", name="Run the replay")
    run.wait_for(timeout=180_000)
    wait_for_app_idle(page)
    run.click()
    page.get_by_text("Results", exact=True).wait_for(timeout=180_000)
    wait_for_app_idle(page)
    page.get_by_role("button", name="Download CSV").wait_for()
    assert page.locator('[data-testid="stDataFrame"]').count() >= 1       # the per-strategy summary (+ every replay)
    page.get_by_text(re.compile(r"quality promise at 90% confidence")).wait_for()
    page.get_by_text(re.compile(r"ξ sweep — ")).wait_for()
    page.locator('[data-testid="stPlotlyChart"]').nth(2).wait_for(state="attached", timeout=60_000)
