"""AppTest: the Playground's energy and carbon parts (tiny random Llama as the generator)."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import defaults, store

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages/playground.py")


@pytest.fixture
def tiny_env(monkeypatch, tiny_llama2_dir):
    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    return tiny_llama2_dir


def run_prompt(at, prompt="what is the capital of france", max_new=6):
    at.text_area(key="pg.prompt").input(prompt)
    at.number_input(key="pg.max_new").set_value(max_new)
    at.button(key="pg.run").click().run()
    assert not at.exception
    return at


def energy_table(at):
    """The page's table of every measurement (J, ±, operational/embodied g)."""
    return next(d.value for d in at.dataframe if "± energy (J)" in d.value.columns)


def use_slider(at, ci):
    if "Grid trace" in at.radio(key="pg.carbon.mode").options:
        at.radio(key="pg.carbon.mode").set_value("Slider").run()
    at.slider(key="pg.carbon.override").set_value(ci).run()
    assert not at.exception


def test_energy_table_labels_savings_and_storage(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception
    use_slider(at, 400)
    run_prompt(at)
    t = energy_table(at)
    assert list(t["level"]) == ["L0", "L1", "L2"]
    assert set(t["energy method"]) == {"estimated:cpu-tdp"}  # the label travels with the number
    assert (t["energy (J)"] > 0).all() and t["± energy (J)"].notna().all()
    assert t["operational (g CO₂e)"].iloc[0] == pytest.approx(t["energy (J)"].iloc[0] / 3.6e6 * 400)
    assert pd_isna(t["energy saving vs L0 (%)"].iloc[0]) and t["energy saving vs L0 (%)"].iloc[1:].notna().all()
    assert any("estimated:cpu-tdp" in c.value and "400.0 g CO₂e/kWh" in c.value for c in at.caption)
    assert len(at.get("plotly_chart")) >= 2
    df = store.query_requests()
    assert len(df) == 3 and df["run_id"].nunique() == 1 and set(df["origin"]) == {"playground"}
    assert sorted(df["level"]) == ["L0", "L1", "L2"] and (df["ci_g_per_kwh"] == 400).all()


def test_changing_intensity_changes_carbon_not_energy(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    use_slider(at, 200)
    run_prompt(at)
    before = energy_table(at)
    use_slider(at, 800)
    after = energy_table(at)
    assert list(after["energy (J)"]) == list(before["energy (J)"])
    for a, b in zip(after["operational (g CO₂e)"], before["operational (g CO₂e)"]):
        assert a == pytest.approx(4 * b)
    assert list(after["embodied (g CO₂e)"]) == list(before["embodied (g CO₂e)"])


def test_zone_trace_and_elsewhere_chart(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert at.radio(key="pg.carbon.mode").value == "Grid trace"
    run_prompt(at)
    assert any(f"{defaults.DEFAULT_ZONE} {defaults.DEFAULT_YEAR} yearly mean" in c.value for c in at.caption)  # one default
    assert len(at.get("plotly_chart")) == 3  # energy, carbon, same answers elsewhere
    at.radio(key="pg.carbon.when").set_value("One hour").run()
    assert not at.exception
    assert any("UTC (direct), Electricity Maps" in c.value for c in at.caption)


def test_broken_database_keeps_the_answers(tiny_env, _isolated_state):
    (_isolated_state / store.DB_NAME).write_bytes(b"not sqlite" * 100)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    run_prompt(at, max_new=3)
    assert any("Not saved to the history" in w.value for w in at.warning)
    assert len(energy_table(at)) == 3


def pd_isna(v):
    import pandas as pd

    return pd.isna(v)


def test_run_metrics_carry_labels(tiny_env):
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    use_slider(at, 500)
    run_prompt(at, max_new=4)
    m = {x.label: x for x in at.metric}
    t = energy_table(at)
    assert "estimated:cpu-tdp" in m["Energy of this run"].delta
    assert "500 g/kWh" in m["Carbon of this run"].delta
    assert parse_joules(m["Energy of this run"].value) == pytest.approx(t["energy (J)"].sum(), rel=0.01)
    assert parse_grams(m["Carbon of this run"].value) == pytest.approx(t["total (g CO₂e)"].sum(), rel=0.01)


def parse_joules(text):
    value, unit = text.split()[:2]
    return float(value.replace(",", "")) * {"mJ": 1e-3, "J": 1.0, "kJ": 1e3, "Wh": 3600.0}[unit]


def parse_grams(text):
    value, unit = text.split()[:2]
    return float(value.replace(",", "")) * {"µg": 1e-6, "mg": 1e-3, "g": 1.0, "kg": 1e3}[unit]
