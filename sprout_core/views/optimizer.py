"""The Optimizer page's view: one hour's decision with its quality promise, and a window of hourly decisions.

Everything here returns data, sentences and Plotly figures (no streamlit); the page reads widgets and
renders. The page never goes blank: :func:`hour_view` clamps a floor above what any mix can keep at the
chosen confidence (:func:`clamp_theta` is the plain-LP form), and :func:`check_hour` turns an hour outside
the trace into a message instead of a stale decision.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sprout_core import decision as dec
from sprout_core import optimizer as opt
from sprout_core import simulate, style
from sprout_core.carbon import saving_pct
from sprout_core.grid import Trace
from sprout_core.profiles import Profile
from sprout_core.style import level_colors


@dataclass
class HourView:
    """One hour's decision and what to say about it."""

    decision: opt.Decision
    theta_asked: float
    theta: float                 # the floor used (clamped to what the confidence allows)
    clamped: bool
    base_g: float                # always-L0 g/request at this CI
    saving_pct: float            # vs always-L0, NaN when unknown
    q0_zero: bool
    quality_text: str            # "95.1 %"
    promise_text: str            # "with 90 % confidence ≥ 93.0 % (range 93.0–97.4 %)"
    summary: str
    notes: list[str]
    promise_note: str = ""       # the promise in a few words, under the quality metric: "≥ 94.8% at 90% confidence"


#: width of one metric on the page (px): metrics of one width in a horizontal container wrap to the next line
#: on a narrow screen instead of cutting their values ("0.077…")
METRIC_PX = 205


def hour_view(profile: Profile, ci: float, theta: float, weights: np.ndarray, confidence: float,
              requests_per_hour: float | None, pue: float = 1.0) -> HourView:
    """The decision at ``ci`` (g/kWh) and ``pue`` for floor ``theta`` kept with ``confidence``; a floor above
    what any mix can promise at that confidence is clamped to the largest reachable one (with a note), so
    the page never goes blank."""
    notes: list[str] = []
    d = dec.hour_decision(profile, ci, theta, weights, confidence, requests_per_hour, pue=pue)
    theta_used, clamped = float(theta), False
    if d.status != "optimal" and np.isfinite(d.max_theta):
        theta_used, clamped = float(d.max_theta) - 1e-9, True
        notes.append(f"θ = {theta:.3f} is more than any mix can keep{_conf(confidence)}: showing the largest "
                     f"reachable floor, θ = {d.max_theta:.3f}.")
        d = dec.hour_decision(profile, ci, theta_used, weights, confidence, requests_per_hour, pue=pue)
    e, t, q = profile.under_mix(weights)
    base_g = float(opt.cost_per_request(e, t, ci, profile.k_emb, pue)[0])
    q0_zero = not float(q[0]) > 0
    ok = d.status == "optimal"
    saving = saving_pct(d.carbon_g, base_g, missing=float("nan")) if ok else float("nan")
    note = ""
    if not ok:
        qt, pt, summary = "n/a", "", d.message
    elif q0_zero:
        shares = ", ".join(f"{lv} {v:.1%}" for lv, v in zip(profile.levels, q))
        qt, pt = "n/a (q₀ = 0)", ""
        summary = (f"In this q, L0 never won (win shares: {shares}). Quality relative to always-L0 is undefined and "
                   "every mix meets a floor of θ·q₀ = 0, so the optimizer simply serves the cheapest level. Judge more "
                   "prompts (or use another judge) to get a q that trades carbon against quality.")
    else:
        qt = f"{d.quality:.1%}"
        if confidence > 0.5:
            pt = (f"with {confidence:.0%} confidence the hour keeps ≥ {d.quality_low:.1%} "
                  f"(and ≤ {d.quality_high:.1%}); spread ± {d.quality_sd:.1%}")
            note = f"≥ {d.quality_low:.1%} at {confidence:.0%} confidence"
        else:
            pt = (f"plug-in estimate: the hour's realised quality scatters ± {d.quality_sd:.1%} around it, "
                  "so it falls below the floor in about half of such hours")
            note = f"± {d.quality_sd:.1%} (plug-in, no margin)"
        summary = (d.message + f" At {ci:.0f} g/kWh a request costs {style.fmt_grams(d.carbon_g)} on average; "
                   f"{'the quality promise binds' if d.binding == 'quality' else 'only Σx = 1 binds'}.")
    return HourView(d, float(theta), theta_used, clamped, base_g, saving, q0_zero, qt, pt, summary, notes, note)


def floor_note(hv: HourView, xi: float | None, ci: float) -> str:
    """Where the floor comes from, in a few words: ξ and the CI, a fixed θ, or the θ asked before clamping."""
    if hv.clamped:
        return f"asked {hv.theta_asked:.3f}: not reachable"
    if xi is None:
        return "fixed"
    return f"ξ = {xi:.2f} at {ci:.0f} g/kWh"


def pct_less(v: float, unit: str = "% less", sign: str = "") -> str:
    """``"40.5 % less"`` / ``"+38.1 pp"``; ``"n/a"`` when not finite (never ``-0.0``)."""
    return f"{round(v, 1) + 0.0:{sign}.1f} {unit}" if np.isfinite(v) else "n/a"


def _conf(c: float) -> str:
    return f" with {c:.0%} confidence" if c > 0.5 else ""


def mix_figure(levels, x: np.ndarray) -> go.Figure:
    fig = go.Figure(go.Bar(x=list(levels), y=np.asarray(x) * 100, text=[f"{v:.0%}" for v in x], textposition="auto",
                           marker_color=level_colors(levels)))
    fig.update_layout(title="Share of requests per level", yaxis_title="share of requests (%)", yaxis_range=[0, 105],
                      height=340, margin=dict(t=40, b=30))
    return fig


def frontier_figure(profile: Profile, weights: np.ndarray, ci: float, hv: HourView, pue: float = 1.0) -> go.Figure:
    """Carbon against expected quality for every mix, the plug-in frontier, the chosen mix with its
    promised range, and the floor (costs at ``ci`` g/kWh and ``pue``)."""
    e, t, q = profile.under_mix(weights)
    cost = opt.cost_per_request(e, t, ci, profile.k_emb, pue)
    _, cq, cc = opt.mix_cloud(cost, q, step=0.05)
    fq, fc = opt.frontier(cost, q, n=101)
    d = hv.decision
    div, unit = style.grams_scale(cc)   # one unit for the axis: "mg CO₂e", never Plotly's "80m"
    cc, fc = cc / div, fc / div
    fr = go.Figure()
    fr.add_trace(go.Scatter(x=cq * 100, y=cc, mode="markers", name="all mixes (5 % grid)",
                            marker=dict(size=4, color="#bbbbbb")))
    fr.add_trace(go.Scatter(x=fq * 100, y=fc, mode="lines", name="least carbon for an expected quality",
                            line=dict(color="#2e7d32")))
    err = None
    if d.confidence > 0.5 and np.isfinite(d.quality_low):
        err = dict(type="data", symmetric=False, array=[(d.quality_high - d.quality) * 100],
                   arrayminus=[(d.quality - d.quality_low) * 100], color="#d84315", thickness=2)
    fr.add_trace(go.Scatter(x=[d.quality * 100], y=[d.carbon_g / div], mode="markers", name="chosen mix (± promise range)",
                            marker=dict(size=14, color=style.HIGHLIGHT_COLOR, symbol="star"), error_x=err))
    fr.add_vline(x=hv.theta * 100, line_dash="dot", annotation_text="floor θ")
    fr.update_layout(title="Carbon vs quality of every mix", xaxis_title="expected quality (% of always-L0)",
                     yaxis_title=f"{unit} CO₂e per request", height=340, margin=dict(t=40, b=30),
                     legend=dict(orientation="h", y=-0.3))
    return fr


@dataclass
class WindowView:
    result: simulate.SimResult
    figure: go.Figure
    caption: str


def window_view(profile: Profile, trace: Trace, start: int, hours: int, xi: float, seed: int, confidence: float,
                pue: float = 1.0) -> WindowView:
    """SPROUT over a window: CI with evaluator runs, the hourly mix, and each hour's realised quality
    against its floor (the promise, hour by hour); carbon at ``pue``."""
    hours = int(min(hours, len(trace) - start))
    cfg = simulate.SimConfig(start_hour=start, hours=hours, xi=xi, seed=seed, confidence=confidence, pue=pue)
    res = simulate.simulate(profile, trace, cfg, ["SPROUT"])
    sp = res.results["SPROUT"]
    ts = res.timestamps.astype("datetime64[s]").astype(object)
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.3, 0.35, 0.35], vertical_spacing=0.05)
    fig.add_trace(go.Scatter(x=ts, y=res.ci, name="CI (g/kWh)", line=dict(color=style.GRID_COLOR)), row=1, col=1)
    if len(sp.refresh_hours):
        fig.add_trace(go.Scatter(x=[ts[i] for i in sp.refresh_hours], y=res.ci[sp.refresh_hours], mode="markers",
                                 name="evaluator run", marker=dict(symbol="triangle-down", size=10, color=style.HIGHLIGHT_COLOR)),
                      row=1, col=1)
    for i, (lv, col) in enumerate(zip(sp.levels, level_colors(sp.levels))):
        fig.add_trace(go.Scatter(x=ts, y=sp.x[:, i] * 100, name=f"share {lv}", stackgroup="x", mode="lines",
                                 line=dict(width=0.5, color=col), fillcolor=col), row=2, col=1)
    fig.add_trace(go.Scatter(x=ts, y=res.theta * 100, name="floor θ (this hour)", line=dict(color=style.BASELINE_COLOR, dash="dot")),
                  row=3, col=1)
    fig.add_trace(go.Scatter(x=ts, y=sp.quality_h * 100, name="realised quality", mode="lines",
                             line=dict(color=style.strategy_color("SPROUT"), width=1)), row=3, col=1)
    fig.update_yaxes(title_text="g CO₂e/kWh", row=1, col=1)
    fig.update_yaxes(title_text="share (%)", range=[0, 100], row=2, col=1)
    fig.update_yaxes(title_text="quality (%)", row=3, col=1)
    fig.update_layout(height=620, margin=dict(t=20, b=20), legend=dict(orientation="h", y=-0.1))
    judge = "included" if res.judge_included else "n/a (not included)"
    cap = (f"Window: SPROUT {style.fmt_grams(sp.carbon_g_per_request)} per request ({sp.carbon_saving_pct:.1f} % less "
           f"than always-L0, incl. {sp.evaluator_runs} evaluator runs = {style.fmt_grams(sp.evaluator_carbon_g)}; judge "
           f"energy {judge}); quality {sp.quality_pct:.1f} % on average, the floor kept in "
           f"{sp.hours_meeting_floor_pct:.0f} % of hours (promise: {confidence * 100:.0f} % at ξ = {xi:.2f}), worst hour "
           f"{sp.quality_min_pct:.1f} % · {profile.method}")
    return WindowView(res, fig, cap)


# ------------------------------------------------------------------ never blank

@dataclass(frozen=True)
class Floor:
    """The floor θ the optimizer uses (``theta``), what was asked (``asked``) and why they differ (``message``)."""

    theta: float
    asked: float
    message: str = ""

    @property
    def clamped(self) -> bool:
        return self.theta != self.asked


def clamp_theta(theta: float, max_theta: float, best_level: str = "") -> Floor:
    """``theta`` if some mix reaches it, else ``max_theta`` (rounded down to 3 decimals) with a message."""
    if theta <= max_theta + 1e-12:
        return Floor(float(theta), float(theta))
    reach = int(max_theta * 1000) / 1000
    who = f" (always {best_level})" if best_level else ""
    return Floor(reach, float(theta),
                 f"No mix keeps θ = {theta:.2f} × q₀: the most any mix can keep is {max_theta:.3f} × q₀{who}. "
                 f"Showing the decision at θ = {reach:.3f} instead.")


def check_hour(hour: int | float | None, n_hours: int, year: int | None = None) -> tuple[int | None, str]:
    """``(hour, "")`` for an hour of the trace (0 … ``n_hours`` − 1), else ``(None, message)``."""
    if hour is None:
        return None, "Type an hour of the year."
    try:
        h = int(hour)
    except (TypeError, ValueError):
        return None, f"{hour!r} is not an hour: type a whole number from 0 to {n_hours - 1}."
    if h != hour or not 0 <= h < n_hours:
        of = f" of {year}" if year else ""
        return None, (f"Hour {hour} is outside the trace{of}: hours run from 0 (1 Jan 00:00 UTC) to {n_hours - 1} "
                      "(31 Dec 23:00 UTC). No decision is shown for it.")
    return h, ""
