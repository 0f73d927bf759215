"""Evaluator schedule, strategies and metrics on synthetic traces and profiles; profiles from records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sprout_core import simulate as S
from sprout_core import workload as W
from sprout_core.grid import Trace
from sprout_core.profiles import Profile, ProfileError, QHandoff, profile_from_records


def _trace(ci, zone="SYN", year=2023) -> Trace:
    ci = np.asarray(ci, dtype=float)
    ts = np.datetime64(f"{year}-01-01T00:00:00", "s") + np.arange(len(ci)).astype("timedelta64[h]")
    return Trace(zone=zone, year=year, column="direct", timestamps=ts, ci=ci, zone_name="Synthetic", source_file=Path("syn.csv"))


def _profile(q=((0.6, 0.3, 0.1), (0.6, 0.3, 0.1)), variant=False) -> Profile:
    e = np.array([[4e-4, 1e-4, 5e-5], [2e-4, 8e-5, 4e-5]])
    t = np.array([[6.0, 1.5, 0.8], [3.0, 1.0, 0.5]])
    v = None
    if variant:
        v = Profile(name="syn/var", label="syn var", method="reference:test", levels=("13B", "7B"), tasks=("a", "b"),
                    e_kwh=np.array([[4e-4, 2e-4], [2e-4, 1e-4]]), t_s=np.array([[6.0, 3.0], [3.0, 1.5]]),
                    q=np.array([[0.6, 0.4], [0.6, 0.4]]), k_emb_g_per_s=1e-4, n_requests=np.ones((2, 2)),
                    n_judged=np.ones(2))
    return Profile(name="syn", label="synthetic", method="reference:test", levels=("L0", "L1", "L2"), tasks=("a", "b"),
                   e_kwh=e, t_s=t, q=np.array(q, dtype=float), k_emb_g_per_s=1e-4, n_requests=np.ones((2, 3)),
                   n_judged=np.ones(2), task_trace=np.array([100.0, 300.0, 200.0, 50.0, 400.0, 250.0]), variant=v)


# ------------------------------------------------------------------ schedule

def test_flat_trace_refreshes_only_when_forced():
    # constant CI: c(τ) rises every hour, never a local minimum → runs at 0, 72, 144, …
    mask = S.evaluator_refreshes(np.full(300, 200.0))
    assert list(np.flatnonzero(mask)) == [0, 72, 144, 216, 288]


def test_local_minimum_after_gap_triggers_refresh():
    ci = np.full(60, 300.0)
    ci[10:30] = 300.0 - 10.0 * np.arange(20)  # falling steeply (300 → 110) ...
    ci[30:] = ci[29]                            # ... then flat: c(τ) passes a minimum at hour 29
    mask = S.evaluator_refreshes(ci)
    runs = list(np.flatnonzero(mask))
    assert runs[0] == 0
    assert 30 in runs  # change went ≤ 0 (29 vs 28) then ≥ 0 (30 vs 29); CI(30) ≤ trailing mean
    assert all(b - a >= 6 for a, b in zip(runs, runs[1:]))


def test_never_within_min_gap_and_only_below_trailing_mean():
    rng = np.random.default_rng(0)
    ci = 200 + 80 * np.sin(np.arange(2000) * 2 * np.pi / 5) + rng.normal(0, 5, 2000)  # minima every ~5 h
    p = S.ScheduleParams()
    sched = S.EvaluatorSchedule(p)
    runs = [t for t, v in enumerate(ci) if sched.step(v)]
    gaps = np.diff(runs)
    assert gaps.min() >= p.min_gap_h and gaps.max() <= p.force_h
    for t, why in zip(sched.runs, sched.reasons):
        if why == "local minimum":
            past = ci[max(0, t - p.trailing_h):t]
            assert ci[t] <= past.mean() + 1e-9


def test_schedule_reads_no_future_hour():
    rng = np.random.default_rng(1)
    ci = np.abs(250 + np.cumsum(rng.normal(0, 15, 1500)))
    full = S.evaluator_refreshes(ci)
    for k in (1, 2, 5, 50, 333, 1000, 1499):
        # same decisions on the prefix alone, and with the future replaced by anything
        assert (S.evaluator_refreshes(ci[:k]) == full[:k]).all()
        other = ci.copy()
        other[k:] = rng.uniform(0, 900, len(ci) - k)
        assert (S.evaluator_refreshes(other)[:k] == full[:k]).all()


def test_parameters_are_settable():
    mask = S.evaluator_refreshes(np.full(100, 200.0), S.ScheduleParams(force_h=10))
    assert list(np.flatnonzero(mask)) == list(range(0, 100, 10))


def test_trailing_mean_uses_history_before_the_window():
    ci = np.array([100.0, 90.0, 95.0, 120.0] + [120.0] * 20)
    # with a very clean history the dip at hour 1-2 is not below the trailing mean → no early refresh
    clean = S.evaluator_refreshes(ci, S.ScheduleParams(min_gap_h=1), history=[10.0] * 24)
    dirty = S.evaluator_refreshes(ci, S.ScheduleParams(min_gap_h=1), history=[500.0] * 24)
    assert list(np.flatnonzero(clean)) == [0]
    assert 2 in np.flatnonzero(dirty)


# ------------------------------------------------------------------ simulation

def _ci_year(n=8760, seed=0):
    rng = np.random.default_rng(seed)
    h = np.arange(n)
    return np.clip(300 + 150 * np.sin(h * 2 * np.pi / 24) + rng.normal(0, 20, n), 20, None)


def test_metrics_and_strategy_shapes():
    prof = _profile(variant=True)
    tr = _trace(_ci_year())
    res = S.simulate(prof, tr, S.SimConfig(start_hour=100, hours=240, xi=0.1, seed=3, n_eval=5000,
                                               requests_per_hour=200_000, per_task_floor=False))
    names = list(res.results)
    assert names == ["BASE", "CO2-OPT", "STATIC", "SPROUT", "ORACLE", "MODEL-OPT"]
    base = res.results["BASE"]
    assert base.carbon_saving_pct == 0.0 and base.quality_pct == pytest.approx(100.0)
    assert base.mean_x == {"L0": 1.0, "L1": 0.0, "L2": 0.0}
    co2 = res.results["CO2-OPT"]
    assert co2.mean_x["L2"] == 1.0  # always the cheapest level here
    assert co2.carbon_saving_pct > res.results["SPROUT"].carbon_saving_pct > 0
    sp = res.results["SPROUT"]
    # q strongly favours L0 here: SPROUT keeps ≥ 90 % of quality and runs the evaluator
    assert sp.quality_pct >= 90.0 and sp.evaluator_runs >= 240 // 72
    # evaluator carbon: n_eval prompts at every level at the CI of each run hour
    ctx = S.build_context(prof, tr, res.cfg)
    runs = np.flatnonzero(ctx.evaluator().refresh)
    assert sp.evaluator_carbon_g == pytest.approx(5000 * ctx.cost_lp[runs].sum())
    assert list(sp.refresh_hours) == list(runs)
    # carbon per request includes the evaluator, spread over all requests
    assert sp.carbon_g_per_request == pytest.approx(sp.serving_g_per_request + sp.evaluator_carbon_g / res.total_requests)
    mo = res.results["MODEL-OPT"]
    assert set(mo.mean_x) == {"13B", "7B"}
    for r in res.results.values():
        assert r.x.shape[0] == 240 and np.allclose(r.x.sum(axis=1), 1.0)
    df = res.table()
    assert set(df["strategy"]) == set(names) and (df["hours"] == 240).all()


def test_seeded_and_reproducible():
    prof = _profile()
    tr = _trace(_ci_year())
    cfg = S.SimConfig(start_hour=0, hours=500, seed=11)
    a = S.simulate(prof, tr, cfg).table()
    W._CACHE.clear()
    b = S.simulate(prof, tr, cfg).table()
    pd.testing.assert_frame_equal(a, b)
    c = S.simulate(prof, tr, S.SimConfig(start_hour=0, hours=500, seed=12)).table()
    assert not np.allclose(a["carbon_g_per_request"], c["carbon_g_per_request"])


def test_window_reads_same_hours_regardless_of_start():
    # the year's inputs do not depend on the window: hour 300 sees the same mix from either window
    prof = _profile()
    tr = _trace(_ci_year())
    c1 = S.build_context(prof, tr, S.SimConfig(start_hour=200, hours=200))
    c2 = S.build_context(prof, tr, S.SimConfig(start_hour=300, hours=50))
    np.testing.assert_allclose(c1.weights[100], c2.weights[0])
    np.testing.assert_allclose(c1.q_true[100], c2.q_true[0])


def test_clean_hours_keep_full_quality_dirty_hours_use_tolerance():
    prof = _profile(q=((0.5, 0.45, 0.05), (0.5, 0.45, 0.05)))
    ci = np.where(np.arange(8760) % 2 == 0, 50.0, 500.0)
    tr = _trace(ci)
    ctx = S.build_context(prof, tr, S.SimConfig(start_hour=0, hours=100, xi=0.2))
    assert ctx.theta[0] == pytest.approx(1.0) and ctx.theta[1] == pytest.approx(0.8)
    out = S.STRATEGIES["ORACLE"].fn(ctx)  # per request on the hour's true verdicts
    assert np.all(out.quality[0::2] >= 1.0 - 1e-9) and np.all(out.quality[1::2] >= 0.8 - 1e-9)
    assert out.x[1::2, 0].mean() < out.x[0::2, 0].mean()  # fewer L0 requests when the grid is dirty


def test_oracle_per_group_hand_case():
    # one task, costs L0 1.0 / L1 0.2 / L2 0.1 g; 100 requests/h with winners 50 L0, 25 L1, 25 L2.
    # θ = 0.8 → 40 requests must be served at their winning level (always-L0 serves 50). Cheapest first:
    # the 25 L2-winners are free at L2, then 15 L1-winners at L1 (+0.1 g each); everyone else at L2.
    prof = Profile(name="one", label="one", method="reference:test", levels=("L0", "L1", "L2"), tasks=("a",),
                   e_kwh=np.array([[1e-3, 2e-4, 1e-4]]), t_s=np.zeros((1, 3)), q=np.array([[0.50, 0.25, 0.25]]),
                   k_emb_g_per_s=None, n_requests=np.ones((1, 3)), n_judged=np.ones(1))
    tr = _trace(np.full(8760, 1000.0))
    ctx = S.build_context(prof, tr, S.SimConfig(hours=5, xi=0.2, requests_per_hour=100))
    ctx.theta[:] = 0.8
    ctx.q_true_task[:] = [[0.50, 0.25, 0.25]]
    ctx.n_true_task[:] = 100
    out = S.STRATEGIES["ORACLE"].fn(ctx)
    np.testing.assert_allclose(out.quality, 40 / 50)
    np.testing.assert_allclose(out.x[0], [0.0, 0.15, 0.85])
    np.testing.assert_allclose(out.carbon_h, (100 * 0.1 + 15 * 0.1) / 100)
    # winners at the cheapest level count for free, even beyond the floor (here 150 % of always-L0)
    ctx.q_true_task[:] = [[0.30, 0.25, 0.45]]
    out = S.STRATEGIES["ORACLE"].fn(ctx)
    np.testing.assert_allclose(out.quality, 45 / 30)
    np.testing.assert_allclose(out.x[0], [0.0, 0.0, 1.0])


def test_exact_and_pulp_simulations_agree():
    prof = _profile()
    tr = _trace(_ci_year())
    a = S.simulate(prof, tr, S.SimConfig(start_hour=500, hours=36, solver="exact"), ["SPROUT", "ORACLE"])
    b = S.simulate(prof, tr, S.SimConfig(start_hour=500, hours=36, solver="pulp"), ["SPROUT", "ORACLE"])
    for n in ("SPROUT", "ORACLE"):
        np.testing.assert_allclose(a.results[n].x, b.results[n].x, atol=1e-6)


def test_registry_is_extensible_and_validated():
    prof = _profile()
    tr = _trace(_ci_year())

    @S.register_strategy("HALF", "half L0, half L1 (test)")
    def _half(ctx):
        x = np.tile([0.5, 0.5, 0.0], (ctx.H, 1))
        return S.StrategyOutput(ctx.profile.levels, x, ctx.cost, (ctx.q_true * x).sum(1) / ctx.q_true[:, 0])

    try:
        assert "HALF" in S.resolve_strategies("all", prof)
        assert "MODEL-OPT" not in S.resolve_strategies("all", prof)  # no variant in this profile
        res = S.simulate(prof, tr, S.SimConfig(hours=48), "half")
        assert list(res.results) == ["BASE", "HALF"]
        assert res.results["HALF"].mean_x["L0"] == 0.5
    finally:
        del S.STRATEGIES["HALF"]
    with pytest.raises(ValueError, match="unknown strategy"):
        S.resolve_strategies("NOPE", prof)
    with pytest.raises(ValueError, match="variant"):
        S.resolve_strategies("MODEL-OPT", prof)


def test_bad_windows_are_rejected():
    prof, tr = _profile(), _trace(_ci_year(100))
    with pytest.raises(ValueError, match="outside the year"):
        S.simulate(prof, tr, S.SimConfig(start_hour=100))
    with pytest.raises(ValueError, match="ξ"):
        S.simulate(prof, tr, S.SimConfig(xi=1.5))
    with pytest.raises(ValueError, match="past the end .* at most 10 hours"):   # never silently cut
        S.simulate(prof, tr, S.SimConfig(start_hour=90, hours=720))
    assert len(S.simulate(prof, tr, S.SimConfig(start_hour=90, hours=10)).ci) == 10


def test_fixed_mix_and_volume():
    prof = _profile()
    tr = _trace(_ci_year())
    ctx = S.build_context(prof, tr, S.SimConfig(hours=30, fixed_mix=(("a", 3.0), ("b", 1.0)), requests_per_hour=50))
    np.testing.assert_allclose(ctx.weights, np.tile([0.75, 0.25], (30, 1)))
    assert (ctx.volume == 50).all()
    np.testing.assert_allclose(ctx.e[0], 0.75 * prof.e_kwh[0] + 0.25 * prof.e_kwh[1])


def test_task_mix_from_trace_refreshes_about_daily():
    prof = _profile()
    yi = W.year_workload(prof, 8760, S.SimConfig(seed=5).workload_spec())
    gaps = np.diff(np.flatnonzero(yi.mix_refresh))
    assert 20 < gaps.mean() < 28 and gaps.min() >= 1
    assert np.allclose(yi.weights.sum(axis=1), 1.0)
    req = yi.requests(slice(0, 8760))
    assert np.allclose(req.q_true.sum(axis=1), 1.0) and np.allclose(yi.q_eval.sum(axis=1), 1.0)


def test_month_presets():
    assert S.month_start_hour(2023, 2) == 31 * 24
    assert S.month_start_hour(2024, 6) == (31 + 29 + 31 + 30 + 31) * 24


# ------------------------------------------------------------------ profiles from records

def _records():
    rows = []
    for task, scale in (("math", 2.0), ("chat", 1.0)):
        for lv, e in (("L0", 100.0), ("L1", 40.0), ("L2", 20.0)):
            for k in range(4):
                rows.append({"level": lv, "task": task, "energy_j": e * scale + k, "total_s": e / 10})
    return pd.DataFrame(rows)


def test_profile_from_records_units_and_shares():
    verdicts = pd.DataFrame({"task": ["math"] * 4 + ["chat"] * 8,
                             "winner": ["L0", "L0", "L1", "L2"] + ["L1"] * 6 + ["L0", "L2"]})
    p = profile_from_records(_records(), verdicts, name="tiny", energy_method="estimated:cpu-tdp")
    assert p.levels == ("L0", "L1", "L2") and p.tasks == ("chat", "math")
    assert p.e_kwh[1, 0] == pytest.approx((200 + 1.5) / 3.6e6)  # mean J → kWh
    assert p.t_s[0, 0] == pytest.approx(10.0)
    np.testing.assert_allclose(p.q[1], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(p.q[0], [0.125, 0.75, 0.125])
    assert p.method == "estimated:cpu-tdp" and "estimated:cpu-tdp" in p.label
    assert any("embodied" in n for n in p.notes)


def test_profile_from_records_fills_gaps_and_warns():
    recs = _records()
    recs = recs[~((recs.task == "chat") & (recs.level == "L2"))]
    verdicts = pd.DataFrame({"task": ["math"] * 3, "winner": ["L0", "L1", "L0"]})
    p = profile_from_records(recs, verdicts, name="gappy", energy_method="measured:rapl")
    k = p.tasks.index("chat")
    assert p.e_kwh[k, 2] == pytest.approx(recs[recs.level == "L2"].energy_j.mean() / 3.6e6)
    np.testing.assert_allclose(p.q[k], [2 / 3, 1 / 3, 0.0])  # pooled shares
    assert any("no L2 requests" in n for n in p.notes) and any("no verdicts" in n for n in p.notes)
    assert any("very uncertain" in n for n in p.notes)


def test_profile_from_records_errors_and_handoff():
    with pytest.raises(ProfileError, match="no requests"):
        profile_from_records(pd.DataFrame(columns=["level", "task", "energy_j", "total_s"]), None, "x", "n/a")
    only_l0 = _records()
    with pytest.raises(ProfileError, match="L3"):
        profile_from_records(only_l0, None, "x", "n/a", levels=("L0", "L3"))
    with pytest.raises(ProfileError, match="Evaluations"):
        profile_from_records(_records(), None, "x", "measured:rapl")
    hand = QHandoff(label="run 1", judge="smollm2", model=None, levels=("L0", "L1", "L2"),
                    counts={"math": {"L0": 7, "L1": 2, "L2": 1}, "chat": {"L0": 3, "L1": 4, "L2": 3}})
    assert hand.n == 20 and hand.q == {"L0": 0.5, "L1": 0.3, "L2": 0.2}
    p = profile_from_records(_records(), None, "x", "measured:rapl", q=hand)
    np.testing.assert_allclose(p.q[p.tasks.index("math")], [0.7, 0.2, 0.1])
    np.testing.assert_allclose(p.q[p.tasks.index("chat")], [0.3, 0.4, 0.3])
    assert "run 1" in p.q_source
    with pytest.raises(ProfileError, match="lacks level"):
        p.with_q({"L0": 1.0})


def test_reference_profile_matches_artifact_readme():
    from sprout_core import profiles

    p = profiles.load_reference()
    k = p.tasks.index("alpaca")
    # README per-task summary: alpaca L0 0.5519 Wh / 7.99 s; winner share 54.4 % / 25.6 % / 19.9 %
    assert p.e_kwh[k, 0] * 1000 == pytest.approx(0.5519, abs=1e-4)
    assert p.t_s[k, 0] == pytest.approx(7.99, abs=0.01)
    np.testing.assert_allclose(p.q[k], [0.544, 0.2565, 0.1995], atol=1e-9)
    assert p.label == "reference: Llama-2-13B-chat on A100 (Sprout paper)" and p.method == "reference:sprout-paper"
    assert p.variant is not None and p.variant.q[0, 0] == pytest.approx(1138 / 1999)
    assert p.task_trace is not None and len(p.task_trace) == 1224


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_schedule_equals_hour_by_hour_schedule(seed):
    rng = np.random.default_rng(seed)
    ci = np.abs(300 + np.cumsum(rng.normal(0, 12, 3000))) + 5 * np.sin(np.arange(3000))
    hist = rng.uniform(100, 500, 30)
    for params in (S.ScheduleParams(), S.ScheduleParams(force_h=30, min_gap_h=3, decay_per_h=0.05, trailing_h=12),
                   S.ScheduleParams(min_gap_h=0, trailing_h=1)):
        sched = S.EvaluatorSchedule(params, hist)
        slow = np.array([sched.step(v) for v in ci])
        assert (S.evaluator_refreshes(ci, params, hist) == slow).all()
        assert slow.sum() > 3000 / params.force_h  # local minima do trigger runs
