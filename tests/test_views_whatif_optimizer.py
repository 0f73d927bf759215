"""Helpers for the What-if and Optimizer pages: readable columns, a per-strategy summary, a legend that fits,
a floor clamped to what is reachable, an hour checked against the trace."""
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
