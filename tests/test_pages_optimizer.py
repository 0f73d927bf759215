"""AppTest: the Optimizer and What-if pages (issue 4)."""
from __future__ import annotations

import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from sprout_core.profiles import QHandoff

ROOT = Path(__file__).resolve().parent.parent
OPT = str(ROOT / "pages/optimizer.py")
WHATIF = str(ROOT / "pages/whatif.py")


HANDOFF = QHandoff(label="starter set, 3 levels", judge="reference", model="Llama-2-13b-chat", levels=("L0", "L1", "L2"),
                   counts={"all": {"L0": 8, "L1": 20, "L2": 12}})


def _metrics(at):
    return {m.label: m.value for m in at.metric}


def _notes(at):
    return {m.label: m.delta for m in at.metric}


def test_optimizer_slider_redraws_decision():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    assert not at.exception, at.exception
    m0 = _metrics(at)
    # a readable unit (µg/mg/g CO₂e, 3 significant digits), "per request" as its neutral note
    assert re.fullmatch(r"\d+(\.\d+)? (µg|mg|g) CO₂e", m0["Expected carbon"]), m0
    assert _notes(at)["Expected carbon"] == "per request"
    assert _notes(at)["Quality kept"].startswith("≥ ") and "at 90% confidence" in _notes(at)["Quality kept"]
    assert len(at.get("plotly_chart")) == 4  # mix bar, frontier, per-task bars (docs/tasks.md), window chart
    assert any("with 90% confidence the hour keeps ≥" in c.value for c in at.caption)   # the promise and its range
    assert any("reference:sprout-paper" in c.value for c in at.caption)
    at.slider(key="opt.ci").set_value(480.0).run()
    m1 = _metrics(at)
    assert m1["Expected carbon"] != m0["Expected carbon"]
    # dirtier hour → lower floor → quality kept goes down, saving goes up
    assert float(m1["Quality kept"].rstrip("%")) < float(m0["Quality kept"].rstrip("%"))
    at.slider(key="opt.ci").set_value(124.0).run()  # ERCOT 2023 minimum: no quality may be given up
    assert _metrics(at)["Quality kept"] == "100.0%"


def test_optimizer_fixed_theta_infeasible_and_hour_mode():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    at.radio(key="opt.mode").set_value("fixed θ").run()
    at.slider(key="opt.theta").set_value(1.2).run()
    assert not at.exception and not at.error
    # never blank: the floor is clamped to the most any mix can keep, with a message, and the charts stay
    assert any("more than any mix can keep" in w.value and "1.000" in w.value for w in at.warning)
    assert _metrics(at)["Floor θ"].startswith("1.000") and len(at.get("plotly_chart")) >= 3
    at.slider(key="opt.theta").set_value(0.9).run()
    assert not at.error and _metrics(at)["Floor θ"].startswith("0.900")
    at.slider(key="opt.conf").set_value(0.5).run()       # plug-in: the floor binds exactly
    assert _metrics(at)["Quality kept"] == "90.0%"
    at.radio(key="opt.cimode").set_value("an hour of the trace").run()
    at.number_input(key="opt.hour").set_value(1000).run()
    assert not at.exception
    assert any("CI =" in c.value for c in at.caption)


def test_optimizer_hour_outside_the_year_is_a_message_not_a_stale_decision():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    at.radio(key="opt.cimode").set_value("an hour of the trace").run()
    at.number_input(key="opt.hour").set_value(1000).run()
    assert _metrics(at)["Expected carbon"] and len(at.get("plotly_chart")) == 4
    for bad in (9000, 8760, -1):                          # 2023 has hours 0 … 8759
        at.number_input(key="opt.hour").set_value(bad).run()
        assert not at.exception
        assert any(f"Hour {bad} is outside the trace of 2023" in e.value and "8759" in e.value for e in at.error)
        assert "Expected carbon" not in _metrics(at)          # no decision of the previous hour stays on screen
        assert not any(c.value.startswith("Numbers: ") for c in at.caption)
        assert len(at.get("plotly_chart")) == 1                # the window replay below stays
        assert any(c.value.startswith("Window: SPROUT") for c in at.caption)
    at.selectbox(key="opt.year").set_value(2024).run()     # a leap year has hour 8760 … 8783
    at.number_input(key="opt.hour").set_value(8760).run()
    assert not at.error and _metrics(at)["Expected carbon"]
    assert any("31 Dec 2024, 00:00 UTC → CI =" in c.value for c in at.caption)


def test_optimizer_window_start_outside_the_year_is_a_message():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    at.number_input(key="opt.wstart").set_value(8800).run()
    assert not at.exception
    assert any("Hour 8800 is outside the trace of 2023" in e.value and "No window is replayed" in e.value
               for e in at.error)
    assert _metrics(at)["Expected carbon"] and len(at.get("plotly_chart")) == 3   # the decision stays
    at.number_input(key="opt.wstart").set_value(8700).run()
    assert any("cut to 60 hours" in i.value for i in at.info) and len(at.get("plotly_chart")) == 4


def test_optimizer_offers_and_preselects_handoff_q():
    at = AppTest.from_file(OPT, default_timeout=90)
    at.session_state["sprout.q_handoff"] = HANDOFF
    at.run()
    assert not at.exception
    radio = at.radio(key="opt.qsrc")
    assert any("from Evaluations: starter set" in o for o in radio.options)
    assert radio.value.startswith("from Evaluations")  # the user just sent it: it is preselected
    # with this q even L2 (the cheapest) beats L0: all requests at L2 keep 0.3 / 0.2 = 150 % of L0's win share
    assert _metrics(at)["Quality kept"] == "150.0%"
    assert any("Evaluations: starter set" in c.value for c in at.caption)
    radio.set_value(radio.options[0]).run()
    assert _metrics(at)["Quality kept"] != "150.0%"


def test_optimizer_refuses_a_q_judged_on_another_model():
    at = AppTest.from_file(OPT, default_timeout=90)
    at.session_state["sprout.q_handoff"] = QHandoff(label="smol run", judge="reference", model="SmolLM2-135M-Instruct",
                                                    levels=("L0", "L1", "L2"), counts={"all": {"L0": 8, "L1": 20, "L2": 12}})
    at.run()
    assert not at.exception
    assert any("SmolLM2-135M-Instruct" in w.value and "not combined" in w.value for w in at.warning)
    assert _metrics(at)["Quality kept"] != "150.0%"          # the reference's own q is used
    at.checkbox(key="opt.allow_other").check().run()
    assert _metrics(at)["Quality kept"] == "150.0%"
    assert any("mixes two models" in w.value for w in at.warning)


def test_optimizer_own_profile_without_data_falls_back_with_note():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    at.radio(key="opt.profile").set_value(at.radio(key="opt.profile").options[1]).run()
    assert not at.exception
    assert any("not ready yet" in i.value for i in at.info)
    assert _metrics(at)["Expected carbon"]


def test_optimizer_own_profile_from_store_and_handoff():
    from sprout_core import store

    for lv, e in (("L0", 90.0), ("L1", 30.0), ("L2", 15.0)):
        for k in range(3):
            store.record_request(model="smol", level=lv, energy_j=e + k, total_s=e / 10, task="chat",
                                 energy_method="estimated:cpu-tdp", prompt="p", answer="a")
    at = AppTest.from_file(OPT, default_timeout=90)
    at.session_state["sprout.q_handoff"] = QHandoff(label="smol run", judge="reference", model="smol",
                                                    levels=("L0", "L1", "L2"), counts={"chat": {"L0": 8, "L1": 6, "L2": 6}})
    at.run()
    at.radio(key="opt.profile").set_value(at.radio(key="opt.profile").options[1]).run()
    at.radio(key="opt.qsrc").set_value(at.radio(key="opt.qsrc").options[1]).run()
    assert not at.exception
    assert any("estimated:cpu-tdp" in c.value for c in at.caption)
    assert any("answers of smol" in c.value for c in at.caption)


def _table_with(at, col):
    return next(d.value for d in at.dataframe if col in d.value.columns)


def test_whatif_runs_all_strategies_and_keeps_results():
    at = AppTest.from_file(WHATIF, default_timeout=180).run()
    assert not at.exception
    at.multiselect(key="wi.zones").set_value(["US-TEX-ERCO", "DE"]).run()
    at.multiselect(key="wi.presets").set_value(["Feb"]).run()
    at.button(key="wi.run").click().run()
    assert not at.exception and not at.error
    df = _table_with(at, "zone")
    assert set(df["strategy"]) == {"BASE", "CO2-OPT", "STATIC", "SPROUT", "ORACLE", "MODEL-OPT"}
    assert set(df["zone"]) == {"US-TEX-ERCO", "DE"} and len(df) == 12
    summary = _table_with(at, "hours meeting the floor (%)")
    sp = summary[summary["strategy"] == "SPROUT"].iloc[0]
    assert 60 <= sp["hours meeting the floor (%)"] <= 100 and sp["quality, worst hour (%)"] <= sp["quality kept, mean (%)"]
    assert len(at.get("plotly_chart")) == 4  # scatter + confidence curve + two ξ-sweep charts
    assert at.get("download_button")
    # bad input (no zone) → a clear message; earlier results stay on screen
    at.multiselect(key="wi.zones").set_value([]).run()
    assert any("pick at least one zone" in w.value for w in at.warning)
    assert len(_table_with(at, "zone")) == 12


def test_whatif_paper_mode_next_to_the_paper():
    at = AppTest.from_file(WHATIF, default_timeout=240).run()
    at.multiselect(key="wi.zones").set_value(["GB"]).run()
    at.multiselect(key="wi.presets").set_value(["Paper (h 800, 3900, 7000)"]).run()
    at.toggle(key="wi.paper").set_value(True).run()
    strat = next(m for m in at.multiselect if m.label == "Strategies")
    strat.set_value(["BASE", "CO2-OPT", "STATIC", "SPROUT"]).run()
    at.button(key="wi.run").click().run()
    assert not at.exception and not at.error
    cmp_ = _table_with(at, "saving, paper (%)")
    assert set(cmp_["strategy"]) == {"SPROUT", "STATIC", "CO2-OPT"} and (cmp_["windows"] == 3).all()
    assert any("paper-faithful mode" in c.value for c in at.caption)


def test_optimizer_explains_a_q_where_L0_never_won():
    import warnings

    at = AppTest.from_file(str(ROOT / "pages/optimizer.py"), default_timeout=90)
    at.session_state["sprout.q_handoff"] = QHandoff(label="test", judge="reference", model="Llama-2-13b-chat",
                                                    levels=("L0", "L1", "L2"), counts={"all": {"L0": 0, "L1": 7, "L2": 3}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        at.run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric}["Quality kept"] == "n/a (q₀ = 0)"
    assert any("L0 never won" in w.value and "cheapest level" in w.value for w in at.warning)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning) and "sprout_core" in str(w.filename)]


def test_whatif_floor_and_stress_switches_and_per_task_marks():
    at = AppTest.from_file(WHATIF, default_timeout=240).run()
    assert not at.exception
    assert at.toggle(key="wi.pertask").value is True and at.toggle(key="wi.stress").value is False
    at.multiselect(key="wi.zones").set_value(["US-TEX-ERCO"]).run()
    at.multiselect(key="wi.presets").set_value(["Feb"]).run()
    strat = next(m for m in at.multiselect if m.label == "Strategies")
    strat.set_value(["BASE", "CO2-OPT", "SPROUT"]).run()
    at.toggle(key="wi.pertask").set_value(False).run()
    at.toggle(key="wi.stress").set_value(True).run()
    at.button(key="wi.run").click().run()
    assert not at.exception and not at.error
    per_task = _table_with(at, "tasks below their floor")
    co2 = per_task[per_task["strategy"] == "CO2-OPT"].iloc[0]
    assert co2["tasks below their floor"] != "none"      # the cheapest level gives up Alpaca and math
    assert any("above 100 %" in c.value for c in at.caption)
    assert any("The promise is a probability" in c.value and "hour" in c.value for c in at.caption)
    # paper mode: the switches do not apply
    at.toggle(key="wi.paper").set_value(True).run()
    assert at.toggle(key="wi.pertask").disabled and at.toggle(key="wi.stress").disabled
