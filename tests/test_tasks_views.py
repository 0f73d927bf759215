"""The page-facing helpers: per-task view vs pooled, its figure, and the Playground's prompt policy."""
from __future__ import annotations

import numpy as np
import pytest

from sprout_core import embeddings
from sprout_core.tasks import classifier as tc
from sprout_core.tasks import views
from sprout_core.tasks.classifier import TaskPrediction


def _profile():
    from sprout_core import profiles

    return profiles.load_reference()


def _clf(labels, confusion_counts):
    k = len(labels)
    return tc.TaskClassifier(tuple(labels), np.zeros((k, embeddings.DIM)), np.zeros(k),
                             np.asarray(confusion_counts), 100, int(np.sum(confusion_counts)), "test")


def test_per_task_view_saves_more_than_pooled_at_the_same_quality():
    prof = _profile()
    v = views.per_task_view(prof, prof.default_weights(), 300.0, 0.95)
    c = v.comparison
    assert c.saving_per_task_pct > c.saving_pooled_pct + 15
    assert c.per_task.quality_pct == pytest.approx(95.0, abs=1e-6)
    assert c.pooled_quality_pct == pytest.approx(95.0, abs=1e-6)
    tab = v.table()
    assert tab["mix"].tolist()[-1].startswith("pooled")
    np.testing.assert_allclose(tab[list(prof.levels)].sum(axis=1), 100.0)
    fig = views.per_task_figure(v)
    assert [tr.name for tr in fig.data] == list(prof.levels)
    assert list(fig.data[0].x) == list(prof.tasks) + ["pooled"]


def test_a_bad_classifier_shrinks_the_extra_saving():
    prof = _profile()
    good = views.per_task_view(prof, prof.default_weights(), 300.0, 0.95)
    T = len(prof.tasks)
    bad = views.per_task_view(prof, prof.default_weights(), 300.0, 0.95, confusion=np.full((T, T), 1.0 / T))
    assert bad.confusion_used
    assert bad.comparison.extra_saving_pp == pytest.approx(0.0, abs=1e-6)  # no information → pooled
    assert good.comparison.extra_saving_pp > 15


def test_prompt_policy_follows_the_zone_floor_and_the_predicted_task():
    prof = _profile()
    T = len(prof.tasks)
    clf = _clf(prof.tasks, np.eye(T) * 50)
    probs = {t: (0.9 if t == "math" else 0.02) for t in prof.tasks}
    pred = TaskPrediction("math", 0.9, probs)
    clean = views.prompt_policy(clf, prof, pred, ci_g_per_kwh=100.0, ci_min=100.0, ci_max=500.0, xi=0.1)
    assert clean.theta == pytest.approx(1.0)
    assert "ξ = 0.1" in clean.basis
    dirty = views.prompt_policy(clf, prof, pred, ci_g_per_kwh=500.0, ci_min=100.0, ci_max=500.0, xi=0.1)
    assert dirty.theta == pytest.approx(0.9)
    assert sum(dirty.x.values()) == pytest.approx(1.0)
    assert dirty.level in prof.levels and dirty.x[dirty.level] == max(dirty.x.values())
    # math keeps L0 where it wins most: at the cleanest hour the policy gives it L0
    assert clean.level == "L0"
    assert "math" in clean.sentence() and "%" in clean.sentence()
    slider = views.prompt_policy(clf, prof, pred, ci_g_per_kwh=300.0)
    assert slider.theta == pytest.approx(0.95) and "fixed" in slider.basis


def test_prompt_policy_refuses_a_classifier_with_other_tasks():
    prof = _profile()
    clf = _clf(["cooking", "math"], np.eye(2) * 5)
    with pytest.raises(ValueError, match="not the profile's"):
        views.prompt_policy(clf, prof, TaskPrediction("math", 1.0, {"math": 1.0, "cooking": 0.0}), 300.0)
