"""The Playground's view: run states, status lines, live totals and the per-level table (no streamlit)."""
import pandas as pd
import pytest

from sprout_core.carbon import override_intensity
from sprout_core.energy import EnergyReading
from sprout_core.generation import GenerationResult
from sprout_core.metered import CarbonSettings, LiveChunk, MeteredOutcome
from sprout_core.views import playground as V

SETTINGS = CarbonSettings(override_intensity(400.0))


def outcome(level, tokens, energy_j, finish="eos"):
    r = GenerationResult(level=level, directive="" if level == "L0" else "be brief", prompt="p", text="x " * tokens,
                         new_tokens=tokens, total_s=tokens / 10, finish_reason=finish)
    rd = EnergyReading(energy_j, "estimated:cpu-tdp", "test", tokens / 10)
    return MeteredOutcome(r, rd, SETTINGS.price(rd))


def test_a_cut_run_says_what_it_kept():
    run = V.PlaygroundRun("r", "why?", ["L0", "L1", "L2"])
    run.outcomes = [outcome("L0", 40, 10.0), outcome("L1", 5, 1.0, finish="aborted")]
    run.end(V.CUT)
    assert run.cancelled and run.finished
    assert [run.status_of(lv) for lv in run.levels] == ["complete", "aborted", "not run"]
    s = run.summary()
    assert "cancelled" in s and "complete: L0" in s and "cut short: L1" in s and "not run: L2" in s
    run2 = V.PlaygroundRun("r2", "why?", ["L0"])
    run2.end(V.STOPPED)
    assert "you pressed Stop" in run2.summary() and "not run: L0" in run2.summary()


def test_status_lines():
    assert V.waiting_line(3) == "Queued: waiting for 3 runs ahead of yours…"
    assert "evaluation" in V.waiting_line(1, "an evaluation run")
    assert "Reading a long prompt (5,120 tokens) for L1 (2 of 3)" in V.progress_line("L1", 2, 3, None, 5120)
    assert "Reading the prompt for L0 (1 of 3)" in V.progress_line("L0", 1, 3, None, 40)
    live = LiveChunk("Hi", 42, 2.0, 5.0, 10.0, "estimated:cpu-tdp", 0.001)
    assert V.progress_line("L1", 2, 3, live) == "Generating L1 (2 of 3)… 42 tokens"


def test_totals_add_the_answer_in_progress_and_stay_unknown_when_any_part_is():
    outs = [outcome("L0", 40, 10.0)]
    live = LiveChunk("", 3, 1.0, 4.0, 2.0, "estimated:cpu-tdp", 0.0005)
    t = V.run_totals(outs, live)
    assert t.energy_j == pytest.approx(12.0) and t.carbon_g == pytest.approx(outs[0].carbon.total_g + 0.0005)
    assert t.answers == 1
    unknown = V.run_totals([outcome("L0", 4, None)])
    assert unknown.energy_j is None and unknown.carbon_g is None  # never 0 for unknown


def test_per_level_table_key_columns_and_no_saving_for_a_cut_answer():
    run = V.PlaygroundRun("r", "why?", ["L0", "L1", "L2"])
    run.outcomes = [outcome("L0", 40, 10.0), outcome("L1", 10, 2.0), outcome("L2", 5, 1.0, finish="aborted")]
    run.end(V.CUT)
    t = V.per_level_table(run, SETTINGS)
    assert list(t.columns[:4]) == ["level", "status", "new tokens", "fewer tokens than L0"]
    assert "energy (J)" in t.columns and "carbon (mg CO₂e)" in t.columns
    row = t.set_index("level")
    assert row.loc["L1", "fewer tokens than L0"] == "75 %" and row.loc["L1", "carbon saving vs L0 (%)"] > 0
    assert row.loc["L2", "fewer tokens than L0"] == "n/a (cut short)"
    assert pd.isna(row.loc["L2", "carbon saving vs L0 (%)"])


def test_figures_use_level_colours_and_readable_units():
    run = V.PlaygroundRun("r", "why?", ["L0", "L1"])
    run.outcomes = [outcome("L0", 40, 10.0), outcome("L1", 10, 2.0)]
    table = V.measurements_table(run, SETTINGS)
    fe = V.energy_figure(table)
    assert list(fe.data[0].marker.color) == [V.style.level_color("L0"), V.style.level_color("L1")]
    assert fe.layout.yaxis.title.text == "energy (J)"
    fc = V.carbon_figure(table)
    assert fc.layout.yaxis.title.text == "mg CO₂e"  # not "g" with a "600µ" axis
    assert max(fc.data[0].y) == pytest.approx(table["operational (g CO₂e)"].max() * 1000)


def test_token_counts_have_the_right_plural():
    from sprout_core import ui

    assert ui.live_energy_caption(1, None, None, None, "n/a").startswith("1 token · ")
    assert ui.live_energy_caption(2, None, None, None, "n/a").startswith("2 tokens · ")
