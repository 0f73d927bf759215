"""The Sprout LP: hand-solved cases, the exact solver against PuLP, θ from ξ, serving draws."""
from __future__ import annotations

import numpy as np
import pytest

from sprout_core import optimizer as opt


def test_hand_solved_mix_of_two_levels():
    # q0=0.4, q1=0.35, q2=0.25; θ=0.95 → floor 0.38. L1 is cheapest that is close: mix L0/L1:
    # x0·0.4 + (1−x0)·0.35 = 0.38 → x0 = 0.6; cost 0.6·1 + 0.4·0.2 = 0.68. Mixing L0/L2 would need
    # x0 = (0.38−0.25)/0.15 = 0.8667 → cost 0.8667 + 0.1333·0.1 = 0.88 (dearer).
    for solver in ("exact", "pulp"):
        d = opt.solve([1.0, 0.2, 0.1], [0.4, 0.35, 0.25], 0.95, solver=solver)
        assert d.status == "optimal"
        np.testing.assert_allclose(d.x, [0.6, 0.4, 0.0], atol=1e-6)
        assert d.carbon_g == pytest.approx(0.68, abs=1e-6)
        assert d.quality == pytest.approx(0.95, abs=1e-6)
        assert d.binding == "quality"


def test_hand_solved_l0_l2_when_l1_is_poor():
    # L1 costs almost as much as L0 but is worse: the optimum mixes L0 and L2.
    # floor 0.9·0.5 = 0.45 → x0·0.5 + (1−x0)·0.3 = 0.45 → x0 = 0.75; cost 0.75·1 + 0.25·0.1 = 0.775
    d = opt.solve([1.0, 0.95, 0.1], [0.5, 0.2, 0.3], 0.9)
    np.testing.assert_allclose(d.x, [0.75, 0.0, 0.25], atol=1e-9)
    assert d.carbon_g == pytest.approx(0.775)
    p = opt.solve_lp([1.0, 0.95, 0.1], [0.5, 0.2, 0.3], 0.9)
    np.testing.assert_allclose(p.x, d.x, atol=1e-6)


def test_cheapest_level_meets_floor_so_quality_does_not_bind():
    # L1 wins more often than L0 and is cheaper: all requests at L1, the floor is slack.
    d = opt.solve([1.0, 0.2, 0.3], [0.3, 0.45, 0.25], 0.9)
    np.testing.assert_allclose(d.x, [0.0, 1.0, 0.0], atol=1e-9)
    assert d.binding == "none"
    assert d.quality == pytest.approx(1.5)
    assert "already" in d.message
    # the cheapest level exactly meeting θ=1 at the floor: still "none" (it would be chosen anyway)
    d2 = opt.solve([1.0, 0.3], [0.4, 0.4], 1.0)
    assert d2.binding == "none" and d2.x[1] == pytest.approx(1.0)


def test_theta_one_forces_l0_when_it_is_best():
    d = opt.solve([1.0, 0.2, 0.1], [0.5, 0.3, 0.2], 1.0)
    np.testing.assert_allclose(d.x, [1.0, 0.0, 0.0], atol=1e-9)
    assert d.binding == "quality"


@pytest.mark.parametrize("solver", ["exact", "pulp"])
def test_infeasible_names_largest_reachable_theta(solver):
    d = opt.solve([1.0, 0.2, 0.1], [0.4, 0.44, 0.16], 1.2, levels=["L0", "L1", "L2"], solver=solver)
    assert d.status == "infeasible"
    assert d.max_theta == pytest.approx(1.1)
    assert "1.100" in d.message and "L1" in d.message
    assert np.isnan(d.x).all()


def test_operational_and_embodied_split():
    e = np.array([3e-4, 1e-4])
    t = np.array([5.0, 1.0])
    k = 1.6e-4
    ci = 200.0
    op, emb = e * ci, k * t
    d = opt.solve(op + emb, [0.5, 0.5], 1.0, split=(op, emb))
    # equal quality → all at the cheaper L1
    assert d.x[1] == pytest.approx(1.0)
    assert d.operational_g == pytest.approx(1e-4 * 200)
    assert d.embodied_g == pytest.approx(1.6e-4)
    assert d.carbon_g == pytest.approx(d.operational_g + d.embodied_g)
    np.testing.assert_allclose(opt.cost_per_request(e, t, ci, k), op + emb)
    assert opt.cost_per_request(e, t, np.array([100.0, 200.0]), k).shape == (2, 2)


def test_theta_from_xi():
    assert opt.theta_from_xi(100.0, 100.0, 300.0, 0.1) == pytest.approx(1.0)
    assert opt.theta_from_xi(300.0, 100.0, 300.0, 0.1) == pytest.approx(0.9)
    assert opt.theta_from_xi(200.0, 100.0, 300.0, 0.2) == pytest.approx(0.9)
    np.testing.assert_allclose(opt.theta_from_xi(np.array([50.0, 400.0]), 100.0, 300.0, 0.1), [1.0, 0.9])
    assert opt.theta_from_xi(123.0, 50.0, 50.0, 0.1) == 1.0  # flat year


def _random_instances(rng, n):
    for _ in range(n):
        L = int(rng.integers(2, 6))
        c = rng.uniform(0.001, 1.0, L)
        q = rng.dirichlet(np.ones(L))
        theta = float(rng.uniform(0.3, 1.4))
        yield c, q, theta


def test_exact_matches_pulp_on_random_instances():
    rng = np.random.default_rng(7)
    n_opt = n_inf = 0
    for c, q, theta in _random_instances(rng, 120):
        a = opt.solve(c, q, theta, solver="exact")
        b = opt.solve_lp(c, q, theta)
        assert a.status == b.status
        if a.status == "optimal":
            n_opt += 1
            np.testing.assert_allclose(a.x, b.x, atol=1e-6)
            assert a.carbon_g == pytest.approx(b.carbon_g, abs=1e-6)
            assert (a.x > 1e-9).sum() <= 2  # a vertex: at most two non-zero levels
        else:
            n_inf += 1
    assert n_opt > 60 and n_inf > 5  # both branches exercised


def test_exact_vectorised_equals_row_by_row():
    rng = np.random.default_rng(3)
    H, L = 200, 3
    c = rng.uniform(0.01, 1, (H, L))
    q = rng.dirichlet(np.ones(L), H)
    th = rng.uniform(0.6, 1.0, H)
    x, feas = opt.solve_hours(c, q, th, solver="exact")
    for h in range(0, H, 17):
        d = opt.solve(c[h], q[h], th[h])
        assert feas[h] == (d.status == "optimal")
        if feas[h]:
            np.testing.assert_allclose(x[h], d.x, atol=1e-12)
    xp, fp = opt.solve_hours(c[:25], q[:25], th[:25], solver="pulp")
    assert (fp == feas[:25]).all()
    np.testing.assert_allclose(xp[fp], x[:25][fp], atol=1e-6)


def test_hourly_solver_makes_the_authors_linprog_decisions():
    """Paper mode's plug-in LP is the authors' (``sprout/system/optimizer.py``, ``LPOptimizer.optimize``):
    ``linprog(c, A_ub=[-q], b_ub=[-(1 - (ci - ci_min)/(ci_max - ci_min)·ξ)·q0], A_eq=[1…], b_eq=1, bounds=(0, 1))``
    — the same x hour by hour, with this project's θ from ξ, on Sprout-like hours (L0 best and dearest)."""
    linprog = pytest.importorskip("scipy.optimize").linprog
    rng = np.random.default_rng(11)
    H, ci_min, ci_max, xi = 300, 40.0, 700.0, 0.1
    ci = rng.uniform(ci_min, ci_max, H)
    e = np.sort(rng.uniform(1e-5, 5e-4, (H, 3)), axis=1)[:, ::-1]        # kWh/request, L0 the most
    t = np.sort(rng.uniform(0.5, 20.0, (H, 3)), axis=1)[:, ::-1]         # s/request
    cost = opt.cost_per_request(e, t, ci[:, None], 2e-4)
    q = np.sort(rng.dirichlet([38, 35, 27], H), axis=1)[:, ::-1]     # win shares, L0 the best
    theta = opt.theta_from_xi(ci, ci_min, ci_max, xi)
    x, feas = opt.solve_hours(cost, q, theta)
    assert feas.all()
    for h in range(H):
        scale = 1 - (ci[h] - ci_min) / (ci_max - ci_min) * xi
        r = linprog(cost[h], A_ub=[-q[h]], b_ub=[-scale * q[h, 0]], A_eq=[[1.0] * 3], b_eq=1, bounds=[(0, 1)] * 3)
        assert r.status == 0
        np.testing.assert_allclose(x[h], r.x, atol=1e-7)
    assert 0.05 < x[:, 0].mean() < 0.95 and (x[:, 1] > 1e-9).any() and (x[:, 2] > 1e-9).any()  # mixes, not corners


def test_exact_matches_pulp_on_real_instances():
    from sprout_core import grid, profiles

    prof = profiles.load_reference()
    rng = np.random.default_rng(0)
    for zone in ("US-TEX-ERCO", "DE", "FR"):
        tr = grid.load_trace(zone, 2023)
        for h in rng.integers(0, len(tr), 8):
            w = rng.dirichlet(np.ones(len(prof.tasks)))
            e, t, q = prof.under_mix(w)
            ci = float(tr.ci[h])
            c = e * ci + prof.k_emb * t
            theta = opt.theta_from_xi(ci, tr.min(), tr.max(), 0.1)
            a, b = opt.solve(c, q, theta), opt.solve_lp(c, q, theta)
            np.testing.assert_allclose(a.x, b.x, atol=1e-6)
            assert a.carbon_g == pytest.approx(b.carbon_g, abs=1e-6)
            assert a.quality >= theta - 1e-6


def test_frontier_is_monotone_and_contains_the_decision():
    c, q = [1.0, 0.2, 0.1], [0.4, 0.35, 0.25]
    qual, carb = opt.frontier(c, q, n=51)
    assert np.all(np.diff(qual) >= -1e-12) and np.all(np.diff(carb) >= -1e-12)
    assert qual[0] == pytest.approx(0.25 / 0.4) and qual[-1] == pytest.approx(1.0)
    d = opt.solve(c, q, 0.95)
    assert np.interp(0.95, qual, carb) == pytest.approx(d.carbon_g, rel=1e-6)
    X, cq, cc = opt.mix_cloud(c, q, step=0.1)
    assert X.shape == (66, 3) and np.allclose(X.sum(axis=1), 1)
    # no mix is cheaper than the optimum at its own quality
    xb, feas = opt.solve_exact(np.tile(c, (len(cq), 1)), q, cq * q[0])
    assert feas.all() and np.all(cc >= xb @ np.asarray(c) - 1e-12)


def test_draw_levels_is_seeded_and_follows_x():
    a = opt.draw_levels([0.2, 0.5, 0.3], 20000, rng=42)
    b = opt.draw_levels([0.2, 0.5, 0.3], 20000, rng=42)
    assert (a == b).all()
    freq = np.bincount(a, minlength=3) / len(a)
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.015)
    assert not (opt.draw_levels([0.2, 0.5, 0.3], 200, rng=1) == opt.draw_levels([0.2, 0.5, 0.3], 200, rng=2)).all()
    with pytest.raises(ValueError):
        opt.draw_levels([0.0, 0.0], 3)


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="levels"):
        opt.solve([1.0, 0.5], [0.5, 0.3, 0.2], 0.9)
    with pytest.raises(ValueError, match="finite"):
        opt.solve([1.0, float("nan")], [0.5, 0.5], 0.9)
