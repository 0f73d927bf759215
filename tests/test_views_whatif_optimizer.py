"""Helpers for the What-if and Optimizer pages: readable columns, a per-strategy summary, a legend that fits,
a floor clamped to what is reachable, an hour checked against the trace."""
import re

import pandas as pd
import pytest

from sprout_core import style
from sprout_core.views import optimizer as O
from sprout_core.views import whatif as W


def replay_rows():
    rows = []
    for z in ("NL", "GB", "DE", "FR"):
        for w in ("Feb", "Jun", "Oct"):
            for s, sav, q in (("BASE", 0.0, 100.0), ("SPROUT", 40.0, 92.0), ("ORACLE", 55.0, 104.0), ("CO2-OPT", 70.0, 60.0)):
                rows.append({"zone": z, "year": 2024, "window": w, "start_hour": 0, "hours": 720, "xi": 0.1,
                             "strategy": s, "carbon_g_per_request": 1.0 - sav / 100, "carbon_saving_pct": sav,
                             "quality_pct": q, "mean_x": "L0 0.5", "evaluator_runs": 3, "evaluator_carbon_g": 1.0,
                             "method": "reference:sprout-paper"})
    return pd.DataFrame(rows)


def test_readable_columns_key_first():
    t = W.readable(replay_rows())
    assert list(t.columns[:5]) == ["strategy", "zone", "window", "carbon saved vs BASE (%)",
                                   "quality kept (% of always-L0)"]
    assert "xi" not in t.columns and "mean_x" not in t.columns and "ξ (quality tolerance)" in t.columns


def test_summary_has_one_row_per_strategy():
    s = W.strategy_summary(replay_rows())
    assert list(s["strategy"]) == ["CO2-OPT", "ORACLE", "SPROUT", "BASE"]  # most saving first
    row = s.set_index("strategy").loc["SPROUT"]
    assert row["replays"] == 12 and row["carbon saved, mean (%)"] == 40 and row["quality kept, worst (%)"] == 92
    assert s.set_index("strategy").loc["CO2-OPT", "replays keeping ≥ 90 % quality"] == 0


def test_legend_lists_strategies_and_windows_not_combinations():
    fig = W.quality_saving_figure(replay_rows())
    legend = [t.name for t in fig.data if t.showlegend is not False]
    assert legend == ["BASE", "SPROUT", "ORACLE", "CO2-OPT", "window Feb", "window Jun", "window Oct"]
    colours = {t.name: t.marker.color for t in fig.data if t.name == "SPROUT"}
    assert colours["SPROUT"] == style.strategy_color("SPROUT")
    assert fig.layout.legend.orientation == "h"


def test_floor_is_clamped_to_what_a_mix_can_keep():
    ok = O.clamp_theta(0.95, 1.0)
    assert ok.theta == 0.95 and not ok.clamped and ok.message == ""
    f = O.clamp_theta(1.2, 1.04567, "L0")
    assert f.clamped and f.theta == pytest.approx(1.045) and f.asked == 1.2
    assert "1.20" in f.message and "1.046" in f.message and "always L0" in f.message


def test_hour_outside_the_trace_is_a_message():
    assert O.check_hour(800, 8784) == (800, "")
    h, msg = O.check_hour(9000, 8784, 2024)
    assert h is None and "outside the trace of 2024" in msg and "8783" in msg
    assert O.check_hour(None, 10)[0] is None and O.check_hour(2.5, 10)[0] is None


def test_summary_puts_key_columns_first_and_carbon_in_one_unit():
    df = replay_rows()
    df["carbon_g_per_request"] *= 0.1
    s = W.strategy_summary(df, tasks=False)
    assert list(s.columns[:3]) == ["strategy", "carbon saved, mean (%)", "quality kept, mean (%)"]
    # 0.03 … 0.1 g per request: the column reads in mg, the values scaled to it
    unit_col = [c for c in s.columns if "CO₂e per request" in c]
    assert unit_col == ["mg CO₂e per request, mean"]
    assert s.set_index("strategy").loc["BASE", "mg CO₂e per request, mean"] == pytest.approx(100.0)


def test_task_quality_is_its_own_table_in_summary_order():
    df = replay_rows()
    df["quality_math_pct"] = df["quality_pct"] - 10
    df["quality_alpaca_pct"] = df["quality_pct"] - 20
    t = W.task_quality(df)
    assert list(t.columns) == ["strategy", "math (% of its own L0)", "alpaca (% of its own L0)", W.BELOW_COL]
    assert list(t["strategy"]) == list(W.strategy_summary(df)["strategy"])
    assert t.set_index("strategy").loc["SPROUT", "alpaca (% of its own L0)"] == pytest.approx(72.0)
    # below the lowest floor of any hour (100 % − ξ): named; a strategy with every task above it: "none"
    marks = t.set_index("strategy")[W.BELOW_COL]
    if "xi" in df:
        lowest = 100 * (1 - df["xi"].max())
        for name, row in t.set_index("strategy").iterrows():
            low = [k for k in ("math", "alpaca") if row[f"{k} (% of its own L0)"] < lowest]
            assert marks[name] == (", ".join(low) or "none")
    assert W.task_quality(replay_rows()) is None


def test_every_number_gets_a_unit_and_no_e_notation():
    df = replay_rows()
    df["carbon_g_per_request"] *= 0.1
    df["evaluator_carbon_g"] = 1234.5
    every = W.readable(df)
    assert "mg CO₂e per request" in every.columns and "evaluator carbon (kg CO₂e)" in every.columns
    assert every["mean share per level"].iloc[0] == "L0 50 %"
    for table in (every, W.strategy_summary(df)):
        specs = W.column_specs(table)
        assert "strategy" not in specs and "zone" not in specs       # text columns stay text
        for col, spec in specs.items():
            assert re.fullmatch(r"%[+]?(\.\d)?[fd]( .+)?", spec["format"]), spec   # fixed point, never %e or %g
            assert spec["help"] == col
        pct = [c for c in specs if "(%" in c]
        assert pct and all(specs[c]["format"] == "%.1f %%" for c in pct)
    assert W.column_specs(every)["mg CO₂e per request"]["format"] == "%.2f mg"
    assert W.column_specs(every)["evaluator carbon (kg CO₂e)"]["format"] == "%.2f kg"
    assert W.column_specs(every)["hours"]["format"] == "%d h"
    df["hours_meeting_floor_pct"], df["quality_p5_pct"], df["quality_min_pct"] = 90.0, 80.0, 70.0
    short = W.column_specs(W.strategy_summary(df))
    assert short["hours meeting the floor (%)"]["label"] == "hours ≥ floor"
    assert short["carbon saved, mean (%)"]["label"] == "saved (mean)"


def test_scatter_legends_sit_in_their_own_margins_and_panels_share_one_range():
    fig = W.quality_saving_figure(replay_rows())
    assert fig.layout.legend.yref == "container" and fig.layout.legend2.yref == "container"
    assert fig.layout.legend.y == 1.0 and fig.layout.legend2.y == 0.0
    assert {t.legend for t in fig.data if t.name.startswith("window ")} == {"legend2"}
    assert fig.layout.margin.t >= 100 and fig.layout.margin.b >= 100
    axes = [fig.layout[k] for k in fig.layout if k.startswith("xaxis")]
    assert len(axes) == 6 and all(tuple(a.range) == tuple(axes[0].range) for a in axes)
    # plotly.js draws no points on matched axes that carry an explicit range: the panels are not "matched"
    assert all(a.matches is None for a in axes)


def test_decision_notes_and_units():
    from sprout_core import grid, optimizer, profiles

    prof = profiles.load_reference()
    tr = grid.load_trace("US-TEX-ERCO", 2023)
    w = prof.weights_from({t: 1.0 for t in prof.tasks})
    theta = optimizer.theta_from_xi(317.0, tr.min(), tr.max(), 0.1)
    hv = O.hour_view(prof, 317.0, theta, w, 0.9, 5000.0)
    assert hv.promise_note == f"≥ {hv.decision.quality_low:.1%} at 90% confidence"
    assert "mg CO₂e on average" in hv.summary
    assert O.floor_note(hv, 0.1, 317.0) == "ξ = 0.10 at 317 g/kWh" and O.floor_note(hv, None, 317.0) == "fixed"
    clamped = O.hour_view(prof, 317.0, 1.2, w, 0.9, 5000.0)
    assert clamped.clamped and O.floor_note(clamped, None, 317.0) == "asked 1.200: not reachable"
    assert O.hour_view(prof, 317.0, 0.9, w, 0.5, 5000.0).promise_note.endswith("(plug-in, no margin)")
    assert O.pct_less(-0.01) == "0.0 % less" and O.pct_less(float("nan")) == "n/a" and O.pct_less(3.14, "pp", "+") == "+3.1 pp"
    fr = O.frontier_figure(prof, w, 317.0, hv)
    assert fr.layout.yaxis.title.text == "mg CO₂e per request"
    assert fr.data[-1].y[0] == pytest.approx(hv.decision.carbon_g * 1000)
    wv = O.window_view(prof, tr, 800, 24, 0.1, 0, 0.9)
    assert "mg CO₂e per request" in wv.caption and "(promise: 90 % at ξ = 0.10)" in wv.caption
    assert [t.fillcolor for t in wv.figure.data if (t.name or "").startswith("share ")] == \
        [style.level_color(lv) for lv in prof.levels]


def test_promise_note_says_the_promise_is_a_probability():
    s = W.promise_note(0.9, True)
    assert "probability" in s and "90%" in s and "task-hour" in s
    assert "task-hour" not in W.promise_note(0.8, False) and "80%" in W.promise_note(0.8, False)
