"""The What-if page's view: tables and figures from a replay matrix (no streamlit here)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from sprout_core import simulate

#: readable names of the replay table's columns, in the order the page shows them
COLUMNS = {
    "zone": "zone", "window": "window", "seed": "seed", "strategy": "strategy",
    "carbon_saving_pct": "saving vs BASE (%)", "quality_pct": "quality (% of always-L0)",
    "hours_meeting_floor_pct": "hours meeting the floor (%)", "quality_p5_pct": "quality, 5th percentile (%)",
    "quality_min_pct": "quality, worst hour (%)", "carbon_g_per_request": "g CO₂e per request",
    "evaluator_runs": "evaluator runs", "evaluator_carbon_g": "evaluator g CO₂e", "mean_x": "mean share per level",
    "start_hour": "start hour", "hours": "hours", "xi": "ξ", "confidence": "confidence", "mode": "mode",
    "method": "energy method",
}

#: strategy colours (one per strategy on every chart)
STRATEGY_COLORS = {"BASE": "#616161", "CO2-OPT": "#1565c0", "STATIC": "#9ccc65", "SPROUT": "#1b5e20",
                   "ORACLE": "#26c6da", "MODEL-OPT": "#fbc02d", "SPROUT-TASK": "#6a1b9a"}


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The replay table with readable column names, key columns first (per-task quality columns last)."""
    keep = [c for c in COLUMNS if c in df.columns]
    rest = [c for c in df.columns if c not in COLUMNS and c != "year"]
    out = df[keep + rest].rename(columns=COLUMNS)
    return out.rename(columns={c: f"quality {c[len('quality_'):-len('_pct')]} (%)" for c in rest
                               if c.startswith("quality_") and c.endswith("_pct")})


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per strategy over every zone-window(-seed): mean saving and quality, the share of hours that met
    their floor (pooled), the mean 5th-percentile hour and the single worst hour."""
    g = df.groupby("strategy", sort=False)
    out = pd.DataFrame({
        "replays": g.size(),
        "saving vs BASE (%)": g["carbon_saving_pct"].mean(),
        "quality (% of always-L0)": g["quality_pct"].mean(),
        "hours meeting the floor (%)": g["hours_meeting_floor_pct"].mean(),
        "quality, 5th percentile (%)": g["quality_p5_pct"].mean(),
        "quality, worst hour (%)": g["quality_min_pct"].min(),
    })
    # each task's realised quality (% of that task's own always-L0 quality) next to the pooled figure
    for c in [c for c in df.columns if c.startswith("quality_") and c.endswith("_pct")
              and c not in ("quality_p5_pct", "quality_min_pct")]:
        out[f"{c[len('quality_'):-len('_pct')]} (% of its own L0)"] = g[c].mean()
    return out.reset_index()


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


def scatter_figure(df: pd.DataFrame) -> go.Figure:
    """Quality against saving, one panel per zone, one colour per strategy and one symbol per window."""
    d = df.copy()
    fig = px.scatter(d, x="carbon_saving_pct", y="quality_pct", color="strategy", symbol="window", facet_col="zone",
                     facet_col_wrap=3, color_discrete_map=STRATEGY_COLORS,
                     hover_data=["window", "carbon_g_per_request", "hours_meeting_floor_pct", "evaluator_runs"],
                     labels={"carbon_saving_pct": "saving vs BASE (%)", "quality_pct": "quality (% of always-L0)",
                             "hours_meeting_floor_pct": "hours meeting the floor (%)"},
                     title="Quality vs carbon saving (one panel per zone)")
    fig.add_hline(y=90, line_dash="dot", line_color="#999")
    fig.update_traces(marker=dict(size=11))
    fig.update_layout(height=320 * ((d["zone"].nunique() + 2) // 3) + 120,
                      legend=dict(orientation="h", y=-0.15, font=dict(size=11)))
    return fig


def confidence_figure(sweep: pd.DataFrame, label: str) -> go.Figure:
    """What a kept promise costs: SPROUT's saving and its share of hours meeting the floor per confidence."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["carbon_saving_pct"], mode="lines+markers",
                             name="saving vs BASE (%)", line=dict(color="#1b5e20")))
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["hours_meeting_floor_pct"], mode="lines+markers",
                             name="hours meeting the floor (%)", line=dict(color="#1565c0", dash="dot"), yaxis="y2"))
    fig.add_trace(go.Scatter(x=sweep["confidence"], y=sweep["confidence"] * 100, mode="lines", name="promised (%)",
                             line=dict(color="#9e9e9e", dash="dash", width=1), yaxis="y2"))
    fig.update_layout(title=f"SPROUT: saving against the promise's confidence — {label}", height=360,
                      xaxis_title="confidence of the promise", yaxis_title="saving vs BASE (%)",
                      yaxis2=dict(title="hours meeting the floor (%)", overlaying="y", side="right", range=[0, 105]),
                      legend=dict(orientation="h", y=-0.25), margin=dict(t=50, b=30))
    return fig


def xi_figures(sweep: pd.DataFrame) -> tuple[go.Figure, go.Figure]:
    a = px.line(sweep, x="xi", y="carbon_saving_pct", color="strategy", markers=True, color_discrete_map=STRATEGY_COLORS,
                labels={"xi": "ξ", "carbon_saving_pct": "saving vs BASE (%)"})
    b = px.line(sweep, x="xi", y="quality_pct", color="strategy", markers=True, color_discrete_map=STRATEGY_COLORS,
                labels={"xi": "ξ", "quality_pct": "quality (% of always-L0)"})
    for f in (a, b):
        f.update_layout(legend=dict(orientation="h", y=-0.25), height=340)
    return a, b
