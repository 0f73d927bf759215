"""The History view: readable table (key columns first, units per column), status, chart colours."""
import pandas as pd

from sprout_core import store, style
from sprout_core.views import history as V


def frame():
    store.record_request(model="m", level="L0", energy_j=1500.0, energy_method="measured:rapl", new_tokens=60,
                         carbon_total_g=0.12, finish_reason="eos", prompt="a " * 100, answer="b")
    store.record_request(model="m", level="L1", energy_j=300.0, energy_method="measured:rapl", new_tokens=10,
                         carbon_total_g=0.03, finish_reason="aborted", prompt="q", answer="partial")
    return store.query_requests()


def test_display_table_is_readable():
    t = V.display_table(frame())
    assert list(t.columns[:4]) == ["time (UTC)", "status", "level", "prompt"]
    assert "task" not in t.columns
    assert sorted(t["status"]) == ["aborted", "complete"]
    assert sorted(t["energy (kJ)"]) == [0.3, 1.5] and sorted(t["carbon (mg CO₂e)"]) == [30.0, 120.0]
    assert max(len(p) for p in t["prompt"]) <= V.PROMPT_CHARS and t["prompt"].str.endswith("…").any()
    assert t["time (UTC)"].notna().all()


def test_status_filter_and_chart():
    df = frame()
    assert list(V.with_status(df, ["aborted"])["level"]) == ["L1"]
    fig = V.energy_by_level_figure(df)
    colors = {tr.name: tr.marker.color for tr in fig.data}
    assert colors == {"L0": style.level_color("L0")}  # the aborted L1 answer is partial: not in the mean
    assert "kJ" in fig.layout.yaxis.title.text
    assert V.energy_by_level_figure(pd.DataFrame(columns=df.columns)) is None


def test_csv_has_every_column_and_the_status():
    df = frame()
    out = V.csv_frame(df)
    assert set(df.columns) <= set(out.columns) and list(out.columns).index("status") == list(out.columns).index("ts_utc") + 1
    assert sorted(out["status"]) == ["aborted", "complete"]
    assert "status" in out.to_csv(index=False).splitlines()[0].split(",")
