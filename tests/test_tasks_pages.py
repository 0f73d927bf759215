"""AppTest for what issue 6 adds to the pages: Playground task line, Optimizer per-task view, What-if SPROUT-TASK."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import public_data_available
from tests.tasks_fixtures import install, train_tiny_reference

TIMEOUT = 180
ROOT = Path(__file__).resolve().parent.parent
HAVE_PROMPTS = public_data_available("llama2-13b-a100", "prompts.csv")  # optional texts: the classifier trains on them
needs_texts = pytest.mark.skipif(not HAVE_PROMPTS, reason="needs the optional reference prompt texts "
                                 "(llama2-13b-a100/prompts.csv; not shipped)")
MATH = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?")


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    if not HAVE_PROMPTS:
        pytest.skip("needs the optional reference prompt texts (not shipped)")
    return train_tiny_reference(tmp_path_factory.mktemp("tiny_state"))


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    return tiny_llama2_dir


def _playground():
    return AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT)


@needs_texts
def test_playground_shows_the_predicted_task_and_the_policy(tiny_env, tiny_classifier_dir, _isolated_state):
    install(tiny_classifier_dir, _isolated_state)
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    lines = [i.value for i in at.info if "Predicted task" in i.value]
    assert lines, [i.value for i in at.info]
    assert "per-task policy" in lines[0] and "%" in lines[0]
    assert any(f"**{lv}**" in lines[0] for lv in ("L0", "L1", "L2"))


@needs_texts
def test_playground_offers_training_when_the_classifier_is_missing(tiny_env):
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    assert any("not trained yet" in c.value for c in at.caption)
    assert at.button(key="pg.task_train") is not None


def test_playground_says_so_when_classifier_and_data_are_missing(tiny_env, monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "no-data"))
    # a fresh process without the texts: the shipped zones make the task line's cache key (prompt, zone, hour)
    # equal to an earlier test's, whose data had the texts
    st.cache_data.clear()
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    assert any("public data it is trained on" in c.value and "missing" in c.value for c in at.caption)
    # the page still answers prompts
    at.number_input(key="pg.max_new").set_value(3)
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert [o.result.level for o in at.session_state["pg.results"].outcomes] == ["L0", "L1", "L2"]


OPT = str(ROOT / "pages/optimizer.py")
WHATIF = str(ROOT / "pages/whatif.py")


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def test_optimizer_per_task_view_with_known_labels():
    at = AppTest.from_file(OPT, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert any("plug-in estimate (confidence 0.5)" in c.value for c in at.caption)
    at.slider(key="opt.conf").set_value(0.5).run()
    m = _metrics(at)
    # at the plug-in confidence the pooled mix in the per-task view is the page's own decision
    assert m["One pooled mix"] == m["vs always-L0"]
    extra = float(m["Extra saving at the same quality"].split()[0])
    assert extra > 10.0
    assert any("labels assumed known" in c.value for c in at.caption)
    at.slider(key="opt.ci").set_value(124.0).run()  # ERCOT's cleanest hour: θ = 1, nothing may be given up
    m2 = _metrics(at)
    assert float(m2["One pooled mix"].split()[0]) == pytest.approx(float(m2["vs always-L0"].split()[0]), abs=0.051)
    assert float(m2["Extra saving at the same quality"].split()[0]) >= 0.0


@needs_texts
def test_optimizer_per_task_view_acts_on_predicted_tasks(tiny_classifier_dir, _isolated_state):
    install(tiny_classifier_dir, _isolated_state)
    at = AppTest.from_file(OPT, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    assert any("predicted" in c.value and "confusion matrix" in c.value for c in at.caption)
    assert "Extra saving at the same quality" in _metrics(at)


def test_whatif_offers_training_when_the_classifier_is_missing():
    at = AppTest.from_file(WHATIF, default_timeout=TIMEOUT).run()
    assert not at.exception
    from sprout_core.tasks import views as task_views

    if task_views.can_train_reference():
        assert any("SPROUT-TASK" in i.value and "not trained" in i.value for i in at.info)
        assert not at.button(key="wi.task_train").disabled
    else:  # a fresh clone without the optional prompt texts: it says why, and the button cannot start
        assert any("SPROUT-TASK" in i.value and "texts" in i.value and "not shipped" in i.value for i in at.info)
        assert at.button(key="wi.task_train").disabled
    picker = [ms for ms in at.multiselect if ms.key and ms.key.startswith("wi.strategies")][0]
    assert "SPROUT-TASK" not in picker.options


@needs_texts
def test_whatif_replays_sprout_task(tiny_classifier_dir, _isolated_state):
    install(tiny_classifier_dir, _isolated_state)
    at = AppTest.from_file(WHATIF, default_timeout=TIMEOUT).run()
    assert not at.exception
    picker = [ms for ms in at.multiselect if ms.key and ms.key.startswith("wi.strategies")][0]
    assert "SPROUT-TASK" in picker.options and "SPROUT-TASK" in picker.value
    at.multiselect(key="wi.zones").set_value(["NL"]).run()
    at.multiselect(key="wi.presets").set_value(["Feb"]).run()
    at.select_slider(key="wi.hours").set_value(168).run()
    at.button(key="wi.run").click().run()
    assert not at.exception and not at.error
    df = at.dataframe[0].value   # the per-strategy summary
    rows = df.set_index("strategy")
    assert "SPROUT-TASK" in rows.index
    assert rows.loc["SPROUT-TASK", "carbon saved, mean (%)"] > rows.loc["SPROUT", "carbon saved, mean (%)"]
