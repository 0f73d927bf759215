"""Browser: energy grows while answers stream; per-level energy/carbon with labels; slider re-prices; History lists it."""
import re

from tests.browser.conftest import wait_for_app_idle


def test_playground_energy_flow_and_history(page, app_url):
    page.goto(app_url + "/playground")
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.wait_for(timeout=180_000)
    prompt.fill("Why is the sky blue?")
    prompt.press("Control+Enter")
    box = page.get_by_role("spinbutton", name="Max new tokens")
    box.fill("48")
    box.press("Enter")
    wait_for_app_idle(page)
    # the energy label is named before anything runs
    page.get_by_text(re.compile(r"Energy: (measured|estimated):[a-z-]+|Energy: n/a")).first.wait_for()

    page.get_by_role("button", name="Run", exact=True).click()
    # live: tokens, tokens/s, power, energy and carbon so far with its label, while the answer streams
    live = page.get_by_text(re.compile(
        r"\d+ tokens · [\d.]+ tokens/s · [\d.]+ W · [\d.,]+ (mJ|J|kJ) · [\d.,]+ (µg|mg|g) CO₂e so far · (estimated|measured)"))
    live.first.wait_for(timeout=240_000)

    page.get_by_text("Energy and carbon per level").wait_for(timeout=240_000)
    wait_for_app_idle(page)
    info = page.get_by_text(re.compile(r"^Energy method: ")).first
    text = info.inner_text()
    assert re.search(r"(estimated|measured):[a-z-]+", text), text
    assert "g CO₂e/kWh" in text
    before = re.search(r"Carbon at ([\d.]+) g CO₂e/kWh", text).group(1)

    # switch to the slider and move it: carbon re-priced, energy not re-measured
    page.get_by_text("Carbon: grid zone and hour, PUE, embodied carbon").click()
    slider_radio = page.get_by_text("Slider", exact=True)
    if slider_radio.count():
        slider_radio.first.click()
        wait_for_app_idle(page)
    thumb = page.get_by_role("slider").first
    thumb.focus()
    for _ in range(10):
        thumb.press("ArrowRight")
    wait_for_app_idle(page)
    after = re.search(r"Carbon at ([\d.]+) g CO₂e/kWh", page.get_by_text(re.compile(r"^Energy method: ")).first.inner_text()).group(1)
    assert after != before

    page.goto(app_url + "/history")
    page.get_by_text("Requests").first.wait_for(timeout=120_000)
    wait_for_app_idle(page)
    metric = (page.locator('[data-testid="stMetric"]')
              .filter(has=page.locator('[data-testid="stMetricLabel"]').get_by_text("Requests", exact=True))
              .locator('[data-testid="stMetricValue"]'))
    assert int(metric.inner_text().replace(",", "")) >= 3
    page.get_by_role("button", name="Download CSV (all columns)").wait_for()
