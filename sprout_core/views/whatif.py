"""What the What-if page shows, in words a reader knows: readable columns, one summary row per strategy,
and the quality-vs-saving chart with a legend that fits (no streamlit).

Rows come from :func:`sprout_core.simulate.run_matrix` (one per zone × window × strategy).
"""
from __future__ import annotations

import pandas as pd

from sprout_core import style

#: replay column → what a reader sees
READABLE_COLUMNS = {
    "zone": "zone", "year": "year", "window": "window", "strategy": "strategy", "start_hour": "start hour",
    "hours": "hours", "xi": "ξ (quality tolerance)", "carbon_g_per_request": "g CO₂e per request",
    "carbon_saving_pct": "carbon saved vs BASE (%)", "quality_pct": "quality kept (% of always-L0)",
    "mean_x": "mean share per level", "evaluator_runs": "evaluator runs",
    "evaluator_carbon_g": "evaluator carbon (g CO₂e)", "method": "energy method",
}
#: the quality a reader may call "kept" (a guide line on the chart and a column of the summary)
QUALITY_LINE_PCT = 90.0


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """The replay rows with readable column names, key columns first (strategy, zone, window, saving, quality)."""
    first = [c for c in ("strategy", "zone", "window", "carbon_saving_pct", "quality_pct", "carbon_g_per_request")
             if c in df.columns]
    rest = [c for c in df.columns if c not in first]
    return df[first + rest].rename(columns=READABLE_COLUMNS)


def strategy_summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy over every zone and window: how many replays, carbon saved (mean, min, max %),
    quality kept (mean and worst %), replays keeping ≥ 90 % quality, mean g CO₂e per request; most saving first."""
    rows = []
    for name, g in df.groupby("strategy", sort=False):
        rows.append({
            "strategy": name, "replays": len(g),
            "carbon saved, mean (%)": g["carbon_saving_pct"].mean(),
            "carbon saved, min (%)": g["carbon_saving_pct"].min(),
            "carbon saved, max (%)": g["carbon_saving_pct"].max(),
            "quality kept, mean (%)": g["quality_pct"].mean(),
            "quality kept, worst (%)": g["quality_pct"].min(),
            f"replays keeping ≥ {QUALITY_LINE_PCT:.0f} % quality": int((g["quality_pct"] >= QUALITY_LINE_PCT).sum()),
            "g CO₂e per request, mean": g["carbon_g_per_request"].mean(),
        })
    out = pd.DataFrame(rows)
    return out.sort_values("carbon saved, mean (%)", ascending=False, ignore_index=True) if len(out) else out


def quality_saving_figure(df: pd.DataFrame, per_row: int = 3):
    """Quality kept vs carbon saved, one panel per zone: colour = strategy, marker = window. The legend has one
    entry per strategy and one per window (not one per combination), below the chart, so it fits."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

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
