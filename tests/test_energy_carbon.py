"""Carbon accounting: operational, embodied, presets, savings, intensity choice."""
from __future__ import annotations

import pytest

from sprout_core import carbon
from sprout_core.carbon import EMBODIED_PRESETS, EmbodiedModel, account, saving_pct
from tests.shipped import shipped_zones_in


def test_operational_is_kwh_times_ci_times_pue():
    a = account(3.6e6, 10.0, 400.0, pue=1.5, energy_method="measured:rapl", ci_label="DE")
    assert a.operational_g == pytest.approx(1.0 * 400 * 1.5)
    assert a.energy_kwh == pytest.approx(1.0)
    assert a.energy_method == "measured:rapl" and a.ci_label == "DE"


def test_embodied_is_device_g_times_seconds_over_lifetime():
    model = EMBODIED_PRESETS["sprout-paper"]
    five_years_s = 5 * 365 * 24 * 3600
    a = account(100.0, 3600.0, 0.0)
    assert a.embodied_g == pytest.approx(26_356.568 * 3600 / five_years_s)
    assert a.embodied_name == model.name and "Sprout" in a.embodied_source
    assert a.operational_g == 0.0  # a real zero: 0 g/kWh was given
    assert a.total_g == pytest.approx(a.embodied_g)


def test_matches_sprout_paper_formula_on_reference_numbers():
    # paper: energy_kwh * CI + 26356.568 g / (5 y in s) * time_s — pooled L0: 0.3358 Wh, 4.86 s
    e_kwh, t = 0.3358e-3, 4.86
    a = account(e_kwh * 3.6e6, t, 250.0)
    assert a.total_g == pytest.approx(e_kwh * 250 + 26356.568 / (5 * 365 * 24 * 3600) * t)


def test_unknown_energy_or_ci_is_na_not_zero():
    a = account(None, 2.0, 300.0)
    assert a.operational_g is None and a.total_g is None and a.embodied_g > 0
    b = account(10.0, 2.0, None)
    assert b.operational_g is None and b.total_g is None


def test_presets_have_sources_and_values():
    assert EMBODIED_PRESETS["a100"].device_g == pytest.approx(150_000)
    assert EMBODIED_PRESETS["h100"].device_g == pytest.approx(164_000)
    for p in EMBODIED_PRESETS.values():
        assert p.source and p.lifetime_s > 0
    assert account(0, 1, 1, embodied="h100").embodied_g > account(0, 1, 1, embodied="a100").embodied_g
    custom = EmbodiedModel.custom(100, 4)
    assert custom.grams(365 * 24 * 3600) == pytest.approx(25_000)


@pytest.mark.parametrize("kw", [dict(pue=0.9), dict(ci_g_per_kwh=-1), dict(energy_j=-5), dict(embodied="nope")])
def test_bad_inputs_raise_clear_errors(kw):
    args = dict(energy_j=1.0, duration_s=1.0, ci_g_per_kwh=100.0)
    args.update(kw)
    with pytest.raises(ValueError):
        account(**args)


def test_savings():
    assert saving_pct(25.0, 100.0) == pytest.approx(75.0)
    assert saving_pct(120.0, 100.0) == pytest.approx(-20.0)
    assert saving_pct(None, 100.0) is None and saving_pct(1.0, 0.0) is None


def test_override_intensity_bounds():
    assert carbon.override_intensity(0).ci_g_per_kwh == 0
    assert "override" in carbon.override_intensity(420).label
    with pytest.raises(ValueError):
        carbon.override_intensity(1500)


def test_trace_intensity_hour_and_mean():
    h = carbon.trace_intensity("DE", 2023, 0)
    assert h.ci_g_per_kwh == pytest.approx(152.03)  # first row of the export, direct column
    assert "2023-01-01 00:00" in h.label
    m = carbon.trace_intensity("DE", 2023, None)
    assert "yearly mean" in m.label and 50 < m.ci_g_per_kwh < 800
    with pytest.raises(ValueError):
        carbon.trace_intensity("DE", 2023, 9000)


def test_price_elsewhere_sorted_and_proportional():
    prices, msgs = carbon.price_elsewhere(3.6e6, year=2023)
    assert len(prices) == shipped_zones_in(2023)
    g = [p.operational_g for p in prices]
    assert g == sorted(g)
    for p in prices:
        assert p.operational_g == pytest.approx(p.ci_g_per_kwh)  # 1 kWh
    doubled, _ = carbon.price_elsewhere(7.2e6, year=2023)
    assert doubled[0].operational_g == pytest.approx(2 * prices[0].operational_g)
