"""The one quality estimate (issue 18 item 1): ties, length and position control, intervals, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sprout_core.evaluate import shares as S

LV = ["L0", "L1", "L2"]


def _synthetic(n: int, a, b: float, c=None, seed: int = 0, identical_share: float = 0.0):
    """Verdicts drawn from a known conditional logit: level effects ``a``, length coefficient ``b`` per
    log(word), position effects ``c`` (shown order random per verdict). Returns the verdict table and
    the true equal-length shares."""
    rng = np.random.default_rng(seed)
    L = len(a)
    # lengths: L0 longer on average, so length bias inflates L0's raw share
    words = np.exp(rng.normal([5.0, 4.0, 3.5], 0.6, size=(n, L))).round().clip(1, None)
    groups = np.tile(np.arange(L), (n, 1))
    same = rng.random(n) < identical_share
    words[same, 2] = words[same, 1]
    groups[same, 2] = 1
    order = np.array([rng.permutation(L) for _ in range(n)])          # order[k, i] = position of level i
    u = np.asarray(a)[None] + b * np.log(words)
    if c is not None:
        u = u + np.asarray(c)[order]
    p = np.exp(u - u.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    win = np.array([rng.choice(L, p=pk) for pk in p])
    shown = [",".join(np.array(LV)[np.argsort(o)]) for o in order]
    df = pd.DataFrame({"task": "t", "prompt_id": np.arange(n), "judge": "j", "winner": np.array(LV)[win],
                       "order": shown if c is not None else ""})
    for i, lv in enumerate(LV):
        df[f"words_{lv}"] = words[:, i]
        df[f"group_{lv}"] = groups[:, i]
    true = np.exp(a) / np.exp(a).sum()
    return df, true


def test_identical_answers_split_the_credit_and_rows_sum_to_one():
    texts = [["A b", "same  answer", "Same answer"], ["x", "y", "z"], ["q", "q", "q"]]
    y = S.prompt_credits(["L1", "L0", "L2"], texts=texts, levels=LV, control=False)
    assert y[0].tolist() == [0.0, 0.5, 0.5]
    assert y[1].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(y[2], [1 / 3] * 3)
    # a named tie and an invalid verdict
    y = S.prompt_credits([("L0", "L2"), None], texts=texts[1:], levels=LV, control=False)
    assert y[0].tolist() == [0.5, 0.0, 0.5] and np.isnan(y[1]).all()
    yc = S.prompt_credits(["L0", "L1", "L2"] * 40, texts=[["a b c d", "a b", "a"]] * 120, levels=LV, control=True)
    np.testing.assert_allclose(yc.sum(1), 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synthetic_length_and_position_bias_are_recovered(seed):
    a, b, c = [0.0, 0.1, -0.2], 0.6, [0.0, -0.5, -0.9]
    df, true = _synthetic(3000, a, b, c, seed=seed)
    est = S.quality_estimate(df, "j")
    ts = est.tasks["t"]
    assert est.position_known and ts.n == 3000
    assert abs(ts.length_coef - b) < 3.5 * ts.length_coef_se
    for k in (1, 2):
        assert abs(ts.position_effect[k] - c[k]) < 3.5 * ts.position_se[k]
    # the controlled share is the equal-length share; the raw one is inflated for the long L0
    for i, lv in enumerate(LV):
        s = ts.levels[lv]
        assert s.ci_low_pct <= 100 * true[i] <= s.ci_high_pct + 1.5   # (slack: 3 seeds × 3 levels)
        assert s.ci_low_pct <= s.controlled_pct <= s.ci_high_pct
    assert ts.levels["L0"].raw_pct > 100 * true[0] + 5
    assert sum(s.raw_pct for s in ts.levels.values()) == pytest.approx(100)
    assert sum(s.controlled_pct for s in ts.levels.values()) == pytest.approx(100)


def test_interval_coverage_over_many_seeds():
    """The 95 % interval of the controlled share holds the true share in about 95 % of draws."""
    a, b = [0.0, -0.3, -0.6], 0.4
    hits = []
    for seed in range(40):
        df, true = _synthetic(600, a, b, seed=100 + seed)
        ts = S.quality_estimate(df, "j").tasks["t"]
        hits += [ts.levels[lv].ci_low_pct <= 100 * true[i] <= ts.levels[lv].ci_high_pct for i, lv in enumerate(LV)]
    assert 0.88 <= np.mean(hits) <= 0.995


def test_no_length_effect_leaves_shares_near_raw_and_coefficient_near_zero():
    df, true = _synthetic(4000, [0.0, 0.0, 0.0], 0.0, seed=7)
    ts = S.quality_estimate(df, "j").tasks["t"]
    assert abs(ts.length_coef) < 3.5 * ts.length_coef_se
    for lv in LV:
        assert abs(ts.levels[lv].controlled_pct - ts.levels[lv].raw_pct) < 4


def test_two_passes_that_disagree_are_a_tie():
    df = pd.DataFrame({"task": "t", "prompt_id": [1, 1, 2, 2], "judge": "j", "winner": ["L0", "L1", "L2", "L2"],
                       "order": ["L0,L1", "L1,L0", "L0,L2", "L2,L0"]})
    est = S.quality_estimate(df, "j", control=False, levels=["L0", "L1", "L2"])
    ts = est.tasks["t"]
    assert ts.n == 2 and ts.ties == 1
    assert ts.levels["L0"].raw_pct == pytest.approx(25) and ts.levels["L2"].raw_pct == pytest.approx(50)


def test_control_off_gives_raw_and_invalid_verdicts_are_excluded():
    df, _ = _synthetic(300, [0.0, 0.0, 0.0], 0.5, seed=3)
    df.loc[:9, "winner"] = None
    est = S.quality_estimate(df, "j", control=False)
    ts = est.tasks["t"]
    assert ts.n == 290 and ts.invalid == 10 and ts.length_coef is None
    for lv in LV:
        assert ts.levels[lv].controlled_pct == ts.levels[lv].raw_pct


def test_a_level_that_never_wins_stays_finite():
    df, _ = _synthetic(200, [0.0, 0.0, -30.0], 0.3, seed=4)
    ts = S.quality_estimate(df, "j").tasks["t"]
    assert ts.levels["L2"].controlled_pct < 1 and all(np.isfinite(ts.levels[lv].controlled_pct) for lv in LV)


# ----------------------------------------------------------------------------------- reference profile

@pytest.fixture(scope="module")
def reference_json():
    import contextlib
    import io

    from sprout_core.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["quality", "--profile", "llama2-13b-a100", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_quality_json_on_the_reference_profile(reference_json):
    out = reference_json
    assert set(out) == {"profile", "judge", "length_unit", "tasks"} and out["profile"] == "llama2-13b-a100"
    assert set(out["tasks"]) == {"alpaca", "math", "mmlu", "naturalqa", "scienceqa", "triviaqa"}
    for t in out["tasks"].values():
        assert set(t) == {"n", "ties", "length_coef", "length_coef_se", "levels"}
        assert t["n"] == 2000 and 0 < t["ties"] < t["n"]
        for key in ("raw_pct", "controlled_pct"):
            assert sum(v[key] for v in t["levels"].values()) == pytest.approx(100)
        for v in t["levels"].values():
            assert set(v) == {"raw_pct", "controlled_pct", "ci_low_pct", "ci_high_pct"}
            assert v["ci_low_pct"] <= v["controlled_pct"] <= v["ci_high_pct"]
    lv = {t: out["tasks"][t]["levels"]["L0"] for t in out["tasks"]}
    assert lv["alpaca"]["controlled_pct"] < lv["alpaca"]["raw_pct"]
    assert lv["math"]["controlled_pct"] < lv["math"]["raw_pct"]
    assert lv["scienceqa"]["controlled_pct"] > lv["scienceqa"]["raw_pct"]
    # the judge prefers length where the data says so (signs of the fit)
    assert out["tasks"]["alpaca"]["length_coef"] > 0 and out["tasks"]["math"]["length_coef"] > 0
    assert out["tasks"]["scienceqa"]["length_coef"] < 0


def test_reference_lengths_ship_as_numbers_and_match_the_texts(fresh_clone):
    from sprout_core import refdata

    lens = refdata.answer_lengths()
    assert lens is not None and len(lens) == 12_000
    assert {"words_L0", "group_L2"} <= set(lens.columns)
    same12 = (lens["group_L2"] == 1).mean()
    assert 0.1 < same12 < 0.3  # about 19 % of triples have identical L1 and L2 texts


def test_unknown_judge_is_a_clear_error(capsys):
    from sprout_core.cli import main

    assert main(["quality", "--profile", "llama2-13b-a100", "--judge", "nobody"]) == 2
    assert "nobody" in capsys.readouterr().err


def test_reference_credits_average_to_the_estimate(fresh_clone):
    from sprout_core import refdata
    from sprout_core.evaluate.reference import reference_credits, reference_quality

    est = reference_quality(control=True)
    cr = reference_credits(control=True)
    jud = refdata.judgments()
    assert cr.shape == (len(jud), 3)
    np.testing.assert_allclose(cr.sum(1), 1.0)
    for task in ("alpaca", "scienceqa"):
        m = (jud["task"] == task).to_numpy()
        np.testing.assert_allclose(100 * cr[m].mean(0), [est.tasks[task].levels[lv].controlled_pct for lv in LV], atol=1e-6)


def test_a_prompt_with_one_invalid_pass_counts_once_by_its_valid_pass():
    df = pd.DataFrame({"task": "t", "prompt_id": [1, 1, 2, 2], "judge": "j", "winner": ["L0", None, "L1", "L1"]})
    ts = S.quality_estimate(df, "j", control=False, levels=["L0", "L1"]).tasks["t"]
    assert ts.n == 2 and ts.levels["L0"].raw_pct == pytest.approx(50) and ts.invalid == 1


def test_quality_json_on_the_own_profile_reads_the_shipped_evaluation(capsys):
    from sprout_core.cli import main

    assert main(["quality", "--profile", "own", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["profile"] == "own" and out["judge"] == "reference" and out["tasks"]
    judged = [t for t in out["tasks"].values() if t["n"] > 0]
    assert judged
    for t in judged:
        assert sum(v["raw_pct"] for v in t["levels"].values()) == pytest.approx(100)
    for t in out["tasks"].values():
        if t["n"] == 0:  # nothing judged (no reference answers): n/a, never 0
            assert all(v["raw_pct"] is None for v in t["levels"].values())
