"""Every page at 1400 px and 1000 px: screenshots, and no clipped text or overlapping labels (issue 19 item 5).

For each page and width the test opens the page in a fresh browser context, waits until Streamlit is idle and
every chart has mounted, saves a full-page screenshot (``$SPROUT_LAYOUT_SHOTS`` or pytest's tmp dir) and then
measures in the browser:

* **clipped text** — a text element (metric value, label and note, level chip, badge, heading, caption,
  button, tab, radio and multiselect-chip label) whose ``scrollWidth`` exceeds its ``clientWidth`` (its text
  is cut or runs out of its box), or whose box sticks out of the element that clips it (``overflow`` not
  visible on an ancestor);
* **clipped chart text** — a Plotly title, axis title, legend entry or bar label whose SVG bounding box
  leaves the chart's own area;
* **overlapping labels** — two text labels of one chart (title, axis titles, legend entries, bar labels,
  annotations, tick labels of another axis) or two sibling metric lines whose boxes intersect, and error bars
  drawn over a bar's text label.

A finding names the page, the width, the element and its text, so the message says what to fix.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from .conftest import count_settled, wait_for_app_idle

PAGES = ["", "lesson", "playground", "optimizer", "evaluations", "whatif", "history"]
WIDTHS = [1400, 1000]

#: CSS selectors of text that must fit its box
TEXT_SELECTORS = [
    '[data-testid="stMetricValue"]', '[data-testid="stMetricValue"] > div', '[data-testid="stMetricLabel"] p',
    '[data-testid="stMetricDelta"] > div', '[data-testid="stHeading"] h1', '[data-testid="stHeading"] h2',
    '[data-testid="stHeading"] h3', '[data-testid="stMarkdownContainer"] span[style*="border-radius"]',
    '[data-testid="stCaptionContainer"]', 'button[data-testid^="stBaseButton"] p', '[data-baseweb="tab"] p',
    '[data-testid="stRadio"] label p', '[data-baseweb="tag"] span', '[data-testid="stWidgetLabel"] p',
    '[data-testid="stPageLink"] p', '[data-testid="stExpander"] summary p',
    '[data-testid="stMultiSelectTagsContainer"] > span > span > span:first-child',  # a chip's text (ellipsis when cut)
]

MEASURE_JS = r"""
([selectors]) => {
  const out = [];
  const short = (el) => (el.innerText || el.textContent || "").replace(/\s+/g, " ").trim().slice(0, 70);
  const visible = (el) => { const r = el.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(el).visibility !== "hidden"; };
  const seen = new Set();
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if (seen.has(el) || !visible(el)) continue;
      seen.add(el);
      const text = short(el);
      if (!text) continue;
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).display !== "inline") {
        out.push({kind: "clipped", what: sel, text, detail: `scrollWidth ${el.scrollWidth} > clientWidth ${el.clientWidth}`});
        continue;
      }
      // a box that sticks out of an ancestor that clips (overflow hidden/auto/scroll), e.g. a chip in a tag
      const r = el.getBoundingClientRect();
      for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
        const cs = getComputedStyle(a);
        if (cs.overflowX === "visible" && cs.overflow === "visible") continue;
        if (a.scrollWidth > a.clientWidth + 1 && a.matches('[data-testid="stDataFrame"] *, [data-testid="stCode"] *, pre, pre *')) break;
        const ar = a.getBoundingClientRect();
        if (r.right > ar.right + 1.5 || r.left < ar.left - 1.5) {
          out.push({kind: "clipped", what: sel, text, detail: `box ${Math.round(r.left)}–${Math.round(r.right)} px leaves its clipping parent ${Math.round(ar.left)}–${Math.round(ar.right)} px`});
        }
        break;
      }
    }
  }
  // metric lines (label, value, note) of one metric, and metrics side by side, must not overlap
  const boxes = (els) => els.filter(visible).map((e) => ({e, r: e.getBoundingClientRect(), t: short(e)})).filter((b) => b.t);
  const hit = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1.5;
  const metricParts = boxes([...document.querySelectorAll('[data-testid="stMetricLabel"], [data-testid="stMetricValue"], [data-testid="stMetricDelta"]')]);
  for (let i = 0; i < metricParts.length; i++) for (let j = i + 1; j < metricParts.length; j++) {
    const a = metricParts[i], b = metricParts[j];
    if (a.e.contains(b.e) || b.e.contains(a.e)) continue;
    if (hit(a.r, b.r)) out.push({kind: "overlap", what: "metric", text: `${a.t} / ${b.t}`, detail: "boxes intersect"});
  }
  // Plotly: every title / legend / bar label inside the chart; no two labels on top of each other
  document.querySelectorAll(".js-plotly-plot").forEach((plot, n) => {
    const svg = plot.querySelector("svg.main-svg");
    if (!svg) return;
    const area = svg.getBoundingClientRect();
    const name = short(plot.querySelector(".gtitle") || plot).slice(0, 50) || `chart ${n + 1}`;
    const labels = [];
    const add = (sel, role) => plot.querySelectorAll(sel).forEach((t) => {
      const r = t.getBoundingClientRect();
      const text = (t.textContent || "").trim();
      if (r.width > 0 && r.height > 0 && text) labels.push({r, text, role});
    });
    add(".gtitle", "title"); add(".g-xtitle text, .g-x2title text", "x title"); add(".g-ytitle text, .g-y2title text", "y title");
    add(".legend .legendtext", "legend"); add(".annotation-text", "annotation"); add(".textpoint text, text.bartext", "bar label");
    add(".xtick text, .x2tick text", "x tick"); add(".ytick text, .y2tick text", "y tick");
    for (const l of labels) {
      if (l.r.left < area.left - 1 || l.r.right > area.right + 1 || l.r.top < area.top - 1 || l.r.bottom > area.bottom + 1)
        out.push({kind: "clipped", what: `chart “${name}” ${l.role}`, text: l.text.slice(0, 70),
                  detail: `box ${Math.round(l.r.left)}–${Math.round(l.r.right)} × ${Math.round(l.r.top)}–${Math.round(l.r.bottom)} leaves the chart ${Math.round(area.left)}–${Math.round(area.right)} × ${Math.round(area.top)}–${Math.round(area.bottom)}`});
    }
    for (let i = 0; i < labels.length; i++) for (let j = i + 1; j < labels.length; j++) {
      const a = labels[i], b = labels[j];
      if (a.role === b.role && (a.role.endsWith("tick") || a.role === "legend")) continue;  // Plotly spaces its own ticks and legend rows
      if ((a.role === "x tick" && b.role === "y tick") || (a.role === "y tick" && b.role === "x tick")) continue;  // corner
      if (hit(a.r, b.r)) out.push({kind: "overlap", what: `chart “${name}”`, text: `${a.role} “${a.text.slice(0, 40)}” / ${b.role} “${b.text.slice(0, 40)}”`, detail: "boxes intersect"});
    }
    const bars = labels.filter((l) => l.role === "bar label");
    plot.querySelectorAll(".errorbar path").forEach((p) => {
      const r = p.getBoundingClientRect();
      if (r.height <= 0) return;
      for (const b of bars) if (hit(r, b.r)) out.push({kind: "overlap", what: `chart “${name}”`, text: `error bar over bar label “${b.text.slice(0, 40)}”`, detail: "boxes intersect"});
    });
  });
  return out;
}
"""


def shots_dir(tmp_path_factory) -> Path:
    d = os.environ.get("SPROUT_LAYOUT_SHOTS")
    path = Path(d) if d else tmp_path_factory.mktemp("layout-shots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return shots_dir(tmp_path_factory)


def settle(page) -> None:
    """Idle, and every chart Streamlit announced has drawn its SVG (charts mount after the script run ends).

    A drawn chart has a title, a ``.plot`` group, or — with overlaid axes and no title, as the Optimizer's window
    chart — its traces under ``.overplot``."""
    wait_for_app_idle(page)
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stPlotlyChart\"]')].every("
                           "c => c.querySelector('svg.main-svg .gtitle, svg.main-svg .plot, svg.main-svg .overplot .trace'))", timeout=60_000)
    n = page.locator('[data-testid="stPlotlyChart"]').count()
    if n:
        count_settled(page, "svg.main-svg", n)
    page.evaluate("document.fonts.ready")
    page.wait_for_timeout(600)  # Plotly's resize to the column after the first draw
    wait_for_app_idle(page)


def snap(page, path: Path) -> None:
    """A screenshot of the whole page: Streamlit scrolls inside its main block, not the document, so the window
    is made as tall as the content first (and the layout settles again)."""
    width = page.viewport_size["width"]
    height = page.evaluate("() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
                           " return m ? m.scrollHeight : document.body.scrollHeight; }")
    page.set_viewport_size({"width": width, "height": max(1000, min(int(height) + 40, 16_000))})
    page.wait_for_timeout(500)
    wait_for_app_idle(page)
    page.screenshot(path=str(path), full_page=True)


def layout_problems(page) -> list[dict]:
    """What MEASURE_JS finds, measured again after a pause when it finds something: on a loaded machine a chart
    may still be resizing to its column at the first look; a real clip or overlap is there both times."""
    found = page.evaluate(MEASURE_JS, [TEXT_SELECTORS])
    if found:
        page.wait_for_timeout(2000)
        settle(page)
        found = page.evaluate(MEASURE_JS, [TEXT_SELECTORS])
    return found


def open_page(browser, url: str, width: int):
    ctx = browser.new_context(viewport={"width": width, "height": 1000})
    ctx.set_default_timeout(120_000)
    pg = ctx.new_page()
    pg.goto(url)
    pg.get_by_test_id("stSidebarNav").wait_for()
    settle(pg)
    return ctx, pg


def describe(problems: list[dict]) -> str:
    return "\n".join(f"  {p['kind']}: {p['what']} — “{p['text']}” ({p['detail']})" for p in problems)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_page_has_no_clipped_or_overlapping_text(browser, app_url, shots, path, width):
    ctx, pg = open_page(browser, f"{app_url}/{path}", width)
    try:
        snap(pg, shots / f"{path or 'home'}-{width}.png")
        problems = layout_problems(pg)
    finally:
        ctx.close()
    assert not problems, f"/{path} at {width} px:\n{describe(problems)}"


@pytest.mark.parametrize("width", WIDTHS)
def test_playground_after_a_run_has_no_clipped_or_overlapping_text(browser, app_url, shots, width):
    """The headline metrics, level chips, charts and tables of a finished run (the states a class sees)."""
    from .conftest import fill_prompt

    ctx, pg = open_page(browser, f"{app_url}/playground", width)
    try:
        fill_prompt(pg, "Why is the sky blue?", 24)
        pg.get_by_role("button", name="Run", exact=True).click()
        pg.get_by_text("Energy and carbon per level").wait_for(timeout=300_000)
        settle(pg)
        snap(pg, shots / f"playground-run-{width}.png")
        problems = layout_problems(pg)
    finally:
        ctx.close()
    assert not problems, f"/playground after a run at {width} px:\n{describe(problems)}"


@pytest.mark.parametrize("width", WIDTHS)
def test_lesson_steps_have_no_clipped_or_overlapping_text(browser, app_url, shots, width):
    """Steps 2–4 of the lesson (step 1 before a run is the plain page test)."""
    ctx, pg = open_page(browser, f"{app_url}/lesson", width)
    found = []
    try:
        for step in (2, 3, 4):
            pg.get_by_role("button", name="Next →").click()
            pg.get_by_text(f"Step {step} ·").first.wait_for()
            settle(pg)
            snap(pg, shots / f"lesson-step{step}-{width}.png")
            found += [dict(p, what=f"step {step}: {p['what']}") for p in layout_problems(pg)]
    finally:
        ctx.close()
    assert not found, f"/lesson at {width} px:\n{describe(found)}"
