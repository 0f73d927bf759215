"""AppTest for what issue 6 adds to the pages: Playground task line, Optimizer per-task view, What-if SPROUT-TASK."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import public_data_available
from tests.tasks_fixtures import install, train_tiny_reference

TIMEOUT = 180
ROOT = Path(__file__).resolve().parent.parent
HAVE_REF = public_data_available("llama2-13b-a100", "requests.csv") and public_data_available("carbon")
needs_ref = pytest.mark.skipif(not HAVE_REF, reason="reference profile and carbon traces not present")
MATH = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
        "How many clips did Natalia sell altogether in April and May?")


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    if not HAVE_REF:
        pytest.skip("reference data not present")
    return train_tiny_reference(tmp_path_factory.mktemp("tiny_state"))


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    return tiny_llama2_dir


def _playground():
    return AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT)


@needs_ref
def test_playground_shows_the_predicted_task_and_the_policy(tiny_env, tiny_classifier_dir, _isolated_state):
    install(tiny_classifier_dir, _isolated_state)
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    lines = [i.value for i in at.info if "Predicted task" in i.value]
    assert lines, [i.value for i in at.info]
    assert "per-task policy" in lines[0] and "%" in lines[0]
    assert any(f"**{lv}**" in lines[0] for lv in ("L0", "L1", "L2"))


@needs_ref
def test_playground_offers_training_when_the_classifier_is_missing(tiny_env):
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    assert any("not trained yet" in c.value for c in at.caption)
    assert at.button(key="pg.task_train") is not None


def test_playground_says_so_when_classifier_and_data_are_missing(tiny_env, monkeypatch, tmp_path):
    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "no-data"))
    at = _playground().run()
    at.text_area(key="pg.prompt").input(MATH).run()
    assert not at.exception
    assert any("public data it is trained on" in c.value and "missing" in c.value for c in at.caption)
    # the page still answers prompts
    at.number_input(key="pg.max_new").set_value(3)
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert [r.level for r in at.session_state["pg.results"]["results"]] == ["L0", "L1", "L2"]
