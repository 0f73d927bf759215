"""The guided lesson: four steps from one prompt to what a month of directives saves (no streamlit).

1. :func:`prompt_step` — one prompt under three directives on the loaded model, and what each answer cost;
2. :func:`grids_step` — the same answer's energy priced on every grid at its cleanest hour, yearly mean and
   dirtiest hour (public Electricity Maps traces);
3. :func:`optimizer_step` — the optimizer's mix as the grid gets dirtier (Sprout's carbon-aware floor);
4. :func:`month_step` — a month of SPROUT against always-L0 in one zone: carbon saved, quality kept.

Steps 1–2 measure the loaded model; steps 3–4 need quality (judged answers), so they use a profile —
the Sprout paper's reference measurements unless the caller passes another. Every step returns a
:class:`Step`: one figure, one sentence, and the figure's numbers.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sprout_core import decision, optimizer, simulate, style
from sprout_core.carbon import DEFAULT_EMBODIED, EmbodiedModel, grams_per_request, kwh, saving_pct
from sprout_core.grid import ATTRIBUTION, Trace
from sprout_core.profiles import Profile

#: (key, short name, title, page that goes deeper, label of the link)
STEPS = (
    ("prompt", "A prompt", "One prompt, three directives", "pages/playground.py", "Try your own prompts in the Playground"),
    ("grids", "Grids and hours", "The same answer on other grids and hours", "pages/history.py",
     "See every answer's carbon in the History"),
    ("optimizer", "The optimizer", "The optimizer's choice as the grid gets dirtier", "pages/optimizer.py",
     "Slide it yourself in the Optimizer"),
    ("month", "A month", "What a month of it saves", "pages/whatif.py", "Compare strategies over real months in What-if"),
)
DEFAULT_PROMPT = "Why is the sky blue?"
#: step 1's default cap on new tokens: high enough that each level's answer ends on its own on the embedded
#: model (its L0 answer to the default prompt is about 200 tokens), so the cap does not make L1 as long as L0
DEFAULT_MAX_NEW = 320
#: levels the lesson compares (the first three of the model's directive set)
LESSON_LEVELS = 3


@dataclass(frozen=True)
class Step:
    """One step of the lesson: a Plotly ``figure``, one ``sentence`` (markdown), its ``numbers`` and a ``note``
    on where the numbers come from."""

    figure: object
    sentence: str
    numbers: dict = field(default_factory=dict)
    note: str = ""


# ------------------------------------------------------------------------------------------ step 1

def prompt_step(outcomes) -> Step:
    """What each level's answer cost: carbon per answer (bars in level colours) with tokens and energy as labels."""
    import plotly.graph_objects as go

    outs = [o for o in outcomes if not o.aborted and not o.result.error]
    if not outs:
        raise ValueError("no complete answer to show")
    levels = [o.result.level for o in outs]
    grams = [o.carbon.total_g for o in outs]
    div, unit = style.grams_scale(grams)
    fig = go.Figure(go.Bar(
        x=levels, y=[None if g is None else g / div for g in grams], marker_color=style.level_colors(levels),
        text=[f"{style.fmt_count(o.result.new_tokens, 'token')}<br>{style.fmt_energy(o.reading.energy_j)}" for o in outs],
        textposition="auto", hovertext=[o.result.directive or "no directive" for o in outs]))
    fig.update_layout(title=style.chart_title("Carbon per answer", f"{unit} CO₂e · same prompt, three directives"),
                      xaxis_title="directive level", yaxis_title=f"{unit} CO₂e", height=380,
                      margin=dict(t=style.TITLE_MARGIN_PX, b=40))
    base = next((o for o in outs if o.result.level == "L0"), None)
    others = [o for o in outs if o is not base]
    method = outs[0].reading.method
    capped = cap_note(outs)
    if base is None or not others:
        sentence = (f"The answers cost {', '.join(f'{o.result.level} {style.fmt_grams(o.carbon.total_g)}' for o in outs)} "
                    f"({method} energy)." + (f" {capped}" if capped else ""))
        return Step(fig, sentence, {"levels": levels, "capped": capped}, _method_note(method))
    best = min(others, key=lambda o: (o.carbon.total_g if o.carbon.total_g is not None else float("inf")))
    e_save = saving_pct(best.reading.energy_j, base.reading.energy_j)
    g_save = saving_pct(best.carbon.total_g, base.carbon.total_g)
    sentence = (f"With no directive (L0) the model wrote **{style.fmt_count(base.result.new_tokens, 'token')}** for "
                f"{style.fmt_energy(base.reading.energy_j)}; told *“{best.result.directive}”* ({best.result.level}) it wrote "
                f"**{best.result.new_tokens:,}** — "
                + (f"**{e_save:.0f} % less energy** and {g_save:.0f} % less carbon "
                   f"({style.fmt_grams(base.carbon.total_g)} → {style.fmt_grams(best.carbon.total_g)})."
                   if e_save is not None and g_save is not None else "energy n/a on this machine.")
                + " Fewer tokens, less work, less carbon." + (f" {capped}" if capped else ""))
    return Step(fig, sentence, {"levels": levels, "energy_saving_pct": e_save, "carbon_saving_pct": g_save,
                                "best": best.result.level, "capped": capped}, _method_note(method))


def cap_note(outcomes) -> str:
    """A plain sentence when the cap on new tokens cut answers (``finish_reason == "length"``), else ``""``:
    a cut answer's length is the cap's, not the directive's, so the comparison understates the saving."""
    cut = [o for o in outcomes if o.result.finish_reason == "length"]
    if not cut:
        return ""
    names = " and ".join(o.result.level for o in cut) if len(cut) <= 2 else ", ".join(o.result.level for o in cut)
    cap = max(o.result.new_tokens for o in cut)
    verb = "was" if len(cut) == 1 else "were"
    return (f"**The cap cut {names}:** {verb} stopped at {style.fmt_count(cap, 'new token')} (*Max new tokens*) before "
            f"{'it' if len(cut) == 1 else 'they'} ended, so {'its' if len(cut) == 1 else 'their'} length is the cap's, "
            "not the directive's — raise the cap to see the whole difference.")


def _method_note(method: str) -> str:
    kind = method.split(":", 1)[0]
    energy = {"measured": f"Energy measured on this machine ({method}).",
              "estimated": f"Energy estimated on this machine ({method}). {style.method_help(method)}",
              }.get(kind, f"Energy: {method}.")
    return (energy + " Carbon = operational (energy × the grid's intensity) + embodied (the device's manufacturing "
            "carbon per second of use), so a slow answer on a busy machine also costs embodied carbon.")


# ------------------------------------------------------------------------------------------ step 2

def grids_step(energy_j: float, duration_s: float, traces: list[Trace], pue: float = 1.0,
               embodied: EmbodiedModel = DEFAULT_EMBODIED, source: str = "") -> Step:
    """The same answer (``energy_j`` J over ``duration_s`` s) on each grid: its operational carbon at the
    cleanest hour, the yearly mean and the dirtiest hour of ``traces`` (one per zone), lowest mean first.

    The grid changes only the operational part (kWh × intensity × PUE); the embodied share (the device's
    manufacturing carbon for ``duration_s``) is the same everywhere and is given in the sentence."""
    import plotly.graph_objects as go

    if not traces:
        raise ValueError("no carbon-intensity traces")
    emb = embodied.grams(duration_s)
    rows = []
    for tr in traces:
        lo, mean, hi = tr.min(), tr.mean(), tr.max()
        rows.append({"zone": tr.zone, "year": tr.year, "name": tr.zone_name, "ci_min": lo, "ci_mean": mean, "ci_max": hi,
                     "g_min": grams_per_request(kwh(energy_j), 0.0, lo, pue),
                     "g_mean": grams_per_request(kwh(energy_j), 0.0, mean, pue),
                     "g_max": grams_per_request(kwh(energy_j), 0.0, hi, pue)})
    df = pd.DataFrame(rows).sort_values("g_mean").reset_index(drop=True)
    div, unit = style.grams_scale(df["g_max"])
    fig = go.Figure()
    for _, r in df.iterrows():
        fig.add_shape(type="line", x0=r["g_min"] / div, x1=r["g_max"] / div, y0=r["zone"], y1=r["zone"],
                      line=dict(color="#cfd8dc", width=4), layer="below")
    fig.add_trace(go.Scatter(x=df["g_min"] / div, y=df["zone"], mode="markers", name="cleanest hour",
                             marker=dict(color=style.level_color("L0"), size=10, symbol="triangle-left")))
    fig.add_trace(go.Scatter(x=df["g_mean"] / div, y=df["zone"], mode="markers", name="yearly mean",
                             marker=dict(color=style.GRID_COLOR, size=12, symbol="line-ns-open", line=dict(width=3))))
    fig.add_trace(go.Scatter(x=df["g_max"] / div, y=df["zone"], mode="markers", name="dirtiest hour",
                             marker=dict(color=style.HIGHLIGHT_COLOR, size=10, symbol="triangle-right")))
    fig.update_layout(title=style.chart_title(f"The same answer on {len(df)} grids", f"operational carbon, {unit} CO₂e"),
                      xaxis=dict(title=f"{unit} CO₂e (energy × the grid's intensity)", rangemode="tozero"),
                      yaxis=dict(autorange="reversed", title=None), height=max(360, 24 * len(df) + 120),
                      legend=dict(orientation="h", y=-0.12), margin=dict(t=style.TITLE_MARGIN_PX, b=40))
    lo, hi = df.loc[df["g_min"].idxmin()], df.loc[df["g_max"].idxmax()]
    clean, dirty = df.iloc[0], df.iloc[-1]  # lowest and highest yearly mean
    ratio = dirty["g_mean"] / clean["g_mean"] if clean["g_mean"] > 0 else float("inf")
    cleanest = (f"**{style.fmt_grams(lo['g_min'])}**" if lo["g_min"] > 0 else
                f"**0 g CO₂e** (its grid reported {style.fmt_intensity(lo['ci_min'])} direct emissions that hour)")
    sentence = (f"The same answer ({style.fmt_energy(energy_j)}) emits **{style.fmt_grams(hi['g_max'])}** in {hi['zone']} "
                f"at its dirtiest hour but {cleanest} in {lo['zone']} at its cleanest; on a yearly "
                f"average {dirty['zone']}'s grid is **{ratio:,.0f}× dirtier** than {clean['zone']}'s. Where and when a "
                "model runs matters as much as how long its answers are. (The device's embodied share, "
                f"{style.fmt_grams(emb)} for this answer, is the same on every grid.)")
    note = (f"{source + ' · ' if source else ''}Operational carbon = kWh × the hour's intensity × PUE {pue:g}; embodied: "
            f"{embodied.name}. {ATTRIBUTION}.")
    return Step(fig, sentence, {"table": df, "ratio": ratio, "embodied_g": emb}, note)


# ------------------------------------------------------------------------------------------ step 3

def optimizer_step(profile: Profile, trace: Trace, xi: float = 0.1, points: int = 41) -> Step:
    """The optimizer's mix at each carbon intensity from ``trace``'s cleanest to its dirtiest hour, under
    Sprout's carbon-aware floor θ = 1 − ξ·(CI − min)/(max − min), and the carbon it saves vs always-L0."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    e, t, q = profile.under_mix(profile.default_weights())
    lo, hi = trace.min(), trace.max()
    cis = np.linspace(lo, hi, points)
    xs, saves, quality = [], [], []
    for ci in cis:
        theta = float(optimizer.theta_from_xi(ci, lo, hi, xi))
        d = decision.hour_decision(profile, float(ci), theta, confidence=simulate.DEFAULT_CONFIDENCE)
        base = float(optimizer.cost_per_request(e, t, float(ci), profile.k_emb)[0])
        xs.append(np.asarray(d.x, dtype=float))
        saves.append(saving_pct(d.carbon_g, base, missing=np.nan))
        quality.append(100.0 * d.quality)
    x = np.vstack(xs)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for i, lv in enumerate(profile.levels):
        fig.add_trace(go.Scatter(x=cis, y=100 * x[:, i], name=f"share {lv}", stackgroup="x", mode="lines",
                                 line=dict(width=0.5, color=style.level_color(lv, i)),
                                 fillcolor=style.level_color(lv, i)), secondary_y=False)
    fig.add_trace(go.Scatter(x=cis, y=saves, name="carbon saved vs always-L0", mode="lines",
                             line=dict(color="#212121", width=3, dash="dash")), secondary_y=True)
    fig.update_layout(title=style.chart_title("The optimizer's mix, cleanest to dirtiest hour",
                                              f"{trace.zone} {trace.year} · share of requests per level, carbon saved"),
                      xaxis_title="grid carbon intensity (g CO₂e/kWh)", height=400,
                      margin=dict(t=style.TITLE_MARGIN_PX, b=40),
                      legend=dict(orientation="h", y=-0.2))
    fig.update_yaxes(title_text="share of requests (%)", range=[0, 100], secondary_y=False)
    fig.update_yaxes(title_text="carbon saved (%)", range=[0, 100], secondary_y=True, showgrid=False)

    def mix(row) -> str:
        return ", ".join(f"{lv} {v:.0%}" for lv, v in zip(profile.levels, row) if v >= 0.005)

    sentence = (f"At **{lo:,.0f} g/kWh** (the cleanest hour of {trace.zone} {trace.year}) the optimizer serves "
                f"{mix(x[0])} and saves {saves[0]:.0f} %; at **{hi:,.0f} g/kWh** (the dirtiest) it serves {mix(x[-1])} "
                f"and saves **{saves[-1]:.0f} %** — giving up at most {xi:.0%} of the judged quality only where carbon "
                f"is dearest (it keeps {quality[-1]:.0f} % there, a floor it promises to keep in "
                f"{simulate.DEFAULT_CONFIDENCE:.0%} of such hours).")
    note = (f"{profile.label} · method {profile.method} · quality q from {profile.q_source} · "
            f"carbon-aware floor ξ = {xi:g} · {ATTRIBUTION}.")
    return Step(fig, sentence, {"ci": cis, "x": x, "saving_pct": np.array(saves), "quality_pct": np.array(quality)}, note)


# ------------------------------------------------------------------------------------------ step 4

def month_step(profile: Profile, trace: Trace, month: int, xi: float = 0.1, requests_per_hour: float = 1000.0,
               seed: int = 0) -> Step:
    """A month of SPROUT against always-L0 (BASE) in ``trace``'s zone: carbon per day (kg, or the unit that
    reads) of both, and the month's saving and quality kept (SPROUT's carbon includes its evaluator runs)."""
    import plotly.graph_objects as go

    year = trace.year
    start = simulate.month_start_hour(year, month)
    hours = min(calendar.monthrange(year, month)[1] * 24, len(trace) - start)
    if hours <= 0:
        raise ValueError(f"{trace.zone} {year} has no hours in month {month}")
    # the pooled floor (one floor on the hour's quality, as step 3's decision): a task-blind mix under the
    # default per-task floor must serve the most demanding task and saves little (What-if shows both)
    cfg = simulate.SimConfig(start_hour=start, hours=hours, xi=xi, seed=seed, requests_per_hour=float(requests_per_hour),
                             per_task_floor=False)
    res = simulate.simulate(profile, trace, cfg, ["BASE", "SPROUT"])
    base, sp = res.results["BASE"], res.results["SPROUT"]
    days = hours // 24
    per_day_base = (base.serving_g_h[: days * 24] * requests_per_hour).reshape(days, 24).sum(axis=1)
    per_day_sp = (sp.serving_g_h[: days * 24] * requests_per_hour).reshape(days, 24).sum(axis=1)
    div, unit = style.grams_scale(per_day_base)
    day_idx = np.arange(1, days + 1)
    fig = go.Figure([
        go.Bar(name="always L0 (no directive)", x=day_idx, y=per_day_base / div, marker_color=style.BASELINE_COLOR),
        go.Bar(name="Sprout (directives chosen hour by hour)", x=day_idx, y=per_day_sp / div,
               marker_color=style.level_color("L1")),
    ])
    fig.update_layout(barmode="group",
                      title=style.chart_title(f"Carbon per day in {trace.zone}, {calendar.month_name[month]} {year}",
                                              f"{unit} CO₂e at {requests_per_hour:,.0f} requests/hour"),
                      xaxis_title="day of the month", yaxis_title=f"{unit} CO₂e per day", height=400,
                      legend=dict(orientation="h", y=-0.2), margin=dict(t=style.TITLE_MARGIN_PX, b=40))
    total_base = base.carbon_g_per_request * res.total_requests
    total_sp = sp.carbon_g_per_request * res.total_requests
    sentence = (f"In **{trace.zone}** in {calendar.month_name[month]} {year}, at {requests_per_hour:,.0f} requests an hour, "
                f"Sprout would have emitted **{style.fmt_grams(total_sp)}** instead of {style.fmt_grams(total_base)}: "
                f"**{saving_words(sp.carbon_saving_pct)}** ({evaluator_note(sp.evaluator_runs, res.judge_included)}), "
                f"while keeping **{sp.quality_pct:.0f} %** of always-L0's judged quality. Its hour's quality floor held in "
                f"{style.fmt_pct(sp.hours_meeting_floor_pct)} of this month's {style.fmt_count(hours, 'hour')}: the promise "
                f"is a probability — each hour keeps its floor with {res.cfg.confidence:.0%} confidence — so over one "
                "month the share of hours that keep it scatters around that figure.")
    note = (f"{profile.label} · method {profile.method} · quality q from {profile.q_source} · ξ = {xi:g} · "
            "pooled floor (What-if shows each task's quality and the per-task floor) · "
            f"judge energy {'included' if res.judge_included else 'n/a (not counted)'} · {ATTRIBUTION}.")

    return Step(fig, sentence, {"saving_pct": sp.carbon_saving_pct, "quality_pct": sp.quality_pct,
                                "total_base_g": total_base, "total_sprout_g": total_sp,
                                "evaluator_runs": sp.evaluator_runs}, note)


def evaluator_note(runs: int, judge_included: bool) -> str:
    """What SPROUT's carbon counts of its offline evaluator: the runs' answers, and the judge only when its
    energy is known (never "included" next to "judge energy n/a")."""
    n = style.fmt_count(runs, "evaluator run")
    if judge_included:
        return f"its {n} counted, judge included"
    return f"the answers of its {n} counted; the judge's energy is n/a and not counted"


def saving_words(saving_pct: float) -> str:
    """``"21 % less carbon"``, or ``"9 % more carbon"`` when SPROUT emitted more than always-L0 (its evaluator's
    runs cost more than the directives saved, e.g. at few requests an hour) — never "-9 % less"."""
    if saving_pct != saving_pct:  # NaN
        return "a saving of n/a"
    return f"{abs(saving_pct):.0f} % {'less' if saving_pct >= 0 else 'more'} carbon"
