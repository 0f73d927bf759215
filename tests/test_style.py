"""The visual language: one colour per level, readable units and magnitudes (no e-notation, no "600µ")."""
import math

import pytest

from sprout_core import style


def test_one_colour_per_level_everywhere():
    assert style.level_color("L0") == style.LEVEL_PALETTE[0]
    assert style.level_color("L2") == style.LEVEL_PALETTE[2]
    assert style.level_color("L2", position=0) == style.level_color("L2")  # the name wins over the position
    assert len(set(style.level_colors(["L0", "L1", "L2", "L3", "L4"]))) == 5
    assert style.level_color_map(["L0", "L1"]) == {"L0": style.LEVEL_PALETTE[0], "L1": style.LEVEL_PALETTE[1]}
    assert style.level_color("short", position=1) == style.LEVEL_PALETTE[1]  # a custom name: by position
    assert style.level_color("short") == style.level_color("short")  # stable without a position


@pytest.mark.parametrize("j, text", [
    (None, "n/a"), (0.0123, "12.3 mJ"), (0.5, "500 mJ"), (15.0, "15 J"), (160.4, "160 J"), (999.0, "999 J"),
    (1_234.0, "1.23 kJ"), (35_000.0, "35 kJ"), (36_000.0, "10 Wh"), (7.2e6, "2 kWh"),
])
def test_energy_reads_in_the_right_unit(j, text):
    assert style.fmt_energy(j) == text


def test_energy_uncertainty_in_the_same_unit_without_e_notation():
    assert style.fmt_energy(160.0, uncertainty_j=156.0) == "160 J ± 160 J"
    assert style.fmt_energy(2000.0, "measured:rapl", 50.0) == "2 kJ ± 0.05 kJ (measured:rapl)"
    assert "e+" not in style.fmt_energy(123456.0, uncertainty_j=1e4)
    assert style.fmt_energy(None, "measured:rapl") == "n/a (measured:rapl)"


@pytest.mark.parametrize("g, text", [
    (None, "n/a"), (0.0, "0 g CO₂e"), (0.000874, "874 µg CO₂e"), (0.0006, "600 µg CO₂e"), (0.0261, "26.1 mg CO₂e"),
    (2.5, "2.5 g CO₂e"), (1500.0, "1.5 kg CO₂e"), (2.3e6, "2.3 t CO₂e"),
])
def test_grams_read_in_the_right_unit(g, text):
    assert style.fmt_grams(g) == text


def test_axis_scales_pick_one_unit_for_a_column():
    assert style.grams_scale([0.0006, 0.0002, None]) == (1e-6, "µg")
    assert style.grams_scale([0.002, 0.0006]) == (1e-3, "mg")
    assert style.grams_scale([]) == (1.0, "g")
    assert style.energy_scale([12.0, float("nan"), 300.0]) == (1.0, "J")
    assert style.energy_scale([5_000.0]) == (1e3, "kJ")
    assert style.energy_scale(0.2) == (1e-3, "mJ")


def test_numbers_power_seconds_and_timestamps():
    assert style.fmt_number(0.000123) == "0.000123" and style.fmt_number(1234567) == "1,230,000"
    assert style.fmt_number(float("nan")) == "n/a" and style.fmt_number(-2.456) == "-2.46"
    assert style.fmt_power(4.21) == "4.2 W" and style.fmt_power(310.0) == "310 W" and style.fmt_power(1200) == "1.2 kW"
    assert style.fmt_seconds(0.4231) == "0.42 s" and style.fmt_seconds(125) == "2 min 05 s"
    assert style.fmt_seconds(3725) == "1 h 02 min" and style.fmt_seconds(None) == "n/a"
    assert style.fmt_timestamp("2026-11-29T14:03:07.123+00:00") == "29 Nov 2026, 14:03:07 UTC"
    assert style.fmt_timestamp("2026-11-29T14:03:07") == "29 Nov 2026, 14:03:07 UTC"  # naive = UTC
    assert style.fmt_timestamp("not a time") == "n/a"
    assert style.fmt_intensity(273.94) == "274 g CO₂e/kWh"
    assert not math.isnan(style.parse_timestamp("2026-01-01T00:00:00Z").timestamp())


# ------------------------------------------------------------------ the one formatter (issue 19 item 6)

@pytest.mark.parametrize("value, unit, text", [
    (0.0000262, "g CO₂e", "26.2 µg CO₂e"), (0.0208, "g CO₂e", "20.8 mg CO₂e"), (2.5, "g CO₂e", "2.5 g CO₂e"),
    (1500.0, "g CO₂e", "1.5 kg CO₂e"), (3e-9, "g CO₂e", "0.003 µg CO₂e"), (0.0, "g CO₂e", "0 g CO₂e"),
    (0.0123, "g", "12.3 mg"), (1031.9252, "J", "1.03 kJ"), (36_000.0, "J", "10 Wh"), (2.0, "kWh", "2 kWh"),
    (0.75, "Wh", "2.7 kJ"), (4.21, "W", "4.2 W"), (125.0, "s", "2 min 05 s"), (0.4231, "s", "0.42 s"),
    (87.5, "%", "87.5 %"), (0.04, "%", "0.04 %"), (273.94, "g/kWh", "274 g CO₂e/kWh"),
    (1031.9252, "tokens/s", "1,030 tokens/s"), (12.0, "", "12"),
])
def test_one_formatter_units_and_significant_figures(value, unit, text):
    assert style.fmt_quantity(value, unit) == text


@pytest.mark.parametrize("unknown", [None, float("nan"), "None", "nan", ""])
def test_unknown_is_na_with_why_never_none_or_zero(unknown):
    assert style.fmt_quantity(unknown, "g CO₂e") == "n/a"
    assert style.fmt_quantity(unknown, "J", why="no energy meter") == "n/a (no energy meter)"
    assert style.fmt_count(unknown, "token", why="cut before start") == "n/a (cut before start)"
    assert style.fmt_cell(unknown) == "n/a"
    assert style.is_unknown(unknown)


def test_no_small_positive_number_reads_zero_and_no_e_notation():
    for v in (1e-12, 3.3e-9, 4e-7, 2.2e-5, 0.00049, 0.004, 0.04):
        for unit in ("g CO₂e", "J", "%", "W", "s", "tokens/s"):
            text = style.fmt_quantity(v, unit)
            number = text.split(" ")[0]
            assert float(number.replace(",", "")) > 0, (v, unit, text)
            assert "e-" not in text and "e+" not in text, text
    for v in (1e9, 123456789.123, 1031.9252):
        assert "e+" not in style.fmt_quantity(v, "tokens") and "." not in style.fmt_quantity(v, "tokens")


@pytest.mark.parametrize("n, noun, text", [
    (1, "token", "1 token"), (2, "token", "2 tokens"), (0, "token", "0 tokens"), (1234, "answer", "1,234 answers"),
    (1.0, "run", "1 run"), (2, "query", "2 queries"), (2, "pass", "2 passes"), (1, "day", "1 day"), (3, "day", "3 days"),
])
def test_counts_have_the_right_plural(n, noun, text):
    assert style.fmt_count(n, noun) == text
    assert style.fmt_count(2, "hour of the year", "hours of the year") == "2 hours of the year"


def test_table_cells_read_as_text_without_none():
    import numpy as np
    import pandas as pd

    df = pd.DataFrame({"level": ["L0", "L1"], "tokens": [64, None], "energy (J)": [1031.9252, np.nan],
                       "note": ["ok", None]})
    out = style.display_cells(df, keep=("level",))
    assert out.to_dict("list") == {"level": ["L0", "L1"], "tokens": ["64", "n/a"], "energy (J)": ["1,030", "n/a"],
                                   "note": ["ok", "n/a"]}
    assert style.fmt_na() == "n/a" and style.fmt_na("remote server") == "n/a (remote server)"
    assert style.fmt_pct(2.8, signed=True) == "+2.8 %" and style.fmt_pct(-2.8, signed=True) == "-2.8 %"


def test_every_energy_label_says_what_it_counts():
    from pathlib import Path

    cpu = style.method_help("estimated:cpu-tdp")
    assert "CPU time × watts per busy core" in cpu and "no RAM, no idle share" in cpu and "2.6×" in cpu
    assert style.method_help("estimated:cpu-tdp") == style.METHOD_HELP["estimated:cpu-tdp"]
    assert "never 0" in style.method_help("n/a") and "not measured here" in style.method_help("reference:sprout-paper")
    doc = (Path(__file__).resolve().parent.parent / "docs/energy.md").read_text(encoding="utf-8")
    assert "this process's CPU time × watts per busy core" in doc and "**2.6×**" in doc and "no idle share" in doc
