"""SPROUT-TASK in the replay: registry, availability, metrics, CLI (reference data only)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sprout_core import simulate
from sprout_core.tasks import sim as ts
from tests.conftest import public_data_available
from tests.tasks_fixtures import install, train_tiny_reference

HAVE_PROMPTS = public_data_available("llama2-13b-a100", "prompts.csv")  # optional texts: the classifier trains on them


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    """A small reference classifier (15 training / 5 held-out prompts per task), trained once per module."""
    if not HAVE_PROMPTS:
        pytest.skip("needs the optional reference prompt texts (llama2-13b-a100/prompts.csv; not shipped)")
    return train_tiny_reference(tmp_path_factory.mktemp("tiny_state"))


@pytest.fixture
def trained(tiny_classifier_dir, _isolated_state):
    install(tiny_classifier_dir, _isolated_state)
    ts._PM_CACHE.clear()
    return _isolated_state


def _ref_and_trace():
    from sprout_core import grid, profiles

    return profiles.load_reference(), grid.load_trace("NL", 2023)


def test_registered_but_left_out_of_all_until_the_classifier_is_trained():
    prof, _ = _ref_and_trace()
    assert ts.STRATEGY_NAME in simulate.STRATEGIES
    assert ts.STRATEGY_NAME not in simulate.resolve_strategies("all", prof)
    note = ts.prepare(prof, "all")
    assert note and "classify" in note
    assert ts.prepare(prof, "SPROUT,BASE") is None


def test_named_for_a_profile_without_reference_tasks_is_a_clear_error():
    prof, _ = _ref_and_trace()
    from dataclasses import replace

    own = replace(prof, name="own", tasks=("all",), e_kwh=prof.e_kwh[:1], t_s=prof.t_s[:1], q=prof.q[:1])
    with pytest.raises(ValueError, match="reference tasks"):
        ts.prepare(own, "SPROUT-TASK")


def test_sprout_task_in_the_replay(trained):
    prof, tr = _ref_and_trace()
    assert ts.STRATEGY_NAME in simulate.resolve_strategies("all", prof)
    cfg = simulate.SimConfig(start_hour=800, hours=240, xi=0.1, seed=0)
    res = simulate.simulate(prof, tr, cfg, "all")
    sp, task = res.results["SPROUT"], res.results[ts.STRATEGY_NAME]
    # same evaluator schedule and its carbon charged the same way
    assert task.evaluator_runs == sp.evaluator_runs > 0
    assert task.evaluator_carbon_g == pytest.approx(sp.evaluator_carbon_g)
    assert task.carbon_saving_pct > sp.carbon_saving_pct
    assert 50.0 < task.quality_pct <= 110.0
    assert sum(task.mean_x.values()) == pytest.approx(1.0)
    np.testing.assert_allclose(task.x.sum(axis=1), 1.0)
    assert "accuracy" in task.note
    again = simulate.simulate(prof, tr, cfg, [ts.STRATEGY_NAME])
    assert again.results[ts.STRATEGY_NAME].carbon_g_per_request == pytest.approx(task.carbon_g_per_request)


def test_prediction_model_uses_held_out_judged_prompts(trained):
    prof, _ = _ref_and_trace()
    plan, score = ts.reference_prediction_models(prof)
    # 5 held-out judged prompts per task, split in two disjoint halves: the optimizer plans with one,
    # the replay scores the outcome with the other
    assert plan.n_prompts + score.n_prompts == 30 and plan.n_prompts == 12
    assert "planning half" in plan.source and "scoring half" in score.source
    assert ts.reference_prediction_model(prof) is plan
    for pm in (plan, score):
        np.testing.assert_allclose(pm.cond.sum(axis=2), 1.0)
        np.testing.assert_allclose(pm.confusion.sum(axis=1), 1.0)
        assert 0.0 <= pm.accuracy <= 1.0


def test_cli_simulate_with_sprout_task(trained, capsys):
    from sprout_core.cli import main

    rc = main(["simulate", "--zone", "NL", "--year", "2023", "--start-hour", "800", "--hours", "168",
               "--strategies", "SPROUT,SPROUT-TASK", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert {"BASE", "SPROUT", "SPROUT-TASK"} <= set(out)
    assert out["SPROUT-TASK"]["carbon_saving_pct"] > out["SPROUT"]["carbon_saving_pct"]


def test_cli_all_without_classifier_says_sprout_task_is_left_out(capsys):
    from sprout_core.cli import main

    rc = main(["simulate", "--zone", "NL", "--year", "2023", "--start-hour", "800", "--hours", "48",
               "--strategies", "all", "--json"])
    assert rc == 0
    cap = capsys.readouterr()
    assert "SPROUT-TASK" not in json.loads(cap.out)
    assert "SPROUT-TASK left out" in cap.err
