"""The NVML benchmark script: clear exit without a GPU, and a full run against the fake pynvml."""
import importlib.util
import json
import sys
from pathlib import Path

from tests.fakes_energy import FakeGpu, make_fake_nvml

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_energy_nvml", ROOT / "benchmarks" / "bench_energy_nvml.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_without_nvml_exits_3_with_a_message(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml([], init_error="NVML Shared Library Not Found"))
    monkeypatch.setattr(sys, "argv", ["bench_energy_nvml.py"])
    assert load_bench().main() == 3
    assert "nothing measured" in capsys.readouterr().err


def test_with_fake_gpu_counter_and_power_agree(monkeypatch, capsys):
    gpu = FakeGpu("GPU-aaaa", "00000000:3B:00.0", power_w=300.0, period_s=0.02)
    monkeypatch.setitem(sys.modules, "pynvml", make_fake_nvml([gpu]))
    monkeypatch.setattr(sys, "argv", ["bench_energy_nvml.py", "--windows", "0.01,0.3", "--repeats", "2", "--json"])
    mod = load_bench()
    monkeypatch.setattr(mod, "counter_period", lambda meter, probe_s=2.0: 0.02)
    assert mod.main() == 0
    report = json.loads(capsys.readouterr().out)
    by_w = {s["window_s"]: s for s in report["summary"]}
    assert by_w[0.01]["short_windows"] == 2  # counter steps every 20 ms: 10 ms windows are completed from power
    assert abs(by_w[0.3]["diff_pct_mean"]) < 20  # counter quantisation (±1 step of 20 ms) only
    assert by_w[0.3]["power_j_mean"] == __import__("pytest").approx(300 * 0.3, rel=0.2)
