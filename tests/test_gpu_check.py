"""benchmarks/gpu_check.py: the dry run (tiny config, CPU) with Sprout's other packages made unimportable,
and its GPU measurement path (NVML counter and integrated power side by side) on a fake NVML.
No GPU in this session: the real run is documented in docs/gpu.md."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
BLOCKED = ("streamlit", "pandas", "plotly", "pulp", "sklearn", "sentence_transformers", "psutil", "accelerate", "gguf",
           "llama_cpp", "scipy")
RUNNER = (
    "import runpy, sys\n"
    f"for m in {BLOCKED!r}: sys.modules[m] = None  # as on a bare GPU machine: torch, transformers, nvidia-ml-py only\n"
    f"sys.argv = [{str(SCRIPT)!r}] + sys.argv[1:]\n"
    f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
)


def test_dry_run_writes_the_report_without_the_apps_other_packages(tmp_path):
    out = tmp_path / "gpu_check.json"
    p = subprocess.run([sys.executable, "-c", RUNNER, "--dry-run", "--out", str(out)], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    rep = json.loads(out.read_text())
    assert rep["mode"] == "dry-run" and rep["schema"] == 1
    assert rep["model"]["placement"] == "system" and rep["model"]["directive_set"] == "paper"  # as Llama-2-chat
    assert [lv["level"] for lv in rep["levels"]] == ["L0", "L1", "L2"]
    tokens = [lv["runs"][0]["new_tokens"] for lv in rep["levels"]]
    assert tokens == [lv["max_new_tokens"] for lv in rep["levels"]] == [24, 12, 6]  # fixed token counts
    assert rep["checks"]["exact_token_counts"] and rep["checks"]["no_overlapping_windows"]
    assert rep["checks"]["all_concurrent_completed"] and rep["checks"]["app_packages_imported"] == []
    c = rep["concurrency"]
    assert c["requests"] == 4 and c["overlapping_windows"] == 0 and len(c["energy_j"]) == 4
    assert rep["checks"]["nvml_counter_used"] is False and any("NVML counter not in use" in n for n in rep["notes"])
    assert rep["peak_memory_gb"] > 0 and rep["duration_s"] < 120
    assert not list(tmp_path.glob("sprout-gpu-check-*"))  # the model folder is removed


def test_bad_invocation_and_no_cuda(tmp_path):
    p = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "x.json"), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "--dry-run" in p.stderr


def test_counter_and_integrated_power_side_by_side_on_a_fake_gpu(tiny_lm):
    """The GPU run's measurement (two NVML windows around one answer), with a fake 200 W GPU."""
    from sprout_core.directives import Directive
    from sprout_core.energy import detect_meter
    from sprout_core.energy.nvml import CudaIdentity, normalize_uuid
    from tests.fakes_energy import FakeGpu, make_fake_nvml

    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    nvml = make_fake_nvml([FakeGpu("GPU-1234", "00000000:3B:00.0", power_w=200.0, period_s=0.02)])
    ident = CudaIdentity(0, normalize_uuid("GPU-1234"), None)
    counter = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=ident, prefer="nvml-counter")
    power = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=ident, prefer="nvml-power")
    assert (counter.method, power.method) == ("measured:nvml-counter", "measured:nvml-power")
    runs = [gc.one_answer(tiny_lm, Directive("L1", "Answer briefly."), 40, [counter, power]) for _ in range(2)]
    s = gc.summarise(runs, ["nvml-counter", "nvml-power"])
    for r in runs:
        dur = r["window"][1] - r["window"][0]
        assert r["energy_nvml-counter"]["energy_j"] == pytest.approx(200.0 * dur, rel=0.5, abs=5.0)
        assert r["energy_nvml-power"]["energy_j"] == pytest.approx(200.0 * dur, rel=0.3)
        assert r["energy_nvml-counter"]["j_per_token"] == pytest.approx(r["energy_nvml-counter"]["energy_j"] / r["new_tokens"])
    assert s["power_vs_counter_pct"] is not None and abs(s["power_vs_counter_pct"]) < 60
