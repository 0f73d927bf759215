"""AppTest on a simulated fresh clone (issue 13): no public data at all (SPROUT_DATA_DIR is an empty folder),
so everything the Optimizer, What-if and Evaluations pages show comes from the data shipped in data/."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import grid
from tests.test_grid_user import two_col
from tests.test_shipped_data import ZONES_2023, ZONES_2024

ROOT = Path(__file__).resolve().parent.parent
OPT = str(ROOT / "pages/optimizer.py")
WHATIF = str(ROOT / "pages/whatif.py")
EVAL = str(ROOT / "pages/evaluations.py")
TIMEOUT = 120
STRATEGIES = {"BASE", "CO2-OPT", "STATIC", "SPROUT", "ORACLE", "MODEL-OPT"}


pytestmark = pytest.mark.usefixtures("fresh_clone")  # no public data: only what ships in data/


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def test_optimizer_works_on_shipped_data_for_both_years():
    at = AppTest.from_file(OPT, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    assert _metrics(at)["Expected carbon"].endswith("g CO₂e")
    assert at.selectbox(key="opt.year").options == ["2023", "2024"]
    assert set(at.selectbox(key="opt.zone").options) >= {f"{z} — Electric Reliability Council of Texas, Inc."
                                                         for z in ["US-TEX-ERCO"]}
    assert any(grid.ATTRIBUTION in c.value for c in at.caption)
    assert any("reference:sprout-paper" in c.value for c in at.caption)
    at.selectbox(key="opt.year").set_value(2024).run()
    assert not at.exception and not at.error
    assert {o.split(" — ")[0] for o in at.selectbox(key="opt.zone").options} == ZONES_2024
    at.selectbox(key="opt.zone").set_value("CA-ON").run()  # CA-ON has hours at 0 g/kWh
    assert not at.exception and not at.error
    assert any("CA-ON 2024: min 0" in c.value for c in at.caption)


@pytest.mark.parametrize("year,zones", [(2023, ZONES_2023), (2024, ZONES_2024)])
def test_whatif_replays_every_shipped_zone_with_all_strategies(year, zones):
    at = AppTest.from_file(WHATIF, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.selectbox(key="wi.year").set_value(year).run()
    assert {o.split(" — ")[0] for o in at.multiselect(key="wi.zones").options} == zones
    at.multiselect(key="wi.zones").set_value(sorted(zones)).run()
    at.multiselect(key="wi.presets").set_value(["Feb"]).run()
    at.select_slider(key="wi.hours").set_value(168).run()
    picker = [ms for ms in at.multiselect if ms.key and ms.key.startswith("wi.strategies")][0]
    assert set(picker.value) == STRATEGIES  # SPROUT-TASK needs a trained classifier (optional texts)
    at.button(key="wi.run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    df = next(d.value for d in at.dataframe if "zone" in d.value.columns)   # every replay
    assert set(df["zone"]) == zones and set(df["strategy"]) == STRATEGIES
    assert len(df) == len(zones) * len(STRATEGIES)
    carbon = next(c for c in df.columns if c.endswith("g CO₂e per request"))   # one unit for the column (µg/mg/g)
    assert df[carbon].gt(0).all()
    assert any(grid.ATTRIBUTION in c.value for c in at.caption)


def test_evaluations_shows_the_paper_verdicts_without_texts():
    at = AppTest.from_file(EVAL, default_timeout=TIMEOUT).run()
    at.radio(key="ev.source").set_value("paper").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    metrics = _metrics(at)
    assert metrics["Prompts judged"] == "12000"
    assert metrics["q L0"].startswith("37.9")  # mean of the six tasks' length-controlled GPT-4 L0 shares (raw 38.1)
    assert any("texts are not shipped" in i.value and "responses.jsonl" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert len(table) == 12000 and table["L0 energy (J)"].notna().all()
    assert any("not shipped" in c.value for c in at.caption)  # the detail: verdicts and energy, no texts
    assert not [t for t in at.text_area if t.key and t.key.startswith("ev.detail.ans")]
    at.multiselect(key="ev.tasks").set_value(["mmlu"]).run()
    assert _metrics(at)["q L1"].startswith("35.1")  # controlled (raw 36.9 %)
    assert not at.button(key="ev.handoff").disabled  # the verdicts can be handed to the Optimizer


def test_users_trace_is_offered_in_the_zone_lists_and_can_be_removed_from_the_sidebar():
    grid.add_user_trace(two_col(year=2024), "lab.csv", zone="MY-LAB", year=2024, zone_name="Our lab")
    at = AppTest.from_file(OPT, default_timeout=TIMEOUT).run()
    assert not at.exception
    at.selectbox(key="opt.year").set_value(2024).run()
    assert "MY-LAB — Our lab · your data" in at.selectbox(key="opt.zone").options
    at.selectbox(key="opt.zone").set_value("MY-LAB").run()
    assert not at.exception and not at.error
    assert any("MY-LAB 2024: min 100" in c.value and "supplied by the user (lab.csv)" in c.value for c in at.caption)
    wi = AppTest.from_file(WHATIF, default_timeout=TIMEOUT).run()
    wi.selectbox(key="wi.year").set_value(2024).run()
    assert "MY-LAB · your data" in wi.multiselect(key="wi.zones").options
    assert any("MY-LAB 2024" in c.value for c in wi.sidebar.caption)
    wi.sidebar.button(key="wi.grid.rm.MY-LAB.2024").click().run()
    assert not wi.exception
    assert not [o for o in wi.multiselect(key="wi.zones").options if o.startswith("MY-LAB")]
    assert grid.user_traces() == []


def test_upload_box_is_in_the_sidebar_and_needs_a_file():
    at = AppTest.from_file(WHATIF, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.sidebar.button(key="wi.grid.add").disabled  # no file chosen yet
    assert any("Electricity Maps export" in c.value for c in at.sidebar.caption)
    at.sidebar.text_input(key="wi.grid.zone").input("MY-LAB").run()  # typing in the box leaves the page as it was
    assert not at.exception and not at.button(key="wi.run").disabled
