"""Per-task LP: hand-solved cases, the exact solver against PuLP, and the reference claim."""
from __future__ import annotations

import numpy as np
import pytest

from sprout_core.tasks import lp


def _hand_case():
    # Task A: L0 costs 10 g with q .6, L1 costs 2 g with q .4; task B: both levels win equally often.
    cost = np.array([[10.0, 2.0], [10.0, 2.0]])
    q = np.array([[0.6, 0.4], [0.5, 0.5]])
    w = np.array([0.5, 0.5])
    return cost, q, w


@pytest.mark.parametrize("solver", ["exact", "pulp"])
def test_hand_solved_binding(solver):
    cost, q, w = _hand_case()
    # all-L1 gives .45; R = .5 needs half of task A at L0 (B gains nothing from L0).
    if solver == "exact":
        sol = lp.solve_per_task_exact(cost, q, w, 0.5).at(0)
    else:
        sol = lp.solve_per_task_pulp(cost, q, w, 0.5)
    assert sol.status == "optimal"
    np.testing.assert_allclose(sol.x, [[0.5, 0.5], [0.0, 1.0]], atol=1e-7)
    assert sol.cost_g_per_request == pytest.approx(4.0, abs=1e-7)
    assert sol.quality == pytest.approx(0.5, abs=1e-9)
    assert sol.binding == "quality"


def test_hand_solved_pooled_costs_more():
    cost, q, w = _hand_case()
    pooled = lp.solve_per_task_pulp(cost, q, w, 0.5, shared_mix=True)
    # one mix for both: .55 x0 + .45 (1 − x0) ≥ .5 → x0 = .5 → 6 g
    assert pooled.cost_g_per_request == pytest.approx(6.0, abs=1e-7)
    np.testing.assert_allclose(pooled.x, [[0.5, 0.5], [0.5, 0.5]], atol=1e-7)


def test_not_binding_takes_cheapest_and_prefers_quality_on_ties():
    cost = np.array([[3.0, 1.0, 1.0], [2.0, 5.0, 2.0]])
    q = np.array([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])
    w = np.array([0.5, 0.5])
    sol = lp.solve_per_task_exact(cost, q, w, 0.1).at(0)
    assert sol.binding == "none"
    # cheapest per task; equal cost → the higher-quality level
    np.testing.assert_allclose(sol.x, [[0, 0, 1], [0, 0, 1]])
    assert sol.cost_g_per_request == pytest.approx(1.5)


def test_infeasible_reports_largest_reachable_quality():
    cost, q, w = _hand_case()
    sol = lp.solve_per_task_exact(cost, q, w, 0.9).at(0)
    assert sol.status == "infeasible"
    assert sol.max_quality == pytest.approx(0.55)
    pul = lp.solve_per_task_pulp(cost, q, w, 0.9)
    assert pul.status == "infeasible" and pul.max_quality == pytest.approx(0.55)


def test_exact_matches_pulp_on_random_instances():
    rng = np.random.default_rng(1)
    for n in range(120):
        T, L = int(rng.integers(1, 7)), int(rng.integers(2, 5))
        cost = rng.uniform(0.05, 5.0, (T, L))
        q = rng.dirichlet(np.ones(L), T)
        if n % 3 == 0:  # degenerate: ties in cost and quality
            cost, q = np.round(cost) + 1.0, np.round(q, 1)
        w = rng.dirichlet(np.ones(T))
        if n % 5 == 0 and T > 1:
            w[0] = 0.0
            w = w / w.sum()
        target = float(rng.uniform(0.3, 1.05) * (w * q.max(axis=1)).sum())
        ex = lp.solve_per_task_exact(cost, q, w, target).at(0)
        pu = lp.solve_per_task_pulp(cost, q, w, target)
        assert ex.status == pu.status, n
        if ex.status == "optimal":
            assert ex.cost_g_per_request == pytest.approx(pu.cost_g_per_request, rel=1e-6, abs=1e-6), n
            assert ex.quality >= target - 1e-9
            np.testing.assert_allclose(ex.x.sum(axis=1), 1.0)
            assert (ex.x >= -1e-12).all()
            # the reported cost is the cost of the reported mix
            assert ex.cost_g_per_request == pytest.approx(float((w[:, None] * cost * ex.x).sum()))


def test_vectorised_equals_one_by_one():
    rng = np.random.default_rng(2)
    H, T, L = 50, 4, 3
    cost = rng.uniform(0.1, 3.0, (H, T, L))
    q = rng.dirichlet(np.ones(L), T)
    w = rng.dirichlet(np.ones(T), H)
    target = rng.uniform(0.2, 0.5, H)
    sweep = lp.solve_per_task_exact(cost, q, w, target)
    for h in range(H):
        one = lp.solve_per_task_exact(cost[h], q, w[h], target[h]).at(0)
        assert sweep.cost_g_per_request[h] == pytest.approx(one.cost_g_per_request)
        np.testing.assert_allclose(sweep.x[h], one.x)


def test_identity_confusion_changes_nothing():
    rng = np.random.default_rng(3)
    e = rng.uniform(1e-5, 5e-4, (3, 3))
    t = rng.uniform(0.5, 8, (3, 3))
    q = rng.dirichlet(np.ones(3), 3)
    w = np.array([0.2, 0.3, 0.5])
    a = lp.decide_per_task(list("abc"), ["L0", "L1", "L2"], e, t, q, w, 300.0, 1e-4, 0.3)
    b = lp.decide_per_task(list("abc"), ["L0", "L1", "L2"], e, t, q, w, 300.0, 1e-4, 0.3, confusion=np.eye(3))
    assert a.carbon_g_per_request == pytest.approx(b.carbon_g_per_request)
    np.testing.assert_allclose(a.x, b.x)
    assert a.operational_g_per_request + a.embodied_g_per_request == pytest.approx(a.carbon_g_per_request)


def test_aggregation_keeps_shares_and_win_distributions():
    rng = np.random.default_rng(4)
    T, L = 4, 3
    w = rng.dirichlet(np.ones(T))
    c = rng.uniform(0, 1, (T, L))
    q = rng.dirichlet(np.ones(L), T)
    C = rng.dirichlet(np.ones(T), T)
    Wp, cp, qp = lp.aggregate_through_confusion(w, c, q, C)
    assert Wp.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(qp.sum(axis=1), 1.0)
    # the predicted-task LP's coefficients reproduce the true mean cost and win share of any policy
    x = rng.dirichlet(np.ones(L), T)
    carbon, win, _ = lp.delivered_on_true_tasks(x, w, c, q, C)
    assert carbon == pytest.approx(float((Wp[:, None] * cp * x).sum()))
    assert win == pytest.approx(float((Wp[:, None] * qp * x).sum()))


def test_sprout_quality_target_clips_and_handles_flat_year():
    assert lp.sprout_quality_target(0.4, 100, 100, 500, 0.1) == pytest.approx(0.4)
    assert lp.sprout_quality_target(0.4, 500, 100, 500, 0.1) == pytest.approx(0.36)
    assert lp.sprout_quality_target(0.4, 900, 100, 500, 0.1) == pytest.approx(0.36)
    assert lp.sprout_quality_target(0.4, 300, 300, 300, 0.1) == pytest.approx(0.4)


def test_reference_claim_pooled_vs_per_task():
    """At 300 g/kWh, uniform mix, quality ≥ 0.95·q0: pooled ≈ 39 % saving, one mix per task ≈ 78 %."""
    from sprout_core.profiles import REFERENCE_K_EMB, load_reference

    prof = load_reference()
    assert REFERENCE_K_EMB == pytest.approx(26356.568 / (5 * 365 * 24 * 3600))
    w = prof.default_weights()
    target = 0.95 * float(w @ prof.q[:, 0])
    cmp_ = lp.compare_pooled_per_task(prof.tasks, prof.levels, prof.e_kwh, prof.t_s, prof.q, w,
                                      300.0, REFERENCE_K_EMB, target)
    assert 37.0 < cmp_.saving_pooled_pct < 41.0
    assert 76.0 < cmp_.saving_per_task_pct < 80.0
    assert cmp_.per_task.quality == pytest.approx(target, abs=1e-9)
    # and PuLP agrees on the real instance at several intensities
    for ci in (20.0, 300.0, 800.0):
        c = lp.cost_g_per_request(prof.e_kwh, prof.t_s, ci, REFERENCE_K_EMB)
        ex = lp.solve_per_task_exact(c, prof.q, w, target).at(0)
        pu = lp.solve_per_task_pulp(c, prof.q, w, target)
        assert ex.cost_g_per_request == pytest.approx(pu.cost_g_per_request, rel=1e-6)


def test_comparison_with_no_l0_wins_or_no_cost_says_n_a_not_zero():
    cost_e = np.array([[1e-4, 5e-5], [2e-4, 1e-4]])
    t = np.ones((2, 2))
    q = np.array([[0.0, 1.0], [0.0, 1.0]])  # L0 never wins: q0 = 0
    w = np.array([0.5, 0.5])
    c = lp.compare_pooled_per_task(["a", "b"], ["L0", "L1"], cost_e, t, q, w, 300.0, 0.0, 0.0)
    assert np.isnan(c.pooled_quality_pct) and np.isnan(c.per_task.quality_pct)
    assert c.saving_per_task_pct == pytest.approx(50.0)
    z = lp.compare_pooled_per_task(["a", "b"], ["L0", "L1"], cost_e, t, np.full((2, 2), 0.5), w, 0.0, 0.0, 0.1)
    assert np.isnan(z.saving_pooled_pct) and np.isnan(z.extra_saving_pp)  # zero baseline cost: n/a
