"""SQLite store: schema, migrations, record/query, filters, locked and corrupt databases."""
from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from sprout_core import store
from sprout_core.carbon import account
from sprout_core.energy import EnergyReading
from sprout_core.store import RequestFilter, RequestRecord, StoreError


def test_default_path_under_state_dir_and_wal(_isolated_state):
    with closing(store.connect()) as c:
        assert store.default_path().parent == _isolated_state
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.schema_version(c, "requests") == len(store.REQUESTS_MIGRATIONS)


def test_record_from_parts_and_query_roundtrip():
    class Result:  # a GenerationResult-like object
        model, device, level, directive, prompt, text = "smol", "cpu", "L1", "Always answer briefly", "Hi?", "Hello."
        prompt_tokens, new_tokens, ttft_s, total_s, finish_reason, error = 12, 3, 0.1, 0.4, "stop", None

    r = EnergyReading(2.0, "estimated:cpu-tdp", "cpu est", 0.4, 5.0, 1.0, ["process-cpu-only"])
    acc = account(r.energy_j, 0.4, 300.0, energy_method=r.method, ci_label="DE 2023 mean")
    rid = store.record_request(RequestRecord.from_parts(Result(), r, acc, zone="DE", task="chat", run_id="r1", origin="test"))
    df = store.query_requests()
    assert len(df) == 1 and df.loc[0, "id"] == rid
    row = df.iloc[0]
    assert row["answer"] == "Hello." and row["level"] == "L1" and row["energy_method"] == "estimated:cpu-tdp"
    assert row["energy_flags"] == "process-cpu-only" and row["zone"] == "DE" and row["task"] == "chat"
    assert row["carbon_operational_g"] == pytest.approx(2.0 / 3.6e6 * 300)
    assert row["carbon_total_g"] == pytest.approx(acc.total_g)


def test_unknown_energy_is_stored_as_null_not_zero():
    store.record_request(model="m", level="L0", energy_j=None)
    df = store.query_requests()
    assert df["energy_j"].isna().all() and df.loc[0, "energy_method"] == "n/a"
    s = store.summarize(df)
    assert s.unknown_energy == 1 and s.energy_j_by_method == {}


def test_filters():
    for i, (model, level, method, zone) in enumerate([
        ("a", "L0", "measured:rapl", "DE"), ("a", "L1", "estimated:cpu-tdp", "FR"), ("b", "L2", "estimated:cpu-tdp", "DE"),
    ]):
        store.record_request(model=model, level=level, energy_method=method, zone=zone, prompt=f"prompt {i}",
                             answer="cats" if i == 2 else "dogs", energy_j=float(i + 1), ts_utc=f"2026-01-0{i + 1}T12:00:00+00:00")
    assert len(store.query_requests(RequestFilter(models=["a"]))) == 2
    assert list(store.query_requests({"levels": ["L1", "L2"]})["level"]) == ["L2", "L1"]  # newest first
    assert len(store.query_requests({"methods": ["estimated:cpu-tdp"], "zones": ["DE"]})) == 1
    assert len(store.query_requests({"text": "cats"})) == 1
    assert len(store.query_requests({"since": "2026-01-02", "until": "2026-01-02"})) == 1
    assert len(store.query_requests({"limit": 2})) == 2
    assert store.distinct_values("zone") == ["DE", "FR"]
    s = store.summarize(store.query_requests())
    assert s.requests == 3 and s.energy_j_by_method == {"measured:rapl": 1.0, "estimated:cpu-tdp": 5.0}
    with pytest.raises(ValueError):
        store.distinct_values("nope; DROP TABLE requests")


def test_survives_reopen(tmp_path):
    p = tmp_path / "db.sqlite"
    store.record_request(model="x", path=p)
    store.record_request(model="y", path=p)
    assert sorted(store.query_requests(path=p)["model"]) == ["x", "y"]


def test_corrupt_database_gives_store_error(tmp_path):
    p = tmp_path / "bad.sqlite"
    p.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite database"):
        store.connect(p)
    assert p.read_bytes().startswith(b"this is not sqlite")  # nothing overwritten


def test_locked_database_gives_store_error(tmp_path):
    p = tmp_path / "db.sqlite"
    store.connect(p).close()
    blocker = sqlite3.connect(str(p), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with closing(store.connect(p, timeout_s=0.1)) as c:
            with pytest.raises(StoreError, match="locked"):
                store.record_request(model="m", conn=c, path=p)
    finally:
        blocker.rollback()
        blocker.close()
    assert store.record_request(model="m", path=p) >= 1  # usable again once released


def test_component_migrations_run_once_in_order(tmp_path):
    p = tmp_path / "db.sqlite"
    calls = []
    migs = ["CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT);",
            lambda c: (calls.append(2), c.execute("ALTER TABLE runs ADD COLUMN note TEXT"))]
    with closing(store.connect(p)) as c:
        assert store.apply_migrations(c, "evaluate", migs) == 2
        assert store.apply_migrations(c, "evaluate", migs) == 2
        c.execute("INSERT INTO runs(name, note) VALUES ('a', 'b')")
        assert calls == [2]
        with pytest.raises(StoreError, match="newer than this Sprout"):
            store.apply_migrations(c, "evaluate", migs[:1])


def test_failed_migration_rolls_back(tmp_path):
    p = tmp_path / "db.sqlite"
    with closing(store.connect(p)) as c:
        with pytest.raises(sqlite3.Error):
            store.apply_migrations(c, "broken", ["CREATE TABLE t1 (a INT);", "CREATE TABLE oops ("])
        assert store.schema_version(c, "broken") == 1


def test_unknown_override_column_rejected():
    with pytest.raises(TypeError):
        RequestRecord.from_parts(nonsense=1)
