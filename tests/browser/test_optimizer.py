"""Browser: move the Optimizer's CI slider and see the decision redraw (one change, a burst of 30); the page never
hides its charts (a floor above reach, an hour outside the year); the window follows new floor settings on
request; replay a window on What-if."""
import re

from sprout_core import grid, optimizer, profiles, style
from sprout_core.decision import default_requests_per_hour
from sprout_core.views import optimizer as V
from tests.browser.conftest import count_settled, wait_for_app_idle
from tests.browser.conftest import metric_value as _metric

CI_SLIDER = "CI (g CO₂eq/kWh)"


def _open(page, app_url):
    page.goto(app_url + "/optimizer")
    page.get_by_text("Decision for this hour").wait_for(timeout=180_000)
    page.get_by_text(re.compile(r"Window: SPROUT")).wait_for(timeout=180_000)  # the page's last element
    wait_for_app_idle(page)


def _slider(page, label: str):
    return page.locator('[data-testid="stSlider"]').filter(has_text=label).get_by_role("slider")


def _expected_carbon(ci: float) -> str:
    """The "Expected carbon" the page must show at ``ci`` with its defaults (reference profile, US-TEX-ERCO 2023,
    ξ = 0.1, confidence 0.9, equal task mix, the default requests per hour)."""
    prof = profiles.load_reference()
    tr = grid.load_trace("US-TEX-ERCO", 2023)
    w = prof.weights_from({t: 1.0 for t in prof.tasks})
    theta = optimizer.theta_from_xi(ci, tr.min(), tr.max(), 0.1)
    hv = V.hour_view(prof, ci, theta, w, 0.9, float(int(round(default_requests_per_hour(prof)))))
    return style.fmt_grams(hv.decision.carbon_g)


def test_optimizer_slider_redraws_the_decision(page, app_url):
    _open(page, app_url)
    before_c, before_q = _metric(page, "Expected carbon"), _metric(page, "Quality kept")
    assert re.fullmatch(r"[\d.]+ (µg|mg|g) CO₂e", before_c)
    page.get_by_text(re.compile(r"Promise: with 90% confidence the hour keeps ≥")).wait_for()
    slider = _slider(page, CI_SLIDER)
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
    assert count_settled(page, '[data-testid="stPlotlyChart"]', 3) >= 3


def test_optimizer_slider_burst_lands_on_the_final_value(page, app_url):
    """30 quick key presses: the decision ends on the last value (not a stale one), and the window replay is not
    part of the slider's reruns (its caption stays the same element)."""
    _open(page, app_url)
    slider = _slider(page, CI_SLIDER)
    start = float(slider.input_value())
    # watch the window replay's element: a rerun that includes it marks it stale (data-stale) until redrawn
    page.locator('[data-testid="stElementContainer"]').filter(has_text="Window: SPROUT").last.evaluate(
        """e => { window.__windowStale = 0;
                  new MutationObserver(() => { if (e.getAttribute('data-stale') === 'true') window.__windowStale++; })
                      .observe(e, {attributes: true, attributeFilter: ['data-stale']}); }""")
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
        page.wait_for_timeout(30)
    final = start + 30
    assert float(slider.input_value()) == final
    page.wait_for_function(
        "(ci) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
        ".some(e => e.innerText.startsWith('Numbers: ') && e.innerText.includes(' · CI ' + ci + ' g/kWh'))",
        arg=f"{final:.1f}", timeout=60_000)
    wait_for_app_idle(page)
    page.wait_for_timeout(500)
    assert _metric(page, "Expected carbon") == _expected_carbon(final)
    captions = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Numbers: ")
    assert captions.count() == 1 and f"CI {final:.1f} g/kWh" in captions.inner_text()
    # the window replay was not part of the slider's reruns (only the decision fragment reran)
    assert page.evaluate("() => window.__windowStale") == 0


def test_optimizer_never_hides_its_charts(page, app_url):
    _open(page, app_url)
    # a floor above what any mix can keep: clamped with a message, every chart stays
    page.get_by_text("fixed θ", exact=True).click()
    wait_for_app_idle(page)
    theta = _slider(page, "θ (fraction of always-L0 quality)")
    theta.focus()
    theta.press("End")
    page.get_by_text(re.compile(r"θ = 1\.200 is more than any mix can keep")).wait_for(timeout=60_000)
    wait_for_app_idle(page)
    assert _metric(page, "Floor θ").startswith("1.000")
    assert count_settled(page, '[data-testid="stPlotlyChart"]', 4) == 4
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    # an hour outside the year: the message, no decision of the previous hour, the window stays
    page.get_by_text("an hour of the trace", exact=True).click()
    hour = page.get_by_role("spinbutton", name=re.compile(r"Hour of 2023"))
    hour.wait_for()
    wait_for_app_idle(page)
    ci_at_800 = _metric(page, "Expected carbon")
    hour.fill("9000")
    hour.press("Enter")
    page.get_by_text(re.compile(r"Hour 9000 is outside the trace of 2023")).wait_for(timeout=60_000)
    wait_for_app_idle(page)
    page.wait_for_timeout(300)
    # the previous hour's decision goes (stale elements leave when the run ends; wait rather than count at once)
    for gone in (page.locator('[data-testid="stMetric"]').filter(has_text="Expected carbon"),
                 page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Numbers: ")):
        gone.first.wait_for(state="detached", timeout=30_000)
    assert count_settled(page, '[data-testid="stPlotlyChart"]', 1) >= 1
    page.get_by_text(re.compile(r"Window: SPROUT")).wait_for()
    hour.fill("1000")
    hour.press("Enter")
    page.get_by_text(re.compile(r"→ CI = ")).wait_for(timeout=60_000)
    wait_for_app_idle(page)
    page.locator('[data-testid="stMetric"]').filter(has_text="Expected carbon").wait_for()
    page.get_by_text(re.compile(r"outside the trace")).first.wait_for(state="detached", timeout=30_000)
    assert ci_at_800 and _metric(page, "Expected carbon")


def test_optimizer_window_follows_new_floor_settings_on_request(page, app_url):
    _open(page, app_url)
    window = page.locator('[data-testid="stCaptionContainer"]').filter(has_text="Window: SPROUT")
    assert "(promise: 90 % at ξ = 0.10)" in window.inner_text()
    conf = _slider(page, "Confidence of the promise")
    conf.focus()
    conf.press("Home")   # 0.5: the decision follows at once, the heavier window replay only on request
    page.get_by_text(re.compile(r"The window below was replayed at ξ = 0\.10 and 90% confidence")).wait_for(
        timeout=60_000)
    wait_for_app_idle(page)
    assert "(promise: 90 % at ξ = 0.10)" in window.inner_text()
    assert "plug-in" in page.locator('[data-testid="stMetric"]').filter(has_text="Quality kept").inner_text()
    page.get_by_role("button", name="Replay the window", exact=True).click()
    page.get_by_text(re.compile(r"\(promise: 50 % at ξ = 0\.10\)")).wait_for(timeout=60_000)
    wait_for_app_idle(page)
    # both fragments rerun; the note goes with the decision fragment's run, which may come a moment after
    page.get_by_text(re.compile(r"The window below was replayed at")).wait_for(state="detached", timeout=30_000)
    assert count_settled(page, '[data-testid="stPlotlyChart"]', 4) == 4


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
    assert count_settled(page, '[data-testid="stDataFrame"]', 1) >= 1   # the per-strategy summary (+ every replay)
    page.get_by_text(re.compile(r"quality promise at 90% confidence")).wait_for()
    page.get_by_text(re.compile(r"ξ sweep — ")).wait_for()
    page.locator('[data-testid="stPlotlyChart"]').nth(2).wait_for(state="attached", timeout=60_000)
    # the scatter's legends fit: at 1400 and 1000 px neither covers a panel or an axis title
    for width in (1400, 1000):
        page.set_viewport_size({"width": width, "height": 1000})
        page.wait_for_timeout(1500)
        boxes = page.locator('[data-testid="stPlotlyChart"]').first.evaluate(_BOXES_JS)
        assert len(boxes["legends"]) == 2 and len(boxes["panels"]) >= 5, boxes
        for leg in boxes["legends"]:
            assert leg["right"] <= boxes["plot"]["right"] + 1, (width, leg)
            for other in boxes["panels"] + boxes["titles"]:
                assert not _overlap(leg, other), (width, leg, other)


#: bounding boxes in a rendered Plotly chart: its legends, its panels (drag areas), its axis and panel titles
_BOXES_JS = """e => {
  const box = n => { const r = n.getBoundingClientRect(); return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  return {legends: [...e.querySelectorAll('g.legend, g.legend2')].map(box),
          panels: [...e.querySelectorAll('.draglayer .nsewdrag')].map(box),
          titles: [...e.querySelectorAll('.infolayer > g[class$="title"], .annotation')].map(box),
          plot: box(e.querySelector('.main-svg'))};
}"""


def _overlap(a, b) -> bool:
    return a["left"] < b["right"] and b["left"] < a["right"] and a["top"] < b["bottom"] and b["top"] < a["bottom"]
