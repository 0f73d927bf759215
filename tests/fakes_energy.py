"""Fakes for energy hardware: a ``pynvml``-like module and a powercap folder builder."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace


class FakeNVMLError(Exception):
    pass


class FakeGpu:
    """One fake GPU: constant power ``power_w``; the energy counter advances in steps of ``period_s``."""

    def __init__(self, uuid: str, bus_id: str, name: str = "Fake H100", power_w: float = 200.0,
                 period_s: float = 0.1, counter: bool = True, power: bool = True):
        self.uuid, self.bus_id, self.name = uuid, bus_id, name
        self.power_w, self.period_s = power_w, period_s
        self.counter, self.power = counter, power
        self.t0 = time.perf_counter()
        self.offset_mj = 123_456_789.0

    def energy_mj(self) -> float:
        elapsed = time.perf_counter() - self.t0
        steps = int(elapsed / self.period_s) if self.period_s > 0 else elapsed
        return self.offset_mj + steps * self.period_s * self.power_w * 1000.0


def make_fake_nvml(gpus: list[FakeGpu], init_error: str | None = None):
    """A module-like object with the pynvml functions Sprout uses."""
    calls = {"init": 0}

    def nvmlInit():
        calls["init"] += 1
        if init_error:
            raise FakeNVMLError(init_error)

    def get(h, attr):
        return gpus[h]

    def energy(h):
        g = gpus[h]
        if not g.counter:
            raise FakeNVMLError("Not Supported")
        return g.energy_mj()

    def power(h):
        g = gpus[h]
        if not g.power:
            raise FakeNVMLError("Not Supported")
        return int(g.power_w * 1000)

    return SimpleNamespace(
        NVMLError=FakeNVMLError,
        calls=calls,
        nvmlInit=nvmlInit,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: i,
        nvmlDeviceGetUUID=lambda h: gpus[h].uuid,
        nvmlDeviceGetPciInfo=lambda h: SimpleNamespace(busId=gpus[h].bus_id.encode()),
        nvmlDeviceGetName=lambda h: gpus[h].name,
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetPowerUsage=power,
    )


def make_powercap(root: Path, zones: dict[str, dict]) -> Path:
    """Build a fake ``/sys/class/powercap``. ``zones``: folder name → {name, energy_uj, max}."""
    root.mkdir(parents=True, exist_ok=True)
    for folder, z in zones.items():
        d = root / folder
        d.mkdir(parents=True, exist_ok=True)
        (d / "name").write_text(z["name"] + "\n")
        (d / "energy_uj").write_text(f"{z['energy_uj']}\n")
        (d / "max_energy_range_uj").write_text(f"{z.get('max', 262143328850)}\n")
    return root


def set_uj(root: Path, folder: str, value: int) -> None:
    (root / folder / "energy_uj").write_text(f"{value}\n")
