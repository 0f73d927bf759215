"""The one answer record: built once, written once, read back as the same type (issue 21.3)."""
from __future__ import annotations

import dataclasses
import sqlite3
from contextlib import closing

import pytest

from sprout_core import store
from sprout_core.carbon import account
from sprout_core.energy import EnergyReading
from sprout_core.generation import GenerationResult
from sprout_core.record import AnswerRecord, energy_label


def _parts(finish="eos", energy=2.0):
    res = GenerationResult(level="L1", directive="Answer briefly.", prompt="Hi?", text="Hello.", prompt_tokens=12,
                           new_tokens=3, ttft_s=0.1, total_s=0.4, tokens_per_s=7.5, finish_reason=finish, model="smol",
                           device="cpu", placement="system", max_new_tokens=64, do_sample=True, seed=7,
                           started_at=1_700_000_000.0, backend="llama.cpp", partial=finish == "aborted")
    rd = EnergyReading(energy, "estimated:cpu-tdp", "cpu est", 0.4, 5.0, 1.0, ["process-cpu-only", "short-window"])
    acc = account(rd.energy_j, 0.4, 300.0, 1.2, energy_method=rd.method, ci_label="DE 2023 mean")
    return res, rd, acc


def test_record_is_frozen_typed_and_labelled():
    rec = AnswerRecord.from_parts(*_parts(), zone="DE", task="qa", run_id="r1", origin="test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        rec.level = "L0"  # type: ignore[misc]
    assert rec.energy_flags == ("process-cpu-only", "short-window")
    assert rec.energy_label == "estimated" and rec.status == "complete" and rec.completion_tokens == 3
    assert rec.carbon_g == rec.carbon_total_g == pytest.approx(2.0 / 3.6e6 * 300 * 1.2 + rec.carbon_embodied_g)
    assert rec.backend == "llama.cpp" and rec.pue == 1.2 and rec.ci_label == "DE 2023 mean"
    assert energy_label("measured:rapl") == "measured" and energy_label(None) == "n/a" and energy_label("junk") == "n/a"
    for f in dataclasses.fields(AnswerRecord):  # every field says what it is (units in the docs)
        assert f.name in AnswerRecord.__doc__ or f.name in _field_docs(), f.name


def _field_docs() -> str:
    import inspect

    return inspect.getsource(AnswerRecord)


def test_written_once_read_back_as_the_same_record():
    rec = AnswerRecord.from_parts(*_parts(), zone="DE", task="qa", run_id="r1", origin="test", pinned=True,
                                  ci_source="trace", hour_utc="2024-06-01T12:00:00+00:00")
    stored = store.record_answer(rec)
    assert stored.request_id is not None
    back = store.read_answers({"run_id": "r1"})
    assert back == [stored]  # every field, types included (flags a tuple, booleans bool)


def test_unknown_energy_reads_back_as_none_and_status_words():
    res, rd, acc = _parts(finish="aborted", energy=None)
    rec = store.record_answer(AnswerRecord.from_parts(res, rd, acc, run_id="r2"))
    (back,) = store.read_answers({"run_id": "r2"})
    assert back.energy_j is None and back.carbon_total_g is None and back.carbon_operational_g is None
    assert back.status == "aborted" and back.partial is True and back == rec
    failed = AnswerRecord(level="L0", finish_reason="error", error="server went away")
    assert failed.status == "error"


def test_as_row_and_from_row_are_inverse():
    rec = AnswerRecord.from_parts(*_parts(), zone="DE")
    row = rec.as_row()
    assert row["status"] == "complete" and row["energy_label"] == "estimated" and row["energy_flags"] == list(rec.energy_flags)
    assert AnswerRecord.from_row(row) == rec
    assert AnswerRecord.from_row(row | {"not_a_field": 1}) == rec


def test_old_database_is_migrated_and_old_rows_read_back(tmp_path):
    """A database from before requests schema 3 gains the record's columns; its rows read back with defaults."""
    db = tmp_path / "old.sqlite"
    con = sqlite3.connect(db)
    store.apply_migrations(con, "requests", store.REQUESTS_MIGRATIONS[:2])
    con.execute("INSERT INTO requests (ts_utc, level, answer, energy_j, energy_method, energy_flags, uid) "
                "VALUES ('2024-01-01T00:00:00+00:00', 'L0', 'old', 1.5, 'measured:rapl', 'a,b', 'u1')")
    con.commit()
    con.close()
    with closing(store.connect(db)) as c:
        assert store.schema_version(c, "requests") == len(store.REQUESTS_MIGRATIONS)
    (old,) = store.read_answers(path=db)
    assert old.text == "old" and old.energy_flags == ("a", "b") and old.energy_label == "measured"
    assert old.backend == "transformers" and old.pinned is None and old.uid == "u1"


def test_evaluation_answers_keep_the_energy_labels():
    from sprout_core.evaluate import db as eval_db

    rec = AnswerRecord.from_parts(*_parts(), zone="DE")
    with closing(eval_db.connect()) as con:
        con.execute("INSERT INTO eval_runs (run_key, label, prompt_set, n, seed, levels, judge, model, created_at) "
                    "VALUES ('k', 'l', 'p', 1, 0, 'L1', 'none', 'smol', 0)")
        run_id = con.execute("SELECT id FROM eval_runs").fetchone()[0]
        assert eval_db.insert_answer(con, run_id, "p1", "L1", rec.as_row())
        row = dict(con.execute("SELECT * FROM eval_answers").fetchone())
    assert row["energy_source"] == "cpu est" and row["energy_flags"] == "process-cpu-only,short-window"
    assert row["pue"] == 1.2 and row["ci_label"] == "DE 2023 mean" and row["backend"] == "llama.cpp"
    assert row["carbon_operational_g"] == pytest.approx(rec.carbon_operational_g)
    assert row["carbon_embodied_g"] == pytest.approx(rec.carbon_embodied_g) and row["uid"] == rec.uid
    back = AnswerRecord.from_row(row)
    assert back.energy_label == "estimated" and back.energy_flags == rec.energy_flags and back.text == rec.text
