"""Optimizer page: time from a CI slider change to the redrawn decision, as a user sees it.

    .venv/bin/python benchmarks/bench_optimizer_slider.py                      # this checkout, 3 rounds
    .venv/bin/python benchmarks/bench_optimizer_slider.py --baseline main      # and a git ref, side by side
    .venv/bin/python benchmarks/bench_optimizer_slider.py --rounds 4 --presses 30 --key-delay-ms 40 --json

Starts ``streamlit run app.py`` for each arm (this checkout and, with ``--baseline REF``, a copy of that git
ref made with ``git archive``; helpers shared with ``bench_playground_ttft.py``) and drives headless
chromium (Playwright) on ``/optimizer`` at its defaults (reference profile, US-TEX-ERCO 2023, ξ = 0.1,
confidence 0.9):

* **single change** — one ArrowRight (or ArrowLeft) on the focused "CI (g CO₂eq/kWh)" slider, timed from
  the key press until the "Expected carbon" metric shows the value of the new CI *and* the decision's
  caption names that CI ("CI 331.0 g/kWh");
* **burst** — ``--presses`` key presses ``--key-delay-ms`` apart, timed from the **last** key press until
  the metric shows the final CI's value (and the caption that CI).

The expected metric values are read once per arm beforehand (each CI set slowly, waiting until the page
is idle), so a stale decision that happens to be on screen never counts. Each round times a change up and
back down. A MutationObserver counts the distinct CIs whose decision reached the screen after a burst
(1 = the page jumped to the final value; 30 = every stale rerun was replayed). Also reported: the time
until the page is idle (no running indicator). Rounds alternate the arms (ABBA) so load drifts hit both
alike; the load average is printed. On a shared machine read the ratio, not the absolute seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_playground_ttft import CHROMIUM, Server, common_args, start_arms, stop_arms

SLIDER_LABEL = "CI (g CO₂eq/kWh)"
TIMEOUT_MS = 300_000

#: counts, after a reset, every CI whose decision caption appears ("… · CI 331.0 g/kWh · …")
OBSERVER_JS = """() => {
  if (window.__ciSeen) return;
  window.__ciSeen = []; window.__ciLast = null;
  const read = () => {
    for (const e of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
      const m = e.innerText.match(/^Numbers: .* · CI ([0-9.]+) g\\/kWh/);
      if (m) { if (m[1] !== window.__ciLast) { window.__ciLast = m[1]; window.__ciSeen.push(m[1]); } return; }
    }
  };
  new MutationObserver(read).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""

#: the decision shows ``metric`` and its caption names ``ci`` (e.g. "331.0")
SHOWN_JS = """([metric, ci]) => {
  const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.includes('Expected carbon'));
  if (!m) return false;
  const v = m.querySelector('[data-testid="stMetricValue"]');
  if (!v || v.innerText !== metric) return false;
  return [...document.querySelectorAll('[data-testid="stCaptionContainer"]')]
    .some(e => e.innerText.startsWith('Numbers: ') && e.innerText.includes(' · CI ' + ci + ' g/kWh'));
}"""

IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"


def _idle(page) -> None:
    page.wait_for_function(IDLE_JS, timeout=TIMEOUT_MS)


def _metric(page) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text="Expected carbon").first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def _slider(page):
    return page.locator('[data-testid="stSlider"]').filter(has_text=SLIDER_LABEL).get_by_role("slider")


def _settled(page, ci: float) -> str:
    """The metric once the decision for ``ci`` is on screen and the page is idle."""
    page.wait_for_function(
        "(ci) => [...document.querySelectorAll('[data-testid=\"stCaptionContainer\"]')]"
        ".some(e => e.innerText.startsWith('Numbers: ') && e.innerText.includes(' · CI ' + ci + ' g/kWh'))",
        arg=f"{ci:.1f}", timeout=TIMEOUT_MS)
    time.sleep(0.3)
    _idle(page)
    return _metric(page)


class Arm:
    """One server and one browser page on its Optimizer, with the metric expected at each CI it visits."""

    def __init__(self, name: str, server: Server, browser, presses: int):
        self.name = name
        self.ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        t0 = time.perf_counter()
        self.page.goto(server.url + "/optimizer")
        self.page.get_by_text("Decision for this hour").wait_for()
        self.page.get_by_text("Window: SPROUT").first.wait_for()   # the page's last element
        _idle(self.page)
        self.first_load_s = time.perf_counter() - t0
        self.page.evaluate(OBSERVER_JS)
        self.slider = _slider(self.page)
        self.slider.focus()
        self.ci0 = self._ci()
        self.expected = {self.ci0: _settled(self.page, self.ci0)}
        for target in (self.ci0 + 1, self.ci0 + presses):   # read each target's decision with slow presses
            self._move_slowly(target)
        self._move_slowly(self.ci0)
        if _metric(self.page) != self.expected[self.ci0]:
            raise RuntimeError(f"{name}: the decision at CI {self.ci0} is not reproducible")
        self.out: dict[str, list] = {"single_s": [], "single_idle_s": [], "burst_s": [], "burst_idle_s": [],
                                     "burst_distinct_ci_shown": []}

    def _ci(self) -> float:
        return float(self.slider.input_value())

    def _move_slowly(self, target: float) -> None:
        self.slider.focus()
        while self._ci() != target:
            self.page.keyboard.press("ArrowRight" if target > self._ci() else "ArrowLeft")
            ci = self._ci()
            self.expected.setdefault(ci, _settled(self.page, ci))

    def timed(self, n: int, key_delay_s: float) -> tuple[float, float, int]:
        """``n`` presses (up, or down when above the start), timed from the last one to the final decision."""
        self.slider.focus()
        key = "ArrowRight" if self._ci() == self.ci0 else "ArrowLeft"
        target = self.ci0 + n if key == "ArrowRight" else self.ci0
        self.page.evaluate("() => { window.__ciSeen = []; }")
        for k in range(n):
            self.page.keyboard.press(key)
            if k < n - 1 and key_delay_s:
                time.sleep(key_delay_s)
        t0 = time.perf_counter()
        self.page.wait_for_function(SHOWN_JS, arg=[self.expected[target], f"{target:.1f}"], timeout=TIMEOUT_MS,
                                    polling=10)
        shown = time.perf_counter() - t0
        _idle(self.page)
        idle = time.perf_counter() - t0
        if self._ci() != target:
            raise RuntimeError(f"{self.name}: the slider ended at {self._ci()}, not {target}")
        seen = self.page.evaluate("() => window.__ciSeen.length")
        time.sleep(0.5)
        return shown, idle, seen

    def round(self, presses: int, key_delay_s: float) -> None:
        for _ in range(2):   # up, then back down
            s, i, _seen = self.timed(1, 0.0)
            self.out["single_s"].append(s)
            self.out["single_idle_s"].append(i)
        for _ in range(2):
            s, i, seen = self.timed(presses, key_delay_s)
            self.out["burst_s"].append(s)
            self.out["burst_idle_s"].append(i)
            self.out["burst_distinct_ci_shown"].append(seen)

    def close(self) -> None:
        self.ctx.close()


def _summary(xs: list[float]) -> dict:
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, rounds=3)
    ap.add_argument("--presses", type=int, default=30, help="key presses in a burst")
    ap.add_argument("--key-delay-ms", type=float, default=40.0, help="pause between the key presses of a burst")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp, servers = start_arms(args.baseline, "sprout-slider-")
    names = list(servers)
    arms: dict[str, Arm] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            for n in names:
                arms[n] = Arm(n, servers[n], browser, args.presses)
            for r in range(args.rounds):
                for n in (names if r % 2 == 0 else names[::-1]):   # ABBA
                    arms[n].round(args.presses, args.key_delay_ms / 1000)
            for a in arms.values():
                a.close()
            browser.close()
    finally:
        stop_arms(servers, tmp, args.keep)
    load = os.getloadavg()
    report = {"load_average": load, "cores": os.cpu_count(), "rounds": args.rounds, "presses": args.presses,
              "key_delay_ms": args.key_delay_ms, "arms": {}}
    for n, a in arms.items():
        o = a.out
        report["arms"][n] = {"first_load_s": a.first_load_s, "start_ci": a.ci0,
                             "single": _summary(o["single_s"]), "single_idle": _summary(o["single_idle_s"]),
                             "burst": _summary(o["burst_s"]), "burst_idle": _summary(o["burst_idle_s"]),
                             "burst_distinct_ci_shown": o["burst_distinct_ci_shown"], "raw": o}
    if len(names) > 1:
        a, b = (report["arms"][n] for n in names)
        report["ratio_this_vs_baseline"] = {k: a[k]["median_s"] / b[k]["median_s"] for k in ("single", "burst")}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} cores (shared machine: "
          f"compare arms, not absolute seconds); burst = {args.presses} presses {args.key_delay_ms:.0f} ms apart")
    for n, r in report["arms"].items():
        print(f"{n:>22}: single change {r['single']['median_s']:.2f} s (min {r['single']['min_s']:.2f}, max "
              f"{r['single']['max_s']:.2f}; idle {r['single_idle']['median_s']:.2f} s) · burst, from the last press "
              f"{r['burst']['median_s']:.2f} s (min {r['burst']['min_s']:.2f}, max {r['burst']['max_s']:.2f}; idle "
              f"{r['burst_idle']['median_s']:.2f} s; distinct decisions shown per burst "
              f"{r['burst_distinct_ci_shown']}) · first load {r['first_load_s']:.1f} s")
    if "ratio_this_vs_baseline" in report:
        q = report["ratio_this_vs_baseline"]
        print(f"ratio this/baseline (medians): single change {q['single']:.2f}, burst {q['burst']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
