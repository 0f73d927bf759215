"""Aggregation: win shares with invalid excluded, bootstrap intervals, agreement and kappa."""
from __future__ import annotations

import pytest

from sprout_core.evaluate.aggregate import agreement, agreement_matrix, cohen_kappa, win_shares, win_shares_by_task

LEVELS = ["L0", "L1", "L2"]


def test_win_shares_excludes_and_counts_invalid():
    ws = win_shares(["L0", "L0", "L1", None, "L2", "L0", None], LEVELS)
    assert ws.n_valid == 5 and ws.n_invalid == 2
    assert ws.share == pytest.approx({"L0": 0.6, "L1": 0.2, "L2": 0.2})
    assert ws.normalised["L0"] == 1.0 and ws.normalised["L1"] == pytest.approx(1 / 3)
    # one baseline rule: relative to L0, also when another level wins more (was: ÷ the largest share)
    ws = win_shares(["L1", "L1", "L0", "L2"], LEVELS)
    assert ws.normalised == pytest.approx({"L0": 1.0, "L1": 2.0, "L2": 1.0})
    assert win_shares(["L1"], LEVELS).normalised == {"L0": None, "L1": None, "L2": None}
    lo, hi = ws.ci["L0"]
    assert 0 <= lo < 0.6 < hi <= 1


def test_bootstrap_interval_narrows_with_more_prompts():
    small = win_shares(["L0", "L1"] * 5, LEVELS)
    big = win_shares(["L0", "L1"] * 500, LEVELS)
    w = lambda ws: ws.ci["L0"][1] - ws.ci["L0"][0]  # noqa: E731 - a one-line width of the interval, local to this test
    assert w(big) < w(small) / 3
    assert big.ci["L2"] == (0.0, 0.0)


def test_no_valid_verdicts_is_na():
    ws = win_shares([None, None], LEVELS)
    assert ws.share["L0"] is None and ws.n_invalid == 2


def test_by_task_pools_all():
    out = win_shares_by_task([("math", "L0"), ("math", "L1"), ("chat", "L2")], LEVELS)
    assert set(out) == {"math", "chat", "all"} and out["all"].n_valid == 3
    assert out["chat"].share["L2"] == 1.0


def test_cohen_kappa_known_values():
    assert cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"]) == pytest.approx(1.0)
    # po = 0.5, pe = 0.5 → 0
    assert cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"]) == pytest.approx(0.0)
    # textbook: 20/5/10/15 table → po=.7, pe=.5 → .4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None


def test_agreement_skips_missing_and_invalid():
    a = {1: "L0", 2: "L1", 3: None, 4: "L2"}
    b = {1: "L0", 2: "L2", 3: "L1", 5: "L0"}
    ag = agreement(a, b, "x", "y")
    assert ag.n == 2 and ag.agree == 1 and ag.percent == 50.0
    m = agreement_matrix({"x": a, "y": b})
    assert m[("x", "x")].percent == 100.0 and m[("x", "y")].n == 2
