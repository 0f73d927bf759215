"""Metered generation on the tiny Llama: live energy, readings, carbon, stored rows, re-pricing."""
from __future__ import annotations

import pytest

from sprout_core import store
from sprout_core.carbon import EMBODIED_PRESETS, override_intensity
from sprout_core.directives import Directive
from sprout_core.energy import METHOD_CPU_TDP, detect_meter
from sprout_core.generation import GenerationParams, PromptError
from sprout_core.metered import CarbonSettings, level_table, metered_generate, metered_stream

L0 = Directive("L0", "")
L1 = Directive("L1", "Always answer briefly")
SETTINGS = CarbonSettings(override_intensity(400.0), pue=1.2, embodied=EMBODIED_PRESETS["sprout-paper"])


@pytest.fixture
def meter():
    return detect_meter("cpu", powercap_root="/nonexistent", per_core_w=10.0)


def test_stream_reports_live_energy_and_stores_the_request(tiny_lm, meter):
    ms = metered_stream(tiny_lm, "what is the capital of france", L1, GenerationParams(max_new_tokens=24), meter,
                        SETTINGS, run_id="run-1", origin="test", task="qa")
    chunks = list(ms)
    assert chunks and all(c.method == METHOD_CPU_TDP for c in chunks)
    o = ms.outcome
    assert o.result.new_tokens == 24 and o.reading.method == METHOD_CPU_TDP
    assert o.reading.energy_j is not None and o.reading.energy_j > 0
    assert o.reading.duration_s == pytest.approx(o.result.total_s, abs=0.5)
    assert o.carbon.operational_g == pytest.approx(o.reading.energy_j / 3.6e6 * 400 * 1.2)
    assert o.store_error is None and o.request_id is not None
    row = store.query_requests({"run_id": "run-1"}).iloc[0]
    assert row["answer"] == o.result.text and row["energy_j"] == pytest.approx(o.reading.energy_j)
    assert row["ci_g_per_kwh"] == 400 and row["pue"] == 1.2 and row["task"] == "qa" and row["origin"] == "test"


def test_bad_prompt_raises_before_anything_runs(tiny_lm, meter):
    with pytest.raises(PromptError):
        metered_stream(tiny_lm, "   ", L0, GenerationParams(), meter, SETTINGS)
    assert store.query_requests().empty


def test_store_failure_keeps_the_answer(tiny_lm, meter, tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 200)
    o = metered_generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=4), meter, SETTINGS, db_path=bad)
    assert o.result.text is not None and o.request_id is None
    assert "not a readable SQLite database" in o.store_error


def test_abandoned_stream_frees_the_model_and_records_the_partial_answer(tiny_lm, meter):
    ms = metered_stream(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=200), meter, SETTINGS,
                        run_id="cut", origin="test")
    it = iter(ms)
    next(it)
    it.close()  # e.g. the page was reloaded mid-answer
    o = ms.outcome
    assert o is not None and o.aborted and o.result.finish_reason == "aborted"
    assert 0 < o.result.new_tokens < 200
    assert o.reading.energy_j is not None and o.reading.energy_j > 0  # energy measured until the cut
    row = store.query_requests({"run_id": "cut"}).iloc[0]
    assert row["finish_reason"] == "aborted" and row["energy_j"] == pytest.approx(o.reading.energy_j)
    assert row["new_tokens"] == o.result.new_tokens
    o2 = metered_generate(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=3), meter, SETTINGS, save=False)
    assert o2.result.new_tokens == 3 and not o2.aborted


def test_live_chunks_carry_carbon_so_far(tiny_lm, meter):
    ms = metered_stream(tiny_lm, "hello world", L0, GenerationParams(max_new_tokens=40), meter, SETTINGS, save=False)
    chunks = [c for c in ms if c.energy_j is not None]
    assert chunks
    last = chunks[-1]
    expected = last.energy_j / 3.6e6 * 400 * 1.2 + SETTINGS.embodied.grams(last.elapsed_s)
    assert last.carbon_g == pytest.approx(expected)
    totals = [c.carbon_g for c in chunks]
    assert totals == sorted(totals)  # carbon so far only grows
    assert ms.outcome.carbon.total_g >= last.carbon_g


def test_one_record_feeds_the_store_and_the_cli(tiny_lm, meter):
    o = metered_generate(tiny_lm, "hello world", L1, GenerationParams(max_new_tokens=4), meter, SETTINGS,
                         run_id="rec", origin="test", task="qa")
    row = o.to_row()
    assert row["text"] == o.result.text and row["energy_j"] == o.reading.energy_j
    assert row["carbon_total_g"] == o.carbon.total_g and row["ci_g_per_kwh"] == 400 and row["task"] == "qa"
    assert row["request_id"] == o.request_id and isinstance(row["energy_flags"], list)
    rec = store.RequestRecord.from_row(row)
    assert rec.answer == o.result.text and rec.level == "L1" and rec.run_id == "rec"


def test_level_table_repricing_changes_carbon_not_energy(tiny_lm, meter):
    outs = [metered_generate(tiny_lm, "the quick brown fox", d, GenerationParams(max_new_tokens=n), meter, SETTINGS, save=False)
            for d, n in ((L0, 30), (L1, 5))]
    t1 = level_table(outs)
    t2 = level_table(outs, CarbonSettings(override_intensity(800.0), pue=1.2))
    assert list(t1["energy (J)"]) == list(t2["energy (J)"])
    assert t2["operational (g CO₂e)"].iloc[0] == pytest.approx(2 * t1["operational (g CO₂e)"].iloc[0])
    assert t1["energy saving vs L0 (%)"].iloc[0] is None or pd_isna(t1["energy saving vs L0 (%)"].iloc[0])
    e0, e1 = outs[0].reading.energy_j, outs[1].reading.energy_j
    assert t1["energy saving vs L0 (%)"].iloc[1] == pytest.approx((e0 - e1) / e0 * 100)
    assert t1["J per token"].iloc[1] == pytest.approx(e1 / 5)


def pd_isna(v):
    import pandas as pd

    return pd.isna(v)
