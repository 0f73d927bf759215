"""AppTest: the guided lesson walks from one prompt under three directives to a month's saving."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import store

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages/lesson.py")


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    monkeypatch.setenv("SPROUT_ZONE", "DE")


def charts(at):
    return at.get("plotly_chart")


def test_step_one_runs_three_directives_and_says_what_they_cost(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, at.exception
    assert at.radio(key="lesson.step").value.startswith("1 ·")
    assert any("Run the three answers" in i.value for i in at.info)
    at.number_input(key="lesson.max_new").set_value(8)
    at.button(key="lesson.go").click().run()
    assert not at.exception, at.exception
    run = at.session_state["lesson.run"]
    assert run.phase == "done" and [o.result.level for o in run.outcomes] == ["L0", "L1", "L2"]
    assert len(charts(at)) == 1
    assert any("With no directive (L0) the model wrote" in md.value for md in at.markdown)
    df = store.query_requests()
    assert len(df) == 3 and set(df["origin"]) == {"lesson"}  # the lesson's answers are in the History too
    assert at.button(key="lesson.back").disabled  # first step: no way back


def test_walks_from_a_prompt_to_a_months_saving(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.number_input(key="lesson.max_new").set_value(8)
    at.button(key="lesson.go").click().run()
    at.button(key="lesson.next").click().run()
    assert not at.exception, at.exception
    assert at.radio(key="lesson.step").value.startswith("2 ·")
    assert any("step 1's L0 answer" in c.value for c in at.caption)  # priced from the answer just measured
    assert any("at its cleanest" in md.value and "× dirtier" in md.value for md in at.markdown)
    at.button(key="lesson.next").click().run()
    assert at.radio(key="lesson.step").value.startswith("3 ·") and not at.exception
    assert any("the optimizer serves" in md.value for md in at.markdown)
    at.button(key="lesson.next").click().run()
    assert at.radio(key="lesson.step").value.startswith("4 ·") and not at.exception, at.exception
    month = [md.value for md in at.markdown if "% less carbon" in md.value or "% more carbon" in md.value]
    assert month and "of always-L0's judged quality" in month[0]
    assert at.button(key="lesson.next").disabled
    at.selectbox(key="lesson.zone").set_value("FR").run()
    assert any("**FR**" in md.value for md in at.markdown) and not at.exception
    assert len(charts(at)) == 1  # one chart per step


def test_grid_step_without_a_run_uses_the_reference_answer_and_says_so(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    at.button(key="lesson.next").click().run()
    assert not at.exception
    assert any("no answer from step 1 yet" in c.value and "reference:sprout-paper" in c.value for c in at.caption)
