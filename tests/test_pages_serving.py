"""AppTest: the Home page's backend picker and the Playground on a (scripted) serving engine."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import store
from tests.fake_openai import FakeOpenAI

ROOT = Path(__file__).resolve().parent.parent
HOME, PLAYGROUND = str(ROOT / "pages/home.py"), str(ROOT / "pages/playground.py")


@pytest.fixture()
def fake():
    f = FakeOpenAI(models=["smollm2-135m-instruct"]).start()
    yield f
    f.stop()


@pytest.fixture()
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    monkeypatch.delenv("SPROUT_SERVER_URL", raising=False)
    return tiny_llama2_dir


def metrics(at):
    return {m.label: m.value for m in at.metric}


def shows_model(at, name: str) -> bool:
    """The Home page names the in-process model in full (bold), not in a metric that cuts it."""
    return any(f"**{name}**" in md.value for md in at.markdown)


def test_home_switches_to_a_server_and_back(tiny_env, fake, monkeypatch):
    monkeypatch.setenv("SPROUT_TEST_KEY", "sk-do-not-show")
    at = AppTest.from_file(HOME, default_timeout=120).run()
    assert shows_model(at, "tiny-llama-2-chat")
    at.radio(key="home.backend").set_value("server").run()
    # unreachable first: a clear message, the model stays
    at.text_input(key="home.server_url").input("http://127.0.0.1:9/v1")
    at.button(key="home.server_connect").click().run()
    assert not at.exception
    assert any("Cannot reach the server" in e.value and "previous backend stays" in e.value for e in at.error)
    assert shows_model(at, "tiny-llama-2-chat")
    # a wrong model name
    at.text_input(key="home.server_url").input(fake.url)
    at.text_input(key="home.server_model").input("llama-2-70b")
    at.button(key="home.server_connect").click().run()
    assert any("no model named 'llama-2-70b'" in e.value for e in at.error)
    # the right one, with a key from the environment that is never shown
    at.text_input(key="home.server_model").input("")
    at.text_input(key="home.server_key_env").input("SPROUT_TEST_KEY")
    at.button(key="home.server_connect").click().run()
    assert not at.exception
    m = metrics(at)
    assert m["Model (served)"] == "smollm2-135m-instruct" and m["Backend"] == "server"
    assert m["Server"] == f"127.0.0.1:{fake.port}" and m["Energy"] in ("estimated:cpu-tdp", "measured:rapl", "n/a")
    assert any("server schedules them" in c.value for c in at.caption)
    shown = " ".join([c.value for c in at.caption] + [x.value for x in at.markdown] + [str(x.value) for x in at.text_input])
    assert "SPROUT_TEST_KEY" in shown and "sk-do-not-show" not in shown
    # back to transformers
    at.radio(key="home.backend").set_value("transformers").run()
    at.button(key="home.backend_transformers").click().run()
    assert shows_model(at, "tiny-llama-2-chat")


def test_playground_streams_from_the_server_and_keeps_a_cut_answer(tiny_env, fake, monkeypatch):
    monkeypatch.setenv("SPROUT_SERVER_URL", fake.url)
    at = AppTest.from_file(PLAYGROUND, default_timeout=120).run()
    assert not at.exception
    assert any("server:127.0.0.1" in c.value for c in at.caption)
    at.text_area(key="pg.prompt").input("Why is the sky blue?")
    at.button(key="pg.run").click().run()
    assert not at.exception
    saved = [o.result for o in at.session_state["pg.results"].outcomes]
    assert [r.level for r in saved] == ["L0", "L1", "L2"] and all(r.backend == "server" for r in saved)
    assert fake.requests[1]["messages"][0]["content"].startswith("Why is the sky blue? ")  # user-turn directive
    df = store.query_requests()
    assert len(df) == 3 and set(df["energy_method"]) <= {"estimated:cpu-tdp", "measured:rapl", "n/a"}
    # the server breaks off mid-answer: the partial answers stay on screen, marked
    fake.mode = "cut"
    at.button(key="pg.run").click().run()
    assert not at.exception
    saved = [o.result for o in at.session_state["pg.results"].outcomes]
    assert all(r.partial and r.text == "The sky is" for r in saved)
    assert any("partial answer (3 tokens) is kept" in e.value for e in at.error)


def test_remote_server_energy_is_na_never_a_guess(tiny_env, fake, monkeypatch):
    from sprout_core.serving import energy as serving_energy

    real = serving_energy.is_local_host
    monkeypatch.setattr(serving_energy, "is_local_host", lambda host: False if host == "127.0.0.1" else real(host))
    monkeypatch.setenv("SPROUT_SERVER_URL", fake.url)
    at = AppTest.from_file(PLAYGROUND, default_timeout=120).run()
    at.text_area(key="pg.prompt").input("Why?")
    at.multiselect(key="pg.levels").set_value(["L0"])
    at.button(key="pg.run").click().run()
    assert not at.exception
    o = at.session_state["pg.results"].outcomes[0]
    assert o.reading.energy_j is None and o.reading.label() == "n/a (remote server)"
    assert o.carbon.operational_g is None
    home = AppTest.from_file(HOME, default_timeout=60).run()
    assert any("n/a (remote server)" in c.value for c in home.caption)
