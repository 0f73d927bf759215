"""What the History page shows: stored answers as a readable table (key columns first) and a chart.

No streamlit here. Rows come from :func:`sprout_core.store.query_requests` (one per answer).
"""
from __future__ import annotations

import pandas as pd

from sprout_core import style

#: short texts in the table (the CSV keeps everything)
PROMPT_CHARS = 80
ANSWER_CHARS = 120


def status_of(finish_reason: str | None, error: str | None = None) -> str:
    """``complete`` / ``aborted`` (cut short; partial answer) / ``error``."""
    if error or finish_reason == "error":
        return "error"
    if finish_reason == "aborted":
        return "aborted"
    return "complete"


def with_status(df: pd.DataFrame, statuses) -> pd.DataFrame:
    """The rows whose :func:`status_of` is one of ``statuses``."""
    keep = [status_of(f, e) in set(statuses) for f, e in zip(df["finish_reason"], df["error"])]
    return df[keep]


def _short(text, n: int) -> str:
    t = "" if text is None or (isinstance(text, float) and pd.isna(text)) else " ".join(str(text).split())
    return t if len(t) <= n else t[: n - 1] + "…"


def display_table(df: pd.DataFrame) -> pd.DataFrame:
    """The requests as the page shows them: time (UTC, a datetime), status, level, task (only when some row
    has one), short prompt and answer, tokens, energy and carbon in one readable unit per column, method,
    zone and intensity, then model, device, seconds and run id."""
    e_div, e_unit = style.energy_scale(df["energy_j"])
    g_div, g_unit = style.grams_scale(df["carbon_total_g"])
    out = pd.DataFrame({
        "time (UTC)": pd.to_datetime(df["ts_utc"], utc=True, errors="coerce", format="ISO8601"),
        "status": [status_of(f, e) for f, e in zip(df["finish_reason"], df["error"])],
        "level": df["level"],
    })
    if df["task"].notna().any():
        out["task"] = df["task"]
    if "pinned" in df and pd.to_numeric(df["pinned"], errors="coerce").notna().any():  # gateway rows: level pinned?
        out["pinned"] = [None if pd.isna(v) else bool(v) for v in df["pinned"]]
    out["prompt"] = [_short(p, PROMPT_CHARS) for p in df["prompt"]]
    out["answer"] = [_short(a, ANSWER_CHARS) for a in df["answer"]]
    out["new tokens"] = df["new_tokens"]
    out[f"energy ({e_unit})"] = pd.to_numeric(df["energy_j"], errors="coerce") / e_div
    out[f"carbon ({g_unit} CO₂e)"] = pd.to_numeric(df["carbon_total_g"], errors="coerce") / g_div
    out["energy method"] = df["energy_method"]
    out["zone"] = df["zone"]
    out["CI (g/kWh)"] = df["ci_g_per_kwh"]
    out["origin"] = df["origin"]
    out["model"] = df["model"]
    out["time (s)"] = df["total_s"]
    out["run"] = df["run_id"]
    return out


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every stored column for the "all columns" CSV, plus ``status`` (:func:`status_of`, as the table shows
    it) right after the time stamp, so a spreadsheet can filter complete / aborted / error rows."""
    out = df.copy()
    status = [status_of(f, e) for f, e in zip(out["finish_reason"], out["error"])]
    out.insert(list(out.columns).index("ts_utc") + 1 if "ts_utc" in out.columns else 0, "status", status)
    return out


def energy_by_level_figure(df: pd.DataFrame):
    """Mean energy per complete request by level and energy method (bars in level colours, one readable
    unit; aborted answers are partial and left out); ``None`` when no complete row has a known energy."""
    import plotly.graph_objects as go

    complete = pd.Series([status_of(f, e) == "complete" for f, e in zip(df["finish_reason"], df["error"])],
                         index=df.index, dtype=bool)
    known = df[complete & df["energy_j"].notna() & df["new_tokens"].gt(0)]
    if known.empty:
        return None
    per = (known.assign(j_per_token=known["energy_j"] / known["new_tokens"])
           .groupby(["level", "energy_method"], as_index=False)
           .agg(mean_energy_j=("energy_j", "mean"), mean_j_per_token=("j_per_token", "mean"), requests=("id", "count")))
    div, unit = style.energy_scale(per["mean_energy_j"])
    levels = sorted(per["level"].unique(), key=lambda s: (len(str(s)), str(s)))
    methods = sorted(per["energy_method"].unique())
    fig = go.Figure()
    for lv in levels:
        sub = per[per["level"] == lv]
        fig.add_trace(go.Bar(name=str(lv), x=sub["energy_method"], y=sub["mean_energy_j"] / div,
                             marker_color=style.level_color(str(lv), levels.index(lv)),
                             customdata=list(zip(sub["requests"], sub["mean_j_per_token"])),
                             hovertemplate=f"{lv}: %{{y:.3g}} {unit}<br>%{{customdata[0]}} requests, "
                                           "%{customdata[1]:.3g} J/token<extra></extra>"))
    fig.update_layout(barmode="group", title=style.chart_title("Mean energy per complete answer",
                                                               f"by level and energy method · {unit} · matching rows"),
                      xaxis_title="energy method", yaxis_title=f"mean energy per request ({unit})", height=380,
                      legend_title_text="level", margin=dict(t=style.TITLE_MARGIN_PX, b=40),
                      xaxis=dict(categoryorder="array", categoryarray=methods))
    return fig
