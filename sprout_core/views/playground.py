"""What the Playground shows: a run's state and status lines, its totals, tables and figures (no streamlit).

A run is a :class:`PlaygroundRun` (:class:`sprout_core.run.Run`): one prompt under some directive levels,
generated one level after another in one turn of the model by :func:`sprout_core.run.execute`. Its ``phase`` moves
``queued → running → done`` — or ``stopped`` (the Stop button) / ``cut`` (the page was left, reloaded
or rerun mid-answer). A run that did not finish keeps the answers it has: complete ones, the
partial one (``finish_reason='aborted'``, stored in the History with the energy measured until the
cut) and the levels never started.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from sprout_core import metered, style
from sprout_core.carbon import saving_pct
from sprout_core.metered import CarbonSettings, LiveChunk, MeteredOutcome
from sprout_core.run import CUT, DONE, QUEUED, RUNNING, STOPPED, Run  # noqa: F401 - the pages' names for a run

#: prompts at least this long (tokens) get "Reading a long prompt…" while the first token is awaited
LONG_PROMPT_TOKENS = 512

#: the run itself lives one floor down, in :mod:`sprout_core.run` (the run loop, no widgets)
PlaygroundRun = Run

# ------------------------------------------------------------------------------ status lines

def waiting_line(ahead: int, holder: str = "") -> str:
    """``"Queued: waiting for 1 run ahead of yours…"`` while other runs hold or wait for the model (runs are
    served first come, first served, a whole run at a time)."""
    who = f" — the model is busy with {holder}" if holder and holder not in ("playground", "Playground") else ""
    return f"Queued: waiting for {style.fmt_count(ahead, 'run')} ahead of yours{who}…"


def progress_line(level: str, k: int, n: int, chunk: LiveChunk | None = None, prompt_tokens: int = 0) -> str:
    """``"Generating L1 (2 of 3)… 42 tokens"``, or ``"Reading a long prompt (5,120 tokens) for L1 (2 of 3)…"``
    before the first token (``k`` is 1-based)."""
    where = f"{level} ({k} of {n})"
    if chunk is None or chunk.reading_prompt:
        tokens = prompt_tokens or (chunk.prompt_tokens if chunk else 0)
        secs = f" · {chunk.elapsed_s:.0f} s" if chunk is not None and chunk.elapsed_s >= 1 else ""
        if tokens >= LONG_PROMPT_TOKENS:
            return f"Reading a long prompt ({tokens:,} tokens) for {where}…{secs}"
        return f"Reading the prompt for {where}…{secs}"
    return f"Generating {where}… {style.fmt_count(chunk.new_tokens, 'token')}"


def done_caption(o: MeteredOutcome, word: str = "answer") -> str:
    """``"L1 answer: 24 new tokens · 3.1 s · finish: eos · 12.3 J (estimated:cpu-tdp) · 2.1 mg CO₂e"`` (``word``
    "done" while the run is still on screen, so the live column and the results never read the same)."""
    r = o.result
    return (f"{r.level} {word}: {style.fmt_count(r.new_tokens, 'new token')} · {style.fmt_seconds(r.total_s)} · finish: {r.finish_reason} · "
            f"{style.fmt_energy(o.reading.energy_j, o.reading.method)} · {style.fmt_grams(o.carbon.total_g)}")


@dataclass(frozen=True)
class RunTotals:
    """Energy (J) and carbon (g CO₂e) of a run so far; ``None`` when any part is unknown."""

    energy_j: float | None
    carbon_g: float | None
    method: str
    answers: int


def run_totals(outcomes: Sequence[MeteredOutcome], live: LiveChunk | None = None,
               settings: CarbonSettings | None = None) -> RunTotals:
    """Totals over finished answers plus the one streaming now (``live``); carbon re-priced by ``settings``."""
    energies = [o.reading.energy_j for o in outcomes]
    carbons = [(settings.price(o.reading).total_g if settings else o.carbon.total_g) for o in outcomes]
    methods = {o.reading.method for o in outcomes}
    if live is not None:
        energies.append(live.energy_j)
        carbons.append(live.carbon_g)
        methods.add(live.method)
    e = None if (not energies or None in energies) else float(sum(energies))
    g = None if (not carbons or None in carbons) else float(sum(carbons))
    return RunTotals(e, g, ", ".join(sorted(methods)) or "n/a", len(outcomes))


# ------------------------------------------------------------------------------ tables

def per_level_table(run: PlaygroundRun, settings: CarbonSettings) -> pd.DataFrame:
    """The run's key numbers per level, key columns first: level, status, tokens (and how many fewer than
    L0), time, energy and carbon in one readable unit per column, savings vs L0 (%)."""
    rows = []
    base = run.outcome("L0")
    base = base if base is not None and not base.aborted and not base.result.error else None
    accounts = {o.result.level: settings.price(o.reading) for o in run.outcomes}
    e_div, e_unit = style.energy_scale([o.reading.energy_j for o in run.outcomes])
    g_div, g_unit = style.grams_scale([a.total_g for a in accounts.values()])
    for lv in run.levels:
        o = run.outcome(lv)
        row = {"level": lv, "status": run.status_of(lv)}
        if o is None:
            rows.append(row)
            continue
        r, a = o.result, accounts[lv]
        if base is None:
            fewer = "n/a (no complete L0 answer)"
        elif o is base:
            fewer = "—"
        elif o.aborted:
            fewer = "n/a (cut short)"
        else:
            fewer = f"{100 * (1 - r.new_tokens / base.result.new_tokens):.0f} %" if base.result.new_tokens else "n/a"
        comparable = base is not None and o is not base and not o.aborted
        row.update({
            "new tokens": r.new_tokens, "fewer tokens than L0": fewer,
            f"energy ({e_unit})": None if o.reading.energy_j is None else o.reading.energy_j / e_div,
            f"carbon ({g_unit} CO₂e)": None if a.total_g is None else a.total_g / g_div,
            "carbon saving vs L0 (%)": saving_pct(a.total_g, accounts["L0"].total_g) if comparable else None,
            "time to first token (s)": r.ttft_s, "total time (s)": r.total_s, "tokens/s": r.tokens_per_s,
        })
        rows.append(row)
    df = pd.DataFrame(rows)
    for c in df.columns:  # unknown numbers are NaN (an empty cell), never the text "None"
        if c not in ("level", "status", "fewer tokens than L0"):
            df[c] = pd.to_numeric(df[c], errors="coerce")
    return df


def measurements_table(run: PlaygroundRun, settings: CarbonSettings) -> pd.DataFrame:
    """Every measurement per answer (J, W, ±, operational/embodied g, flags): :func:`sprout_core.metered.level_table`."""
    df = metered.level_table(run.outcomes, settings)
    for c in ("energy saving vs L0 (%)", "carbon saving vs L0 (%)", "J per token", "± energy (J)", "mean power (W)"):
        df[c] = pd.to_numeric(df[c], errors="coerce")  # NaN (an empty cell), never the text "None"
    return df


# ------------------------------------------------------------------------------ figures

def energy_figure(table: pd.DataFrame):
    """Energy per answer (bars in level colours, one readable unit, ± where stated)."""
    import plotly.graph_objects as go

    div, unit = style.energy_scale(table["energy (J)"])
    y = [None if pd.isna(v) else v / div for v in table["energy (J)"]]
    err = [None if pd.isna(v) else v / div for v in table["± energy (J)"]]
    methods = ", ".join(sorted(set(table["energy method"])))
    levels = list(table["level"])
    fig = go.Figure(go.Bar(
        x=levels, y=y, marker_color=style.level_colors(levels),
        error_y=dict(type="data", array=err, visible=any(e is not None for e in err)),
        hovertext=table["energy method"]))
    # the values go under the bars, not on them: an error bar (± of the estimate) would be drawn over a bar label
    fig.update_xaxes(tickmode="array", tickvals=levels,
                     ticktext=[f"{lv}<br>{style.fmt_energy(v)}" for lv, v in zip(levels, table["energy (J)"])])
    fig.update_layout(title=style.chart_title("Energy per answer", f"{unit} · {methods}"), xaxis_title="directive level",
                      yaxis_title=f"energy ({unit})", height=360, margin=dict(t=style.TITLE_MARGIN_PX, b=40))
    return fig


def carbon_figure(table: pd.DataFrame):
    """Carbon per answer: operational + embodied stacked, one readable unit (mg/g/kg CO₂e)."""
    import plotly.graph_objects as go

    div, unit = style.grams_scale(table["total (g CO₂e)"])
    methods = ", ".join(sorted(set(table["energy method"])))

    def scaled(col):
        return [None if pd.isna(v) else v / div for v in table[col]]

    fig = go.Figure([
        go.Bar(name="operational", x=table["level"], y=scaled("operational (g CO₂e)"), marker_color=style.OPERATIONAL_COLOR),
        go.Bar(name="embodied", x=table["level"], y=scaled("embodied (g CO₂e)"), marker_color=style.EMBODIED_COLOR),
    ])
    fig.update_layout(barmode="stack", title=style.chart_title("Carbon per answer", f"{unit} CO₂e · {methods} energy"),
                      xaxis_title="directive level", yaxis_title=f"{unit} CO₂e", height=360,
                      margin=dict(t=style.TITLE_MARGIN_PX, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def elsewhere_figure(where: pd.DataFrame, highlight_zone: str | None = None):
    """The same energy priced in every zone (horizontal bars, lowest first, one readable unit)."""
    import plotly.graph_objects as go

    div, unit = style.grams_scale(where["total (g CO₂e)"])
    colors = [style.HIGHLIGHT_COLOR if z == highlight_zone else style.GRID_COLOR for z in where["zone"]]
    fig = go.Figure(go.Bar(x=where["total (g CO₂e)"] / div, y=where["zone"], orientation="h", marker_color=colors,
                           hovertext=[f"{style.fmt_intensity(c)}" for c in where["carbon intensity (g/kWh)"]]))
    fig.update_layout(title=style.chart_title("Same energy, other grids", f"{unit} CO₂e · lowest first"),
                      xaxis_title=f"{unit} CO₂e", yaxis=dict(autorange="reversed"), height=max(300, 22 * len(where)),
                      margin=dict(t=style.TITLE_MARGIN_PX, b=40))
    return fig
