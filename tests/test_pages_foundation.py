"""AppTest: Home and Playground run, answer, and handle bad input (tiny model via SPROUT_MODEL)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

TIMEOUT = 120
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    return tiny_llama2_dir


def test_home_shows_the_loaded_model(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert any("**tiny-llama-2-chat**" in md.value for md in at.markdown)  # the full name, not a cut metric
    assert values["Device"] == "cpu" and values["Dtype"] == "float32"
    assert "Load time" in values and values["Load time"].endswith(" s")


def test_home_keeps_the_model_when_a_folder_is_broken(tiny_env, tmp_path):
    at = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=TIMEOUT).run()
    at.radio[0].set_value("Local folder").run()
    at.text_input[0].input(str(tmp_path / "no-such-model")).run()
    at.button[0].click().run()
    assert not at.exception
    assert any("no such folder" in e.value and "previous model stays" in e.value for e in at.error)
    assert any("**tiny-llama-2-chat**" in md.value for md in at.markdown)


def test_playground_answers_every_level(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    at.text_area(key="pg.prompt").input("what is the capital of france")
    at.number_input(key="pg.max_new").set_value(5)
    at.button(key="pg.run").click().run()
    assert not at.exception
    run = at.session_state["pg.results"]
    assert run.phase == "done" and not run.cancelled
    assert [o.result.level for o in run.outcomes] == ["L0", "L1", "L2"]
    assert all(o.result.new_tokens == 5 and o.result.error is None for o in run.outcomes)
    table = at.dataframe[0].value
    assert list(table["level"]) == ["L0", "L1", "L2"] and list(table["status"]) == ["complete"] * 3
    assert list(table["fewer tokens than L0"])[0] == "—"
    assert not at.text_area(key="pg.prompt").disabled and not at.button(key="pg.run").disabled  # unlocked again


def test_playground_empty_prompt_runs_nothing(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT).run()
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert any("Type a prompt first" in w.value for w in at.warning)
    assert "pg.results" not in at.session_state


def playground_run(prompt: str, max_new: int) -> AppTest:
    """The Playground after one run of ``prompt``."""
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT).run()
    at.text_area(key="pg.prompt").input(prompt)
    at.number_input(key="pg.max_new").set_value(max_new)
    at.button(key="pg.run").click().run()
    return at


def test_playground_oversized_prompt_is_refused_and_keeps_earlier_answers(tiny_env):
    at = playground_run("hello world", 3)
    first = at.session_state["pg.results"]
    at.text_area(key="pg.prompt").input("hello world " * 300)  # > 256-token context of the tiny model
    at.button(key="pg.run").click().run()
    assert not at.exception
    assert any("reads at most 256 tokens" in e.value for e in at.error)
    assert at.session_state["pg.results"] is first


def test_playground_custom_level(tiny_env):
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT).run()
    at.text_input(key="pg.new_level").input("L3")
    at.text_input(key="pg.new_text").input("Answer in ten words.")
    at.button[0].click().run()  # "Add level"
    assert not at.exception
    assert "L3" in at.multiselect(key="pg.levels").options[-1]


def test_playground_without_a_model_explains(monkeypatch, tmp_path):
    monkeypatch.setenv("SPROUT_MODEL", str(tmp_path / "nothing-here"))
    at = AppTest.from_file(str(ROOT / "pages/playground.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert any("no such folder" in e.value for e in at.error)


def test_playground_run_cut_mid_answer_is_marked_cancelled(tiny_env):
    """A run whose script was interrupted mid-answer (reload, page change) is shown as cancelled, never as current."""
    at = playground_run("what is the capital of france", 4)
    run = at.session_state["pg.results"]
    run.outcomes = run.outcomes[:1]  # as if the script stopped while L1 was being generated
    run.phase = "running"
    at.run()
    assert not at.exception
    assert run.phase == "cut"
    assert any("This run was cancelled" in w.value and "not run: L1, L2" in w.value for w in at.warning)
    table = at.dataframe[0].value
    assert list(table["status"]) == ["complete", "not run", "not run"]
    assert not at.button(key="pg.run").disabled
