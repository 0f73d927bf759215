"""The Live page (issue 22 item 5): the gateway's traffic by hour from the store, with a counterfactual estimate."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import store
from sprout_core.views import live as V

ROOT = Path(__file__).resolve().parent.parent
PAGE = str(ROOT / "pages/live.py")
H1, H2 = "2026-12-07T10:00:00Z", "2026-12-07T11:00:00Z"


def seed():
    rows = [("L0", 10.0, 2.0, H1, "gateway"), ("L1", 4.0, 1.0, H1, "gateway"), ("L0", 10.0, 2.0, H2, "gateway:pinned"),
            ("L2", 2.0, 0.5, H2, "gateway"), ("L1", 4.0, 1.0, H2, "gateway")]
    ci = {H1: 400.0, H2: 100.0}
    for lv, e, s, h, origin in rows:
        op = e / 3.6e6 * ci[h]
        emb = 0.001 * s
        store.record_request(level=lv, energy_j=e, total_s=s, energy_method="measured:rapl", ci_g_per_kwh=ci[h], pue=1.0,
                             carbon_operational_g=op, carbon_embodied_g=emb, carbon_total_g=op + emb, origin=origin,
                             run_id=h, model="m")
    store.record_request(level="L0", energy_j=99.0, origin="playground", model="m")  # not gateway traffic
    store.record_request(level="L1", energy_j=5.0, origin="gateway-evaluator", model="m", carbon_total_g=0.01,
                         run_id=H1)  # the evaluator's answer: charged, not traffic


def test_traffic_by_hour_counts_levels_and_estimates_the_saving():
    seed()
    t = V.traffic_by_hour(V.gateway_requests())
    assert t.requests == 5 and list(t.hours["hour"]) == [H1, H2]
    h2 = t.hours.iloc[1]
    assert h2["requests"] == 3 and h2["pinned"] == 1 and h2["L2 requests"] == 1
    assert h2["L0 share"] == pytest.approx(1 / 3)
    # all-L0 counterfactual of hour 2: 3 requests × (10 J at 100 g/kWh + 0.001 g/s × 2 s)
    assert h2["counterfactual_l0_g"] == pytest.approx(3 * (10 / 3.6e6 * 100 + 0.002))
    assert h2["saved_g"] == pytest.approx(h2["counterfactual_l0_g"] - h2["carbon_g"]) and h2["saved_g"] > 0
    assert t.saved_g == pytest.approx(t.hours["saved_g"].sum()) and "counterfactual estimate" in t.note
    assert t.evaluator_g == pytest.approx(0.01) and t.saved_net_g == pytest.approx(t.saved_g - 0.01)


def test_unknown_energy_is_na_not_zero():
    store.record_request(level="L1", energy_j=None, energy_method="n/a", origin="gateway", run_id=H1, model="m")
    t = V.traffic_by_hour(V.gateway_requests())
    row = t.hours.iloc[0]
    assert row["energy_j_per_request"] is None and row["carbon_g"] is None and t.saved_g is None
    assert "n/a" in t.note


def test_live_page_empty_then_with_traffic():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No gateway traffic yet" in i.value for i in at.info)
    seed()
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 2
    assert any("counterfactual" in str(m.help or "") + str(m.value) for m in at.metric) or \
        any("counterfactual" in c.value for c in at.caption)
