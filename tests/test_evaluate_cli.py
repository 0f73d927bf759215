"""CLI: evaluate (tiny model) reports bad rows, stores, judges, exports and resumes; error exits."""
from __future__ import annotations

import json

from sprout_core.cli import main


def test_evaluate_cli_runs_exports_and_resumes(tiny_llama2_dir, tmp_path, capsys):
    src = tmp_path / "mine.csv"
    src.write_text("prompt,reference,category\nWhat is 2+2?,4,math\n,5,math\nName a colour.,red,fact\n")
    out = tmp_path / "ev.jsonl"
    argv = ["evaluate", "--prompts", str(src), "--n", "2", "--levels", "L0,L1", "--judge", "reference",
            "--model", str(tiny_llama2_dir), "--max-new-tokens", "4", "--json", "--export", str(out)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert "row 3 skipped" in cap.err
    rep = json.loads(cap.out)
    assert rep["answers"] == 4 and rep["resumed_answers"] == 0
    assert rep["win_shares"]["reference"]["n_valid"] + rep["win_shares"]["reference"]["n_invalid"] == 2
    assert all(rep["levels"][lv]["new_tokens_mean"] <= 4 for lv in ("L0", "L1"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 2 and set(rows[0]["answers"]) == {"L0", "L1"}
    meta = json.loads(out.with_suffix(".meta.json").read_text())
    assert meta["levels"] == "L0,L1" and meta["judge"] == "reference"
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["resumed_answers"] == 4


def test_evaluate_cli_errors(capsys):
    assert main(["evaluate", "--prompts", "no-such-set"]) == 2
    assert "Named sets" in capsys.readouterr().err
    assert main(["evaluate", "--judge", "oracle"]) == 2
    assert main(["evaluate", "--n", "0"]) == 2
    assert main(["evaluate", "--levels", ","]) == 2
