"""What the What-if page shows, in words a reader knows: readable columns, one summary row per strategy (with
how often its promise held), the paper's figures alongside, and charts whose legends fit (no streamlit).

Rows come from :func:`sprout_core.simulate.run_matrix` (one per zone × window × seed × strategy); colours
from :mod:`sprout_core.style` (one per strategy on every chart).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from sprout_core import simulate, style

#: replay column → what a reader sees (key columns first)
COLUMNS = {
    "strategy": "strategy", "zone": "zone", "window": "window",
    "carbon_saving_pct": "carbon saved vs BASE (%)", "quality_pct": "quality kept (% of always-L0)",
    "hours_meeting_floor_pct": "hours meeting the floor (%)", "quality_p5_pct": "quality, 5th-percentile hour (%)",
    "quality_min_pct": "quality, worst hour (%)", "carbon_g_per_request": "g CO₂e per request",
    "seed": "seed", "year": "year", "start_hour": "start hour", "hours": "hours", "xi": "ξ (quality tolerance)",
    "confidence": "confidence", "mode": "mode", "evaluator_runs": "evaluator runs",
    "evaluator_carbon_g": "evaluator carbon (g CO₂e)", "mean_x": "mean share per level", "method": "energy method",
}
#: the quality a reader may call "kept" (a guide line on the chart and a column of the summary)
QUALITY_LINE_PCT = 90.0


def _task_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith("quality_") and c.endswith("_pct")
            and c not in ("quality_pct", "quality_p5_pct", "quality_min_pct")]


def _task_name(col: str) -> str:
    return col[len("quality_"):-len("_pct")]


def _shares_pct(v) -> str:
    """``"L0 0.50, L1 0.30"`` (or a dict) → ``"L0 50 % · L1 30 %"``."""
    pairs = v.items() if isinstance(v, dict) else (p.rsplit(" ", 1) for p in str(v).split(", ") if " " in p)
    try:
        return " · ".join(f"{lv} {float(x) * 100:.0f} %" for lv, x in pairs)
    except ValueError:
        return str(v)


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The replay rows with readable column names, key columns first; each task's quality last. Carbon columns
    are in one unit each (e.g. "mg CO₂e per request"), the mean shares in percent ("L0 50 % · L1 30 %")."""
    keep = [c for c in COLUMNS if c in df.columns]
    tasks = _task_columns(df)
    rest = [c for c in df.columns if c not in COLUMNS and c not in tasks]
    out = df[keep + rest + tasks].copy()
    names = dict(COLUMNS)
    for col, what in (("carbon_g_per_request", "CO₂e per request"), ("evaluator_carbon_g", "evaluator carbon")):
        if col in out:
            div, unit = style.grams_scale(out[col])
            out[col] = out[col] / div
            names[col] = f"{unit} {what}" if col == "carbon_g_per_request" else f"{what} ({unit} CO₂e)"
    if "mean_x" in out:
        out["mean_x"] = out["mean_x"].map(_shares_pct)
    out = out.rename(columns=names)
    return out.rename(columns={c: f"quality, {_task_name(c)} (% of its own always-L0)" for c in tasks})


def strategy_summary(df: pd.DataFrame, tasks: bool = True) -> pd.DataFrame:
    """One row per strategy over every zone, window and seed, most saving first. Key columns first: carbon
    saved (mean %), quality kept (mean %), how often the hourly promise held (hours meeting the floor, pooled),
    the mean 5th-percentile hour, the single worst hour and the mean carbon per request (one unit for the
    column, e.g. "mg CO₂e per request, mean"); then the spread: carbon saved min and max, the worst replay's
    quality, replays keeping ≥ 90 %, the number of replays; then (``tasks``) each task's realised quality (% of
    that task's own always-L0 quality) — :func:`task_quality` gives those alone."""
    rows = []
    div, unit = style.grams_scale(df["carbon_g_per_request"]) if len(df) else (1.0, "g")
    for name, g in df.groupby("strategy", sort=False):
        row = {"strategy": name,
               "carbon saved, mean (%)": g["carbon_saving_pct"].mean(),
               "quality kept, mean (%)": g["quality_pct"].mean()}
        if "hours_meeting_floor_pct" in g:
            row["hours meeting the floor (%)"] = g["hours_meeting_floor_pct"].mean()
            row["quality, 5th-percentile hour (%)"] = g["quality_p5_pct"].mean()
            row["quality, worst hour (%)"] = g["quality_min_pct"].min()
        row[f"{unit} CO₂e per request, mean"] = g["carbon_g_per_request"].mean() / div
        row.update({
            "carbon saved, min (%)": g["carbon_saving_pct"].min(),
            "carbon saved, max (%)": g["carbon_saving_pct"].max(),
            "quality kept, worst (%)": g["quality_pct"].min(),
            f"replays keeping ≥ {QUALITY_LINE_PCT:.0f} % quality": int((g["quality_pct"] >= QUALITY_LINE_PCT).sum()),
            "replays": len(g),
        })
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        out = out.sort_values("carbon saved, mean (%)", ascending=False, ignore_index=True)
    if tasks:
        per_task = task_quality(df)
        if per_task is not None:
            out = out.merge(per_task, on="strategy", how="left", sort=False)
    return out


def promise_note(confidence: float, per_task: bool) -> str:
    """The sentence beside 'hours meeting the floor': the promise is a probability per hour, not a count."""
    unit = "task-hour (every task's own floor)" if per_task else "hour"
    return (f"'Hours meeting the floor' counts each {unit}. The promise is a probability: each hour keeps its floor "
            f"with {confidence:.0%} confidence, so the share that did scatters around {confidence:.0%} from window to "
            "window (one window's hours share one evaluator estimate and rise and fall together). With the per-task "
            "floor, a mix that is the same for every task keeps the tasks it does not bind more often.")


#: One sentence for a task quality above 100 % (shown where the per-task table is).
ABOVE_100_NOTE = ("A task above 100 % kept more than always-L0 would: its judge preferred the shorter answers of L1/L2 "
                  "to L0's on many of its prompts (multiple-choice tasks), so serving them there wins more often.")
#: The column that names the tasks below their floor.
BELOW_COL = "tasks below their floor"


def task_quality(df: pd.DataFrame) -> pd.DataFrame | None:
    """Per strategy, each task's realised quality (mean over replays, % of that task's own always-L0 quality),
    in the order of :func:`strategy_summary`, and :data:`BELOW_COL`: the tasks whose mean is below the lowest
    floor any hour had, ``100·(1 − ξ)`` % (below every hour's floor on average; "none" when there is none);
    ``None`` when the replay has no per-task figures."""
    cols = _task_columns(df)
    if not cols:
        return None
    order = df.groupby("strategy", sort=False)["carbon_saving_pct"].mean().sort_values(ascending=False).index
    out = df.groupby("strategy", sort=False)[cols].mean().reindex(order)
    lowest = 100.0 * (1.0 - float(df["xi"].max())) if "xi" in df else None
    below = [", ".join(_task_name(c) for c in cols if lowest is not None and pd.notna(row[c]) and row[c] < lowest - 1e-9)
             or "none" for _, row in out.iterrows()]
    out.columns = [f"{_task_name(c)} (% of its own L0)" for c in cols]
    out[BELOW_COL] = below
    return out.reset_index()


def column_specs(table: pd.DataFrame) -> dict[str, dict]:
    """How each column of a What-if table reads on screen: ``{column: {"label", "format", "help"}}`` for
    ``st.column_config.NumberColumn`` — a short label, the unit on every number ("85.9 %", "77.6 mg") and
    the full name as help. Columns of text are left out."""
    specs: dict[str, dict] = {}
    for c in table.columns:
        if not pd.api.types.is_numeric_dtype(table[c]):
            continue
        label, fmt = c, "%.1f"
        if "(%" in c:
            label, fmt = c.split(" (%")[0], "%.1f %%"
        elif c.endswith("(pp)"):
            label, fmt = c[:-5], "%+.1f pp"
        elif "CO₂e per request" in c:
            unit = c.split(" ", 1)[0]
            label, fmt = f"CO₂e per request{c.split('per request', 1)[1]}", f"%.2f {unit}"
        elif c.startswith("evaluator carbon ("):
            unit = c[len("evaluator carbon ("):].split(" ", 1)[0]
            label, fmt = "evaluator carbon", f"%.2f {unit}"
        elif c in ("replays", "seed", "seeds", "windows", "year", "start hour", "evaluator runs") \
                or c.startswith("replays keeping"):
            fmt = "%d"
        elif c == "hours":
            fmt = "%d h"
        elif c == "ξ (quality tolerance)":
            label, fmt = "ξ", "%.2f"
        elif c == "confidence":
            fmt = "%.2f"
        specs[c] = {"label": SHORT.get(label, label), "format": fmt, "help": c}
    return specs


#: shorter labels on screen (the full column name is the column's help)
SHORT = {"carbon saved, mean": "saved (mean)", "quality kept, mean": "quality (mean)",
         "hours meeting the floor": "hours ≥ floor", "quality, 5th-percentile hour": "5th-pct hour",
         "quality, worst hour": "worst hour", "carbon saved, min": "saved (min)", "carbon saved, max": "saved (max)",
         "quality kept, worst": "worst replay", "CO₂e per request, mean": "CO₂e / request",
         "carbon saved vs BASE": "saved vs BASE", "quality kept": "quality kept",
         f"replays keeping ≥ {QUALITY_LINE_PCT:.0f} % quality": f"replays ≥ {QUALITY_LINE_PCT:.0f} %"}


def paper_comparison(df: pd.DataFrame) -> pd.DataFrame | None:
    """This replay next to the Sprout paper's published means (15 windows, ξ = 0.1), when the replay covers
    the paper's zone-windows in 2023: per strategy the replay's mean over the paper windows (each averaged over
    its seeds), the paper's figure and the difference."""
    paper = df[(df["year"] == 2023) & df["zone"].isin(simulate.PAPER_ZONES) & df["start_hour"].isin(simulate.PAPER_STARTS)
               & (df["hours"] == 720)]
    if paper.empty or not np.allclose(paper["xi"], 0.1):
        return None
    n_windows = paper.groupby(["zone", "start_hour"]).ngroups
    rows = []
    for name, (p_sav, p_q) in simulate.PAPER_PUBLISHED.items():
        s = paper[paper["strategy"] == name]
        if s.empty:
            continue
        per_window = s.groupby(["zone", "start_hour"])[["carbon_saving_pct", "quality_pct"]].mean()
        sav, q = float(per_window["carbon_saving_pct"].mean()), float(per_window["quality_pct"].mean())
        rows.append({"strategy": name, "windows": n_windows, "seeds": int(s["seed"].nunique()) if "seed" in s else 1,
                     "saving here (%)": sav, "saving, paper (%)": p_sav, "Δ saving (pp)": sav - p_sav,
                     "quality here (%)": q, "quality, paper (%)": p_q, "Δ quality (pp)": q - p_q})
    return pd.DataFrame(rows) if rows else None


def quality_saving_figure(df: pd.DataFrame, per_row: int = 3):
    """Quality kept vs carbon saved, one panel per zone: colour = strategy, marker = window. Two legends, one
    entry per strategy (above the panels) and one per window (below them), not one per combination, each in
    its own band of the figure's margin, so they fit and never cover an axis title, at any width."""
    zones = list(dict.fromkeys(df["zone"]))
    windows = list(dict.fromkeys(df["window"]))
    strategies = list(dict.fromkeys(df["strategy"]))
    cols = min(per_row, max(1, len(zones)))
    rows = (len(zones) + cols - 1) // cols
    plot_px, top_px, bottom_px = 300, 110, 120
    height = plot_px * rows + top_px + bottom_px
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=zones, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=min(0.3, 70 / (plot_px * rows)) if rows > 1 else 0.0)
    symbol = {w: style.SYMBOLS[k % len(style.SYMBOLS)] for k, w in enumerate(windows)}
    for k, z in enumerate(zones):
        r, c = k // cols + 1, k % cols + 1
        for s in strategies:
            g = df[(df["zone"] == z) & (df["strategy"] == s)]
            if g.empty:
                continue
            fig.add_trace(go.Scatter(
                x=g["carbon_saving_pct"], y=g["quality_pct"], mode="markers", name=s, legendgroup=s, showlegend=False,
                marker=dict(color=style.strategy_color(s), size=11, symbol=[symbol[w] for w in g["window"]],
                            line=dict(width=0.5, color="#ffffff")),
                customdata=[(w, style.fmt_grams(v)) for w, v in zip(g["window"], g["carbon_g_per_request"])],
                hovertemplate=f"<b>{s}</b> · {z} · %{{customdata[0]}}<br>carbon saved %{{x:.1f}} %<br>"
                              "quality kept %{y:.1f} %<br>%{customdata[1]} per request<extra></extra>"), row=r, col=c)
        fig.add_hline(y=QUALITY_LINE_PCT, line_dash="dot", line_color=style.BASELINE_COLOR, row=r, col=c)
    for s in strategies:  # legend: strategies by colour …
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=s, legendgroup=s, legend="legend",
                                 marker=dict(color=style.strategy_color(s), size=11)))
    for w in windows:  # … windows by marker
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"window {w}", legend="legend2",
                                 marker=dict(color="#757575", size=10, symbol=symbol[w])))
    lo = min(0.0, float(df["carbon_saving_pct"].min())) - 5 if len(df) else -5
    hi = max(10.0, float(df["carbon_saving_pct"].max())) + 5 if len(df) else 100
    fig.update_xaxes(range=[lo, hi], dtick=20)   # one range for every panel (not "matches":
    # plotly.js draws no points when matched axes carry an explicit range)
    fig.update_xaxes(title_text="carbon saved vs BASE (%)", row=rows)
    fig.update_yaxes(title_text="quality kept (% of always-L0)", col=1)
    fig.update_yaxes(ticksuffix=" %")
    common = dict(orientation="h", xref="container", x=0.01, xanchor="left", yref="container",
                  font=dict(size=12), title_font=dict(size=12))
    fig.update_layout(height=height, margin=dict(t=top_px, b=bottom_px, l=60, r=20), title=None,
                      legend=dict(common, y=1.0, yanchor="top", title_text="strategy "),
                      legend2=dict(common, y=0.0, yanchor="bottom", title_text="window "))
    return fig


def confidence_figure(sweep: pd.DataFrame, label: str) -> go.Figure:
    """What a kept promise costs: SPROUT's saving and its share of hours meeting the floor per confidence."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["carbon_saving_pct"], mode="lines+markers",
                             name="saving vs BASE (%)", line=dict(color=style.strategy_color("SPROUT"))))
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["hours_meeting_floor_pct"], mode="lines+markers",
                             name="hours meeting the floor (%)", line=dict(color=style.GRID_COLOR, dash="dot"), yaxis="y2"))
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["confidence"] * 100, mode="lines", name="promised (%)",
                             line=dict(color="#9e9e9e", dash="dash", width=1), yaxis="y2"))
    fig.update_layout(title=f"SPROUT: saving against the promise's confidence — {label}", height=360,
                      xaxis_title="confidence of the promise", yaxis_title="saving vs BASE (%)",
                      yaxis2=dict(title="hours meeting the floor (%)", overlaying="y", side="right", range=[0, 105],
                                  tickmode="linear", tick0=0, dtick=20, showgrid=False),
                      legend=dict(orientation="h", yref="container", y=0.0, yanchor="bottom"),
                      margin=dict(t=50, b=90))
    return fig


def xi_figures(sweep: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    """The ξ sweep: carbon saved and quality kept against ξ, one line per strategy in its colour."""
    colours = {n: style.strategy_color(n) for n in sweep["strategy"].unique()}
    labels = {"xi": "ξ (quality tolerance at the dirtiest hour)", "strategy": "strategy",
              "carbon_saving_pct": "carbon saved vs BASE (%)", "quality_pct": "quality kept (% of always-L0)"}
    a = px.line(sweep, x="xi", y="carbon_saving_pct", color="strategy", markers=True, color_discrete_map=colours,
                labels=labels, title="Carbon saved")
    b = px.line(sweep, x="xi", y="quality_pct", color="strategy", markers=True, color_discrete_map=colours,
                labels=labels, title="Quality kept")
    for f in (a, b):
        f.update_layout(legend=dict(orientation="h", yref="container", y=0.0, yanchor="bottom", title_text="strategy "),
                        height=360, margin=dict(t=50, b=90))
    return a, b
