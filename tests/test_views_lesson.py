"""The lesson's steps as data: each a figure and one sentence with the numbers behind it."""
import numpy as np
import pytest

from sprout_core import style
from sprout_core.carbon import override_intensity
from sprout_core.energy import EnergyReading
from sprout_core.generation import GenerationResult
from sprout_core.grid import Trace
from sprout_core.metered import CarbonSettings, MeteredOutcome
from sprout_core.views import lesson as L

SETTINGS = CarbonSettings(override_intensity(400.0))


def outcome(level, tokens, energy_j, directive=""):
    r = GenerationResult(level=level, directive=directive, prompt="p", text="x", new_tokens=tokens, total_s=1.0)
    rd = EnergyReading(energy_j, "estimated:cpu-tdp", "test", 1.0)
    return MeteredOutcome(r, rd, SETTINGS.price(rd))


def trace(zone, lo, hi, hours=24 * 365):
    ci = np.linspace(lo, hi, hours)
    ts = np.arange("2024-01-01T00", hours, dtype="datetime64[h]").astype("datetime64[s]")
    return Trace(zone, 2024, "direct", ts, ci, zone, None)


def test_prompt_step_names_the_saving():
    s = L.prompt_step([outcome("L0", 40, 10.0), outcome("L1", 20, 5.0, "be brief"), outcome("L2", 5, 1.0, "one line")])
    assert s.numbers["best"] == "L2" and s.numbers["energy_saving_pct"] == pytest.approx(90.0)
    assert "**40 tokens**" in s.sentence and "90 % less energy" in s.sentence
    assert list(s.figure.data[0].marker.color) == style.level_colors(["L0", "L1", "L2"])
    with pytest.raises(ValueError):
        L.prompt_step([])


def test_grids_step_compares_operational_carbon_across_grids():
    s = L.grids_step(3.6e6 / 1000, 2.0, [trace("CLEAN", 10, 30), trace("DIRTY", 500, 900)])  # 1 Wh
    t = s.numbers["table"]
    assert list(t["zone"]) == ["CLEAN", "DIRTY"]
    assert t["g_max"].iloc[1] == pytest.approx(0.9) and t["g_min"].iloc[0] == pytest.approx(0.01)
    assert s.numbers["ratio"] == pytest.approx(700 / 20)
    assert "35× dirtier" in s.sentence and "DIRTY at its dirtiest hour" in s.sentence


def test_optimizer_and_month_steps_on_the_reference_profile():   # the reference numbers ship with the app
    from sprout_core import profiles

    prof = profiles.load_reference()
    tr = trace("X", 50, 600)
    s3 = L.optimizer_step(prof, tr, xi=0.1, points=11)
    x = s3.numbers["x"]
    assert x.shape == (11, len(prof.levels)) and np.allclose(x.sum(axis=1), 1.0)
    assert s3.numbers["saving_pct"][-1] >= s3.numbers["saving_pct"][0]  # dirtier grid, more saved
    assert s3.numbers["quality_pct"][0] == pytest.approx(100.0, abs=0.5)  # cleanest hour: no quality given up
    # the page's default volume: at 100 requests an hour the evaluator's runs and each request's own level draw
    # cost more than the month saves (per-request assignment, issue 18)
    s4 = L.month_step(prof, tr, 6, requests_per_hour=1000)
    assert 0 < s4.numbers["saving_pct"] < 100 and 85 <= s4.numbers["quality_pct"] <= 101
    assert s4.numbers["total_sprout_g"] < s4.numbers["total_base_g"]
    assert len(s4.figure.data[0].x) == 30  # one bar per day of June


def capped(level, tokens, energy_j, directive=""):
    o = outcome(level, tokens, energy_j, directive)
    o.result.finish_reason = "length"
    return o


def test_prompt_step_says_plainly_when_the_cap_cut_answers():
    s = L.prompt_step([capped("L0", 64, 10.0), capped("L1", 64, 9.0, "be brief"), outcome("L2", 20, 3.0, "one line")])
    assert s.numbers["capped"] and "The cap cut L0 and L1" in s.sentence and "64 new tokens" in s.sentence
    ok = L.prompt_step([outcome("L0", 40, 10.0), outcome("L1", 1, 5.0, "be brief")])
    assert not ok.numbers["capped"] and "cap" not in ok.sentence
    assert "1 token<br>" in ok.figure.data[0].text[1] and "40 tokens<br>" in ok.figure.data[0].text[0]
    assert L.DEFAULT_MAX_NEW >= 256  # room for L0's whole answer


def test_grids_step_explains_a_zero_carbon_cleanest_hour():
    s = L.grids_step(3600.0, 2.0, [trace("ZERO", 0, 50), trace("DIRTY", 500, 900)])
    assert "**0 g CO₂e** (its grid reported 0 g CO₂e/kWh direct emissions that hour) in ZERO" in s.sentence
    tiny = L.grids_step(0.01, 0.1, [trace("CLEAN", 1, 30), trace("DIRTY", 500, 900)])  # 10 mJ at 1 g/kWh
    assert "0 g" not in tiny.sentence and "µg" in tiny.sentence


def test_month_step_says_what_its_carbon_counts_and_that_the_promise_is_a_probability():
    from sprout_core import profiles

    s4 = L.month_step(profiles.load_reference(), trace("X", 50, 600), 6, requests_per_hour=100)
    assert "evaluator runs counted; the judge's energy is n/a and not counted" in s4.sentence
    assert "evaluator runs included" not in s4.sentence and "judge energy n/a (not counted)" in s4.note
    assert "the promise is a probability" in s4.sentence and "720 hours" in s4.sentence
    assert L.evaluator_note(1, True) == "its 1 evaluator run counted, judge included"


def test_a_negative_saving_reads_as_more_carbon():
    assert L.saving_words(21.4) == "21 % less carbon" and L.saving_words(-9.39) == "9 % more carbon"
    assert L.saving_words(float("nan")) == "a saving of n/a"
