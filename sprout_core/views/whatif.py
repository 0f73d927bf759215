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


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The replay rows with readable column names, key columns first; each task's quality last."""
    keep = [c for c in COLUMNS if c in df.columns]
    tasks = _task_columns(df)
    rest = [c for c in df.columns if c not in COLUMNS and c not in tasks]
    out = df[keep + rest + tasks].rename(columns=COLUMNS)
    return out.rename(columns={c: f"quality, {c[len('quality_'):-len('_pct')]} (% of its own always-L0)" for c in tasks})


def strategy_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy over every zone, window and seed, most saving first: carbon saved (mean, min,
    max %), quality kept (mean and worst replay %), replays keeping ≥ 90 %, how often the hourly promise held
    (hours meeting the floor, pooled), the mean 5th-percentile hour and the single worst hour, mean g CO₂e
    per request, and each task's realised quality (% of that task's own always-L0 quality)."""
    rows = []
    tasks = _task_columns(df)
    for name, g in df.groupby("strategy", sort=False):
        row = {
            "strategy": name, "replays": len(g),
            "carbon saved, mean (%)": g["carbon_saving_pct"].mean(),
            "carbon saved, min (%)": g["carbon_saving_pct"].min(),
            "carbon saved, max (%)": g["carbon_saving_pct"].max(),
            "quality kept, mean (%)": g["quality_pct"].mean(),
            "quality kept, worst (%)": g["quality_pct"].min(),
            f"replays keeping ≥ {QUALITY_LINE_PCT:.0f} % quality": int((g["quality_pct"] >= QUALITY_LINE_PCT).sum()),
        }
        if "hours_meeting_floor_pct" in g:
            row["hours meeting the floor (%)"] = g["hours_meeting_floor_pct"].mean()
            row["quality, 5th-percentile hour (%)"] = g["quality_p5_pct"].mean()
            row["quality, worst hour (%)"] = g["quality_min_pct"].min()
        row["g CO₂e per request, mean"] = g["carbon_g_per_request"].mean()
        for c in tasks:
            row[f"{c[len('quality_'):-len('_pct')]} (% of its own L0)"] = g[c].mean()
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("carbon saved, mean (%)", ascending=False, ignore_index=True) if len(out) else out


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
    """Quality kept vs carbon saved, one panel per zone: colour = strategy, marker = window. The legend has one
    entry per strategy and one per window (not one per combination), below the chart, so it fits."""
    zones = list(dict.fromkeys(df["zone"]))
    windows = list(dict.fromkeys(df["window"]))
    strategies = list(dict.fromkeys(df["strategy"]))
    cols = min(per_row, max(1, len(zones)))
    rows = (len(zones) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=zones, shared_yaxes=True,
                        horizontal_spacing=0.04, vertical_spacing=0.12 if rows > 1 else 0.0)
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
                customdata=list(zip(g["window"], g["carbon_g_per_request"])),
                hovertemplate=f"<b>{s}</b> · {z} · %{{customdata[0]}}<br>carbon saved %{{x:.1f}} %<br>"
                              "quality kept %{y:.1f} %<br>%{customdata[1]:.4g} g CO₂e/request<extra></extra>"), row=r, col=c)
        fig.add_hline(y=QUALITY_LINE_PCT, line_dash="dot", line_color="#9e9e9e", row=r, col=c)
    for s in strategies:  # legend: strategies by colour …
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=s, legendgroup=s,
                                 marker=dict(color=style.strategy_color(s), size=11)))
    for w in windows:  # … windows by marker
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=f"window {w}",
                                 marker=dict(color="#757575", size=10, symbol=symbol[w])))
    fig.update_xaxes(title_text="carbon saved vs BASE (%)", row=rows)
    fig.update_yaxes(title_text="quality kept (% of always-L0)", col=1)
    fig.update_layout(height=300 * rows + 140, margin=dict(t=40, b=20),
                      legend=dict(orientation="h", yanchor="top", y=-0.12 if rows == 1 else -0.06, x=0),
                      title=None)
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
                      yaxis2=dict(title="hours meeting the floor (%)", overlaying="y", side="right", range=[0, 105]),
                      legend=dict(orientation="h", y=-0.25), margin=dict(t=50, b=30))
    return fig


def xi_figures(sweep: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    a = px.line(sweep, x="xi", y="carbon_saving_pct", color="strategy", markers=True, color_discrete_map={n: style.strategy_color(n) for n in sweep['strategy'].unique()},
                labels={"xi": "ξ", "carbon_saving_pct": "saving vs BASE (%)"})
    b = px.line(sweep, x="xi", y="quality_pct", color="strategy", markers=True, color_discrete_map={n: style.strategy_color(n) for n in sweep['strategy'].unique()},
                labels={"xi": "ξ", "quality_pct": "quality (% of always-L0)"})
    for f in (a, b):
        f.update_layout(legend=dict(orientation="h", y=-0.25), height=340)
    return a, b
