"""One cost per request (issue 21.1): the Playground and the Optimizer price the same answer alike at any PUE.

``carbon.grams_per_request`` is the one formula (kWh × CI × PUE + embodied g/s × s); the Playground's carbon
account, the optimizer's per-level cost family (``Profile.cost``, ``decide``), the replay and the CLI all
reach it, and ``saving_pct`` is the one saving.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from sprout_core import carbon, decision
from sprout_core import optimizer as opt
from sprout_core.carbon import DEFAULT_EMBODIED, J_PER_KWH, grams_per_request, saving_pct
from sprout_core.cli import main
from sprout_core.metered import CarbonSettings
from sprout_core.profiles import Profile

PUES = (1.0, 1.2, 1.58)
#: a few answers: (energy J, duration s) and the hour's intensities (g/kWh)
ANSWERS = ((41.7, 2.31), (3.2, 0.44), (612.0, 18.9))
CIS = (35.0, 312.5, 804.0)


def _one_answer_profile(energy_j: float, duration_s: float) -> Profile:
    """The Optimizer's profile made of one answer: one task, one level, its energy and time, the Playground's
    default embodied model."""
    one = np.ones((1, 1))
    return Profile(name="one", label="one answer", method="measured:test", levels=("L0",), tasks=("all",),
                   e_kwh=one * energy_j / J_PER_KWH, t_s=one * duration_s, q=one, k_emb_g_per_s=DEFAULT_EMBODIED.g_per_s,
                   n_requests=np.array([1]), n_judged=np.array([1]))


@pytest.mark.parametrize("pue", PUES)
def test_playground_grams_equal_optimizer_grams(pue):
    for energy_j, duration_s in ANSWERS:
        prof = _one_answer_profile(energy_j, duration_s)
        for ci in CIS:
            playground = CarbonSettings(carbon.override_intensity(ci), pue, DEFAULT_EMBODIED).price_energy(
                energy_j, duration_s, "measured:test")
            d = decision.hour_decision(prof, ci, 1.0, pue=pue)
            assert d.status == "optimal"
            assert d.carbon_g == pytest.approx(playground.total_g, rel=1e-12)
            assert d.operational_g == pytest.approx(playground.operational_g, rel=1e-12)
            assert d.embodied_g == pytest.approx(playground.embodied_g, rel=1e-12)
            assert float(prof.cost(ci, pue=pue)[0]) == pytest.approx(playground.total_g, rel=1e-12)
            # and the formula itself: PUE scales the operational part only
            expected = energy_j / J_PER_KWH * ci * pue + DEFAULT_EMBODIED.g_per_s * duration_s
            assert playground.total_g == pytest.approx(expected, rel=1e-12)


def test_pue_scales_operational_only():
    e, t = np.array([1e-4, 5e-5]), np.array([3.0, 1.5])
    c1 = opt.cost_per_request(e, t, 300.0, 2e-4)
    c2 = opt.cost_per_request(e, t, 300.0, 2e-4, 1.58)
    np.testing.assert_allclose(c2 - c1, 0.58 * e * 300.0)
    # float32 stays float32 (the ORACLE's ranking arrays)
    f32 = np.float32
    assert opt.cost_per_request(e.astype(f32), t.astype(f32), f32(300.0), f32(2e-4), 1.2).dtype == f32


def test_grams_per_request_none_and_broadcast():
    assert grams_per_request(None, 1.0, 300.0) is None
    assert grams_per_request(1.0, 1.0, None, 1.2) is None
    assert grams_per_request(0.001, 2.0, 300.0, 1.5, 0.01) == pytest.approx(0.001 * 300 * 1.5 + 0.02)
    g = grams_per_request(np.array([[1e-3, 2e-3]]), np.array([[1.0, 2.0]]), np.array([[100.0], [200.0]]), 1.1, 0.01)
    assert g.shape == (2, 2)
    np.testing.assert_allclose(g[1], [1e-3 * 200 * 1.1 + 0.01, 2e-3 * 200 * 1.1 + 0.02])


def test_saving_pct_one_formula():
    assert saving_pct(25.0, 100.0) == pytest.approx(75.0)
    assert saving_pct(None, 1.0) is None and saving_pct(1.0, 0.0) is None and saving_pct(1.0, None) is None
    assert np.isnan(saving_pct(1.0, 0.0, missing=float("nan")))
    out = saving_pct(np.array([1.0, 2.0, 3.0]), np.array([2.0, 0.0, 4.0]))
    assert out[0] == pytest.approx(50.0) and np.isnan(out[1]) and out[2] == pytest.approx(25.0)


def test_optimize_cli_pue_echoed_and_scales_operational(capsys):
    outs = {}
    for pue in PUES:
        assert main(["optimize", "--ci", "300", "--theta", "1.0", "--solver", "exact", "--pue", str(pue), "--json"]) == 0
        outs[pue] = json.loads(capsys.readouterr().out)
        assert outs[pue]["pue"] == pue
    base = outs[1.0]
    for pue in PUES:
        assert outs[pue]["x"] == base["x"]   # θ = 1: always-L0 whatever the PUE
        assert outs[pue]["operational_g_per_request"] == pytest.approx(pue * base["operational_g_per_request"], rel=1e-12)
        assert outs[pue]["embodied_g_per_request"] == pytest.approx(base["embodied_g_per_request"], rel=1e-12)


@pytest.mark.parametrize("bad", ["0.5", "nan", "inf", "3.5"])
def test_optimize_and_simulate_refuse_bad_pue(bad, capsys):
    assert main(["optimize", "--pue", bad]) == 2
    assert main(["simulate", "--pue", bad, "--hours", "24"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "--pue" in err


def test_paper_mode_keeps_pue_one(capsys):
    assert main(["simulate", "--paper-faithful", "--pue", "1.2", "--hours", "24", "--strategies", "BASE"]) == 2
    assert "paper mode keeps PUE 1" in capsys.readouterr().err


def test_replay_base_is_embodied_plus_pue_times_operational(capsys):
    """BASE over a window: g/request at PUE p = embodied + p × operational (operational = the same replay
    with no embodied carbon), and ``_window`` echoes the PUE."""
    from sprout_core import grid, profiles, simulate

    prof = profiles.load_profile("llama2-13b-a100")
    trace = grid.load_trace("US-TEX-ERCO", 2023)
    no_emb = dataclasses.replace(prof, k_emb_g_per_s=0.0)
    cfg = simulate.SimConfig(start_hour=800, hours=48, seed=0)
    op = simulate.simulate(no_emb, trace, cfg, ["BASE"]).results["BASE"].carbon_g_per_request
    total1 = simulate.simulate(prof, trace, cfg, ["BASE"]).results["BASE"].carbon_g_per_request
    emb = total1 - op
    assert op > 0 and emb > 0
    for pue in PUES[1:]:
        got = simulate.simulate(prof, trace, cfg.with_(pue=pue), ["BASE"]).results["BASE"].carbon_g_per_request
        assert got == pytest.approx(emb + pue * op, rel=1e-9)
    assert main(["simulate", "--start-hour", "800", "--hours", "24", "--strategies", "BASE", "--pue", "1.2",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["_window"]["pue"] == 1.2
