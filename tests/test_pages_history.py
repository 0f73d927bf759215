"""AppTest: the History page lists stored requests, filters them, and survives a broken database."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import store

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages/history.py")


def seed():
    rows = [
        dict(model="smol", level="L0", energy_j=12.0, energy_method="estimated:cpu-tdp", zone="DE", new_tokens=60,
             prompt="why is the sky blue", answer="Rayleigh scattering ...", carbon_total_g=0.002, origin="playground"),
        dict(model="smol", level="L1", energy_j=3.0, energy_method="estimated:cpu-tdp", zone="DE", new_tokens=15,
             prompt="why is the sky blue", answer="Scattering.", carbon_total_g=0.0006, origin="playground"),
        dict(model="llama", level="L0", energy_j=None, energy_method="n/a", zone="FR", new_tokens=40,
             prompt="capital of france", answer="Paris", origin="cli"),
    ]
    for r in rows:
        store.record_request(**r)


def test_empty_history_says_how_to_fill_it():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("Run a prompt in the Playground" in i.value for i in at.info)


def test_lists_every_request_and_filters():
    seed()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    df = at.dataframe[0].value
    assert len(df) == 3
    assert list(df.columns[:3]) == ["time (UTC)", "status", "level"]  # key columns first
    assert "task" not in df.columns  # no row has a task: no empty column
    assert df["energy (J)"].isna().sum() == 1  # unknown stays unknown
    assert sorted(df["carbon (mg CO₂e)"].dropna().tolist()) == pytest.approx([0.6, 2.0])  # mg, not "0.0006 g"
    assert str(df["time (UTC)"].dtype).startswith("datetime64")  # shown as a readable date, not an ISO string
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Requests"] == "3" and metrics["Energy unknown"] == "1 request"
    assert any("estimated:cpu-tdp" in c.value and "15 J" in c.value for c in at.caption)
    at.multiselect(key="hist.levels").set_value(["L1"]).run()
    assert list(at.dataframe[0].value["level"]) == ["L1"]
    at.multiselect(key="hist.levels").set_value([]).run()
    at.text_input(key="hist.text").input("paris").run()
    assert list(at.dataframe[0].value["model"]) == ["llama"]
    at.text_input(key="hist.text").input("no such words").run()
    assert any("No stored requests match these filters" in i.value for i in at.info)


def test_aborted_answers_and_tasks_are_shown():
    seed()
    store.record_request(model="smol", level="L2", energy_j=0.5, energy_method="estimated:cpu-tdp", new_tokens=3,
                         finish_reason="aborted", task="qa", prompt="why", answer="Because")
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    df = at.dataframe[0].value
    assert "task" in df.columns and df["task"].tolist().count("qa") == 1
    assert sorted(df["status"]) == ["aborted", "complete", "complete", "complete"]
    assert {m.label: m.delta for m in at.metric}["Requests"] == "1 aborted"
    at.multiselect(key="hist.status").set_value(["aborted"]).run()
    assert list(at.dataframe[0].value["level"]) == ["L2"]


def test_new_rows_appear_after_restart():
    seed()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert len(at.dataframe[0].value) == 3
    store.record_request(model="smol", level="L2", energy_j=1.0, energy_method="estimated:cpu-tdp")
    at2 = AppTest.from_file(PAGE, default_timeout=60).run()  # a fresh session, same database file
    assert len(at2.dataframe[0].value) == 4


def test_corrupt_database_shows_a_message(_isolated_state):
    (_isolated_state / store.DB_NAME).write_bytes(b"definitely not sqlite" * 50)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("not a readable SQLite database" in e.value for e in at.error)
