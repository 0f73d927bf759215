"""Which meter measures a server (fakes for NVML, RAPL and processes; no GPU in this session)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from sprout_core.energy import FLAG_REMOTE, MeterSum
from sprout_core.energy.process import ProcessCpuClock, ProcessNotFoundError, pid_listening_on
from sprout_core.serving.client import ServerConfig
from sprout_core.serving.energy import server_meter
from tests.fakes_energy import FakeGpu, make_fake_nvml, make_powercap

GPUS = [FakeGpu("GPU-aaaa", "00000000:3B:00.0", power_w=300), FakeGpu("GPU-bbbb", "00000000:5E:00.0", power_w=200),
        FakeGpu("GPU-cccc", "00000000:86:00.0", power_w=100)]


def nvml_with_procs(procs_per_gpu: dict[int, list[int]]):
    m = make_fake_nvml(GPUS)
    m.nvmlDeviceGetComputeRunningProcesses = lambda h: [SimpleNamespace(pid=p) for p in procs_per_gpu.get(h, [])]
    return m


CFG = ServerConfig("http://127.0.0.1:8000/v1")


def test_remote_server_is_never_guessed():
    m = server_meter(ServerConfig("http://gpu-box.example.org:8000/v1"), local=False)
    assert not m.available and m.method == "n/a" and FLAG_REMOTE in m.inner.base_flags
    assert "n/a (remote server)" in m.describe() and "gpu-box.example.org:8000" in m.describe()
    assert server_meter(ServerConfig("http://203.0.113.7:8000/v1")).method == "n/a"


def test_switched_off():
    assert server_meter(ServerConfig(CFG.base_url, energy="none")).method == "n/a"
    assert server_meter(CFG, prefer="none", local=True).method == "n/a"


def test_configured_gpu_indices_sum_their_nvml_counters():
    m = server_meter(ServerConfig(CFG.base_url, gpu_indices=(0, 2)), local=True, nvml_module=make_fake_nvml(GPUS))
    assert m.method == "measured:nvml-counter" and isinstance(m.inner, MeterSum)
    assert "NVML indices 0, 2" in m.describe()
    s0 = m.sample()
    time.sleep(0.35)
    s1 = m.sample()
    assert (s1.energy_j - s0.energy_j) / (s1.t - s0.t) == pytest.approx(400, rel=0.5)  # 300 W + 100 W
    assert s1.power_w == pytest.approx(400)
    one = server_meter(ServerConfig(CFG.base_url, gpu_indices=(1,)), local=True, nvml_module=make_fake_nvml(GPUS))
    assert not isinstance(one.inner, MeterSum) and "Fake H100" in one.describe()


def test_gpus_are_found_from_the_server_process():
    nv = nvml_with_procs({1: [4242], 2: [999_999_999]})
    m = server_meter(CFG, local=True, nvml_module=nv, pid_finder=lambda port: 4242)
    assert m.method == "measured:nvml-counter" and "matched by explicit NVML index 1" in m.describe()


def test_gpu_machine_without_a_known_server_process_says_what_to_set():
    m = server_meter(CFG, local=True, nvml_module=nvml_with_procs({0: [os.getpid()]}), pid_finder=lambda port: None)
    assert m.method == "n/a" and "SPROUT_SERVER_GPUS" in m.describe()
    # GPUs busy with processes this user cannot see (a container): no CPU guess either
    m = server_meter(CFG, local=True, nvml_module=nvml_with_procs({0: [999_999_999]}), pid_finder=lambda port: os.getpid())
    assert m.method == "n/a" and "container" in m.describe()


def test_cpu_server_uses_rapl_when_readable(tmp_path):
    root = make_powercap(tmp_path / "powercap", {"intel-rapl:0": {"name": "package-0", "energy_uj": 1000}})
    m = server_meter(CFG, local=True, nvml_module=make_fake_nvml([]), powercap_root=root, pid_finder=lambda p: None)
    assert m.method == "measured:rapl"


def test_cpu_server_without_rapl_estimates_the_servers_own_cpu_time(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"])
    try:
        m = server_meter(CFG, local=True, nvml_module=make_fake_nvml([]), powercap_root=tmp_path / "none",
                         pid_finder=lambda port: busy.pid, per_core_w=10.0)
        assert m.method == "estimated:cpu-tdp"
        assert f"server process {busy.pid}" in m.describe() and "RAPL not available" in " ".join(m.notes)
        with m.window() as w:
            time.sleep(0.6)  # *this* process sleeps: only the server's CPU time counts
            w.add_tokens(1)
        assert w.reading.energy_j > 0.5  # ≥ ~0.1 s of server CPU × 10 W, though this process was idle
        assert w.reading.method == "estimated:cpu-tdp" and "process-cpu-only" in w.reading.flags
    finally:
        busy.kill()
        busy.wait()
    gone = server_meter(ServerConfig(CFG.base_url, pid=busy.pid), local=True, nvml_module=make_fake_nvml([]),
                        powercap_root=tmp_path / "none")
    assert gone.method == "n/a" and f"no process with PID {busy.pid}" in gone.describe()
    unknown = server_meter(CFG, local=True, nvml_module=make_fake_nvml([]), powercap_root=tmp_path / "none",
                           pid_finder=lambda port: None)
    assert unknown.method == "n/a" and "SPROUT_SERVER_PID" in unknown.describe()


def test_process_cpu_clock_counts_children_and_never_goes_down():
    parent = subprocess.Popen([sys.executable, "-c", (
        "import subprocess, sys, time\n"
        # the child burns 0.4 s of CPU, idles 0.5 s (so a poll sees its total), then exits
        "c = subprocess.Popen([sys.executable, '-c', 'import time\\nwhile time.process_time() < 0.4: pass\\ntime.sleep(0.5)'])\n"
        "c.wait(); time.sleep(30)")])
    try:
        clock = ProcessCpuClock(parent.pid)
        vals = []
        deadline = time.time() + 20
        while time.time() < deadline:
            vals.append(clock())
            time.sleep(0.1)
            if len(vals) > 5 and vals[-1] >= 0.4 and vals[-1] == vals[-3]:
                break
        time.sleep(0.8)  # the child has exited by now
        vals.append(clock())
        assert vals == sorted(vals)
        assert vals[-1] >= 0.38  # the child's CPU time, though the child has exited
    finally:
        parent.kill()
        parent.wait()
    with pytest.raises(ProcessNotFoundError):
        ProcessCpuClock(parent.pid)


def test_the_process_listening_on_a_port_is_found():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        assert pid_listening_on(s.getsockname()[1]) == os.getpid()
    finally:
        s.close()


def test_a_restarted_server_is_metered_anew_and_a_dead_one_keeps_what_it_used(tmp_path):
    from sprout_core.serving.client import ServerModel

    def busy():
        return subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<30: pass"])

    first = busy()
    try:
        srv = ServerModel(ServerConfig(CFG.base_url, pid=first.pid), info=None)
        opts = dict(powercap_root=str(tmp_path / "none"), per_core_w=10.0)
        m1 = srv.energy_meter(**opts)
        assert m1.method == "estimated:cpu-tdp" and srv.energy_meter(**opts) is m1
        with m1.window() as w:
            time.sleep(0.3)
            first.kill()
            first.wait()
            time.sleep(0.2)
        assert w.reading.energy_j is not None and w.reading.energy_j > 0  # energy up to the crash is kept
        srv.cfg = ServerConfig(CFG.base_url, pid=os.getpid())  # "restarted" under another PID
        m2 = srv.energy_meter(**opts)
        assert m2 is not m1 and str(os.getpid()) in m2.describe()
    finally:
        if first.poll() is None:
            first.kill()
