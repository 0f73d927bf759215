"""Energy meters: NVML (fake pynvml), RAPL (fake powercap), CPU estimate, sampler, detection."""
from __future__ import annotations

import os
import threading
import time

import pytest

from sprout_core.energy import (
    FLAG_COMPLETED_FROM_POWER,
    FLAG_SHORT_WINDOW,
    FLAG_WHOLE_DEVICE,
    METHOD_CPU_TDP,
    METHOD_NONE,
    METHOD_NVML_COUNTER,
    METHOD_NVML_POWER,
    METHOD_RAPL,
    CpuPowerModel,
    EnergyReading,
    Sample,
    detect_meter,
    get_sampler,
    integrate_power,
)
from sprout_core.energy.cpu import CpuTdpMeter, resolve_cpu_model
from sprout_core.energy.nvml import CudaIdentity, normalize_pci, normalize_uuid
from sprout_core.energy.rapl import RaplMeter, RaplPermissionError, find_zones
from tests.fakes_energy import FakeGpu, make_fake_nvml, make_powercap, set_uj

UUID_A = "GPU-aaaaaaaa-0000-0000-0000-000000000001"
UUID_B = "GPU-bbbbbbbb-0000-0000-0000-000000000002"


def two_gpus(**kw):
    # NVML index 0 is GPU A (200 W), index 1 is GPU B (300 W): torch's cuda:0 will be B
    return [FakeGpu(UUID_A, "00000000:3B:00.0", "GPU A", 200.0, **kw),
            FakeGpu(UUID_B, "00000000:86:00.0", "GPU B", 300.0, **kw)]


# ---------------------------------------------------------------- NVML
def test_cuda_device_matched_by_uuid_not_index():
    gpus = two_gpus()
    nvml = make_fake_nvml(gpus)
    ident = CudaIdentity(0, normalize_uuid(UUID_B.removeprefix("GPU-")), None)
    m = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=ident)
    assert m.method == METHOD_NVML_COUNTER
    assert m.handle == 1 and "GPU B" in m.describe() and "uuid" in m.matched_by


def test_cuda_device_matched_by_pci_when_uuid_unknown():
    nvml = make_fake_nvml(two_gpus())
    ident = CudaIdentity(0, None, normalize_pci("0000:86:00.0"))
    m = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=ident)
    assert m.handle == 1 and m.matched_by.startswith("pci")


def test_unmatched_device_gives_na_not_a_guess():
    nvml = make_fake_nvml(two_gpus())
    m = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=CudaIdentity(0, "gpu-zzzz", None))
    assert m.method == METHOD_NONE
    assert any("refusing to guess" in n for n in m.notes)
    with m.window() as w:
        pass
    assert w.reading.energy_j is None and w.reading.method == METHOD_NONE


def test_nvml_missing_driver_gives_na():
    nvml = make_fake_nvml([], init_error="Driver Not Loaded")
    m = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=CudaIdentity(0, "gpu-x", None))
    assert m.method == METHOD_NONE and "Driver Not Loaded" in m.describe()


def test_nvml_counter_window_energy_matches_power_times_time():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=250.0, period_s=0.02)]
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None),
                     counter_period_s=0.02)
    with m.window() as w:
        time.sleep(0.5)
        live_p, live_e = w.live()
    r = w.reading
    assert r.method == METHOD_NVML_COUNTER and FLAG_WHOLE_DEVICE in r.flags
    # counter steps of 20 ms: error at most one step at each end
    assert r.energy_j == pytest.approx(250.0 * r.duration_s, abs=2 * 0.02 * 250.0 + 1e-6)
    assert r.power_w_mean == pytest.approx(250.0, rel=0.25)
    assert r.uncertainty_j == pytest.approx(5.0 * r.duration_s)
    assert live_p == pytest.approx(250.0)
    assert live_e is not None and 0 < live_e <= r.energy_j


def test_short_nvml_window_is_completed_from_power_and_labelled():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=200.0, period_s=10.0)]  # counter effectively frozen
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None))
    with m.window(live=False) as w:
        time.sleep(0.03)
    r = w.reading
    assert FLAG_SHORT_WINDOW in r.flags and FLAG_COMPLETED_FROM_POWER in r.flags
    assert r.method == METHOD_NVML_POWER  # no longer claims the counter
    assert r.energy_j == pytest.approx(200.0 * r.duration_s, rel=1e-6)


def test_counter_unsupported_falls_back_to_integrated_power():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=150.0, counter=False)]
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None))
    assert m.method == METHOD_NVML_POWER
    assert any("counter not usable" in n for n in m.notes)
    with m.window() as w:
        time.sleep(0.3)
    r = w.reading
    assert r.energy_j == pytest.approx(150.0 * r.duration_s, rel=1e-6)
    assert r.method == METHOD_NVML_POWER


def test_no_power_and_no_counter_gives_na():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", counter=False, power=False)]
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None))
    assert m.method == METHOD_NONE


def test_normalizers():
    assert normalize_pci("00000000:3B:00.0") == normalize_pci("0000:3b:00.0") == (0, 0x3B, 0)
    assert normalize_pci("garbage") is None
    assert normalize_uuid(b"GPU-ABC") == "gpu-abc" == normalize_uuid("abc")


# ---------------------------------------------------------------- RAPL
def rapl_tree(tmp_path, pkg=1_000_000, dram=500_000, max_uj=10_000_000):
    return make_powercap(tmp_path / "powercap", {
        "intel-rapl:0": {"name": "package-0", "energy_uj": pkg, "max": max_uj},
        "intel-rapl:0/intel-rapl:0:0": {"name": "core", "energy_uj": 77, "max": max_uj},
        "intel-rapl:0/intel-rapl:0:1": {"name": "dram", "energy_uj": dram, "max": max_uj},
    })


def test_rapl_reads_package_plus_dram_not_core(tmp_path):
    root = rapl_tree(tmp_path)
    m = detect_meter("cpu", powercap_root=root)
    assert m.method == METHOD_RAPL and isinstance(m, RaplMeter)
    assert sorted(z.name for z in m.zones) == ["dram", "package-0"]
    with m.window(live=False) as w:
        set_uj(root, "intel-rapl:0", 3_000_000)          # +2 J
        set_uj(root, "intel-rapl:0/intel-rapl:0:1", 1_500_000)  # +1 J
        set_uj(root, "intel-rapl:0/intel-rapl:0:0", 9_999_999)  # core: ignored
    assert w.reading.energy_j == pytest.approx(3.0)
    assert w.reading.method == METHOD_RAPL and FLAG_WHOLE_DEVICE in w.reading.flags


def test_rapl_wraparound(tmp_path):
    root = rapl_tree(tmp_path, pkg=9_000_000, dram=0, max_uj=10_000_000)
    m = RaplMeter("cpu", root)
    with m.window(live=False) as w:
        set_uj(root, "intel-rapl:0", 500_000)  # wrapped: 9.0 → 10.0 (+1 J + 1 µJ) → 0.5 (+0.5 J)
    assert w.reading.energy_j == pytest.approx(1.5 + 1e-6)
    assert m.zones[0].wraps == 1


def test_rapl_permission_denied_explains_fix(tmp_path, monkeypatch):
    root = rapl_tree(tmp_path)
    from sprout_core.energy import rapl

    real = rapl.RaplZone.read_raw

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self.path / "energy_uj"))

    monkeypatch.setattr(rapl.RaplZone, "read_raw", denied)
    with pytest.raises(RaplPermissionError) as ei:
        find_zones(root)
    assert "chmod" in str(ei.value) and "CVE-2020-8694" in str(ei.value)
    m = detect_meter("cpu", powercap_root=root)
    assert m.method == METHOD_CPU_TDP  # falls back to the estimate, and says why
    assert any("permission denied" in n for n in m.notes)
    monkeypatch.setattr(rapl.RaplZone, "read_raw", real)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_rapl_permission_denied_real_file_mode(tmp_path):
    root = rapl_tree(tmp_path)
    os.chmod(root / "intel-rapl:0" / "energy_uj", 0)
    with pytest.raises(RaplPermissionError):
        find_zones(root)


def test_no_powercap_falls_back_to_estimate(tmp_path):
    m = detect_meter("cpu", powercap_root=tmp_path / "absent")
    assert m.method == METHOD_CPU_TDP
    assert any("RAPL not available" in n for n in m.notes)


# ---------------------------------------------------------------- CPU estimate
def test_cpu_estimate_is_cpu_seconds_times_per_core_power():
    clock = {"t": 10.0}
    m = CpuTdpMeter("cpu", CpuPowerModel("test", 80.0, 8, "test", 0.3), cpu_time=lambda: clock["t"])
    with m.window(live=False) as w:
        clock["t"] += 2.5  # 2.5 CPU-seconds at 10 W per core
    r = w.reading
    assert r.energy_j == pytest.approx(25.0)
    assert r.method == METHOD_CPU_TDP and not r.measured
    assert r.uncertainty_j == pytest.approx(7.5)


def test_cpu_estimate_grows_with_real_work():
    m = detect_meter("cpu", powercap_root="/nonexistent", per_core_w=10.0)
    with m.window() as w:
        t = time.process_time()
        while time.process_time() - t < 0.2:
            pass
    assert w.reading.energy_j >= 10.0 * 0.2 * 0.99
    assert w.reading.energy_j < 10.0 * (w.reading.duration_s * (os.cpu_count() or 1) + 0.05)


def test_cpu_model_settings_and_errors():
    assert resolve_cpu_model("amd-epyc-7763").per_core_w == pytest.approx(280 / 64)
    assert resolve_cpu_model(None, tdp_w=100, cores=4).per_core_w == 25
    assert resolve_cpu_model(None, per_core_w=3).per_core_w == 3
    with pytest.raises(ValueError, match="unknown CPU power preset"):
        resolve_cpu_model("pentium-4")
    with pytest.raises(ValueError):
        detect_meter("cpu", tdp_w=-5)
    with pytest.raises(ValueError, match="unknown energy backend"):
        detect_meter("cpu", prefer="magic")


def test_unknown_device_and_off_give_na():
    assert detect_meter("mps").method == METHOD_NONE
    m = detect_meter("cpu", prefer="none")
    with m.window() as w:
        pass
    assert w.reading.energy_j is None and w.reading.label() == "n/a"
    assert detect_meter("cpu", powercap_root="/nonexistent", allow_estimate=False).method == METHOD_NONE


# ---------------------------------------------------------------- sampler and window mechanics
def test_sampler_runs_only_while_windows_open_and_stops_cleanly():
    s = get_sampler()
    m = detect_meter("cpu", powercap_root="/nonexistent")
    with m.window() as w:
        time.sleep(0.25)
        assert s.running
        n = len(w.samples())
    assert n >= 2  # period ≤ 100 ms
    assert not s.running
    assert not any(t.name == "sprout-energy-sampler" for t in threading.enumerate())


def test_two_windows_share_one_sampler_thread():
    m = detect_meter("cpu", powercap_root="/nonexistent")
    with m.window() as a, m.window() as b:
        time.sleep(0.15)
        assert sum(t.name == "sprout-energy-sampler" for t in threading.enumerate()) == 1
    assert a.reading and b.reading


def test_failing_meter_during_sampling_does_not_break_the_window():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=100.0)]
    nvml = make_fake_nvml(gpus)
    m = detect_meter("cuda:0", nvml_module=nvml, cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None), prefer="nvml-power")
    with m.window() as w:
        gpus[0].power = False  # power reads fail mid-window → power None samples
        time.sleep(0.15)
        gpus[0].power = True
    assert w.reading.energy_j is not None


def test_integrate_power_trapezoid():
    s = [Sample(0.0, None, 100.0), Sample(1.0, None, 200.0), Sample(3.0, None, 200.0)]
    assert integrate_power(s) == pytest.approx(150 + 400)
    assert integrate_power(s[:1]) is None


def test_reading_label():
    r = EnergyReading(12.345, METHOD_RAPL, "x", 1.0, 12.3, 0.5, [])
    assert r.label() == "12.35 ± 0.5 J (measured:rapl)" and r.measured
    assert EnergyReading(None, METHOD_NONE, "x", 1.0).label() == "n/a"


def test_meter_failing_at_the_end_gives_na_with_a_flag_not_an_exception():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=100.0)]
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None))
    with m.window() as w:
        gpus[0].counter = False  # e.g. the GPU fell off the bus
    assert w.reading.energy_j is None and "meter-error" in w.reading.flags
    assert "reading failed" in w.reading.source
    assert not get_sampler().running


def test_meter_failing_at_the_start_gives_na():
    gpus = [FakeGpu(UUID_A, "00000000:3B:00.0", power_w=100.0)]
    m = detect_meter("cuda:0", nvml_module=make_fake_nvml(gpus), cuda_identity=CudaIdentity(0, normalize_uuid(UUID_A), None))
    gpus[0].counter = False
    with m.window() as w:
        assert w.live() == (None, None)
    assert w.reading.energy_j is None and w.reading.label().startswith("n/a")
