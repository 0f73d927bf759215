"""``generate --json`` energy and carbon fields, intensity flags, and stored history rows."""
import json

import pytest

from sprout_core import store
from sprout_core.cli import main

ENERGY_FIELDS = {"energy_j", "energy_method", "power_w_mean", "ci_g_per_kwh", "zone", "carbon_operational_g",
                 "carbon_embodied_g"}


def run_json(capsys, *extra):
    rc = main(["generate", "--prompt", "hello world", "--levels", "L0,L1", "--max-new-tokens", "4", "--json", *extra])
    captured = capsys.readouterr()
    return rc, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_json_has_energy_and_carbon_fields_and_rows_are_stored(tiny_llama2_dir, capsys):
    rc, out, _ = run_json(capsys, "--model", str(tiny_llama2_dir), "--ci", "250", "--pue", "1.1", "--task", "chat")
    assert rc == 0
    for o in out:
        assert ENERGY_FIELDS <= set(o)
        assert o["energy_method"] == "estimated:cpu-tdp"  # this VM has no RAPL/NVML (fakes cover those)
        assert o["energy_j"] > 0 and o["ci_g_per_kwh"] == 250 and o["zone"] is None
        assert o["carbon_operational_g"] == pytest.approx(o["energy_j"] / 3.6e6 * 250 * 1.1)
        assert o["carbon_embodied_g"] > 0
    df = store.query_requests({"origins": ["cli"]})
    assert sorted(df["level"]) == ["L0", "L1"] and set(df["task"]) == {"chat"}
    assert sorted(df["id"]) == sorted(o["request_id"] for o in out)


def test_no_store_and_backend_off(tiny_llama2_dir, capsys):
    rc, out, _ = run_json(capsys, "--model", str(tiny_llama2_dir), "--ci", "100", "--no-store", "--energy-backend", "none")
    assert rc == 0
    assert all(o["energy_j"] is None and o["energy_method"] == "n/a" and o["carbon_operational_g"] is None for o in out)
    assert store.query_requests().empty


def test_bad_energy_flags_exit_2(tiny_llama2_dir, capsys):
    assert run_json(capsys, "--model", str(tiny_llama2_dir), "--ci", "5000")[0] == 2
    assert run_json(capsys, "--model", str(tiny_llama2_dir), "--embodied", "toaster")[0] == 2
    rc, _, err = run_json(capsys, "--model", str(tiny_llama2_dir), "--energy-backend", "magic")
    assert rc == 2 and "unknown energy backend" in err


def test_missing_zone_gives_null_carbon_and_a_warning(tiny_llama2_dir, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "nowhere"))  # the shipped zones still work …
    monkeypatch.setenv("SPROUT_ZONE", "ATLANTIS")  # … this default zone has none: carbon n/a, said
    rc, out, err = run_json(capsys, "--model", str(tiny_llama2_dir), "--no-store")
    assert rc == 0 and "carbon intensity unknown" in err and "ATLANTIS" in err
    assert all(o["ci_g_per_kwh"] is None and o["carbon_operational_g"] is None and o["energy_j"] for o in out)


def test_a_zone_asked_for_without_data_is_refused_before_any_answer(tiny_llama2_dir, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SPROUT_DATA_DIR", str(tmp_path / "nowhere"))
    rc, out, err = run_json(capsys, "--model", str(tiny_llama2_dir), "--no-store", "--zone", "ATLANTIS")
    assert rc == 2 and out is None and "zone 'ATLANTIS' is not available" in err and "--ci" in err


def test_zone_year_hour(tiny_llama2_dir, capsys):
    rc, out, _ = run_json(capsys, "--model", str(tiny_llama2_dir), "--zone", "FR", "--year", "2023", "--hour", "0", "--no-store")
    assert rc == 0 and out[0]["zone"] == "FR" and "2023-01-01 00:00" in out[0]["ci_label"]


def test_text_mode_prints_energy_line(tiny_llama2_dir, capsys):
    assert main(["generate", "--model", str(tiny_llama2_dir), "--prompt", "hi", "--levels", "L0", "--max-new-tokens", "2",
                 "--ci", "300", "--no-store"]) == 0
    text = capsys.readouterr().out
    assert "[energy " in text and "estimated:cpu-tdp" in text and "300 g/kWh" in text
