"""CPU estimate: this process's CPU time × a per-core power from a TDP model — ``estimated:cpu-tdp``.

Used when no hardware counter is readable (e.g. a virtual machine without RAPL).

Model: a busy core draws ``per_core_w = tdp_w / cores`` watts (the package's thermal design power
shared evenly among its physical cores). Energy of a window = CPU-seconds used by this process
(all its threads, from ``time.process_time()``) × ``per_core_w``. What it leaves out: idle/base
power of the package, DRAM, the rest of the machine, other processes. The stated uncertainty is
``rel_uncertainty`` × energy (default ±50 %), because TDP is a thermal design limit, not a measured
draw: real per-core power at load sits anywhere from well below it (light vector use, turbo off)
to above it (short turbo bursts).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from sprout_core.energy.base import FLAG_PROCESS_ONLY, METHOD_CPU_TDP, EnergyMeter, Sample


@dataclass(frozen=True)
class CpuPowerModel:
    """TDP model of one CPU package: ``tdp_w`` W over ``cores`` physical cores."""

    name: str
    tdp_w: float
    cores: int
    source: str
    rel_uncertainty: float = 0.5

    def __post_init__(self) -> None:
        if self.tdp_w <= 0 or self.cores <= 0:
            raise ValueError(f"CPU model {self.name!r}: tdp_w and cores must be > 0 (got {self.tdp_w} W, {self.cores} cores)")
        if not (0 <= self.rel_uncertainty <= 1):
            raise ValueError(f"CPU model {self.name!r}: rel_uncertainty must be within [0, 1], got {self.rel_uncertainty}")

    @property
    def per_core_w(self) -> float:
        """Power of one busy core, W."""
        return self.tdp_w / self.cores


#: named CPU models (manufacturer specifications); "generic" is the default when the CPU is unknown
CPU_PRESETS: dict[str, CpuPowerModel] = {
    "generic": CpuPowerModel(
        "generic server CPU", 85.0, 16,
        "assumption: 85 W TDP over 16 cores (≈5.3 W per busy core), typical of mid-range server parts; set your CPU's TDP and cores for a better estimate",
    ),
    "laptop": CpuPowerModel("laptop CPU (15 W class, 4 cores)", 15.0, 4, "assumption: a 15 W TDP mobile part with 4 cores"),
    "amd-epyc-7763": CpuPowerModel("AMD EPYC 7763", 280.0, 64, "AMD product specification: 280 W default TDP, 64 cores"),
    "amd-epyc-9654": CpuPowerModel("AMD EPYC 9654", 360.0, 96, "AMD product specification: 360 W default TDP, 96 cores"),
    "intel-xeon-8380": CpuPowerModel("Intel Xeon Platinum 8380", 270.0, 40, "Intel product specification: 270 W TDP, 40 cores"),
    "intel-xeon-8480": CpuPowerModel("Intel Xeon Platinum 8480+", 350.0, 56, "Intel product specification: 350 W TDP, 56 cores"),
}


def cpu_model_name() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()``, else "unknown CPU"."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def resolve_cpu_model(model: CpuPowerModel | str | None = None, *, tdp_w: float | None = None,
                      cores: int | None = None, per_core_w: float | None = None,
                      rel_uncertainty: float | None = None) -> CpuPowerModel:
    """A :class:`CpuPowerModel` from a preset name / model, overridden by explicit settings.

    ``per_core_w`` (W) wins over ``tdp_w``/``cores``. Unknown preset names raise ``ValueError``
    listing the presets.
    """
    if isinstance(model, CpuPowerModel):
        base = model
    else:
        key = (model or "generic").lower()
        if key not in CPU_PRESETS:
            raise ValueError(f"unknown CPU power preset {model!r}; choose one of {', '.join(CPU_PRESETS)}")
        base = CPU_PRESETS[key]
    unc = base.rel_uncertainty if rel_uncertainty is None else float(rel_uncertainty)
    if per_core_w is not None:
        if per_core_w <= 0:
            raise ValueError(f"per_core_w must be > 0 W, got {per_core_w}")
        return CpuPowerModel(f"custom ({per_core_w:g} W per core)", float(per_core_w), 1, "set by the user", unc)
    if tdp_w is not None or cores is not None:
        t = float(tdp_w if tdp_w is not None else base.tdp_w)
        c = int(cores if cores is not None else base.cores)
        return CpuPowerModel(f"custom ({t:g} W TDP / {c} cores)", t, c, "set by the user", unc)
    if unc != base.rel_uncertainty:
        return CpuPowerModel(base.name, base.tdp_w, base.cores, base.source, unc)
    return base


class CpuTdpMeter(EnergyMeter):
    """Estimated energy from this process's CPU time × per-core power (W)."""

    name = "cpu-tdp"
    method = METHOD_CPU_TDP
    counter_based = True
    counter_period_s = 0.0
    base_flags = (FLAG_PROCESS_ONLY,)

    def __init__(self, device: str = "cpu", model: CpuPowerModel | None = None, cpu_time=None,
                 subject: str = "process") -> None:
        super().__init__(device)
        self.model = model or CPU_PRESETS["generic"]
        self.rel_uncertainty = self.model.rel_uncertainty
        self._cpu_time = cpu_time or time.process_time  # s of CPU time used by the metered process(es)
        #: whose CPU time: "process" (this one) or e.g. "server process 1234 (llama_cpp.server)"
        self.subject = subject
        self._cpu_name = cpu_model_name()
        self._last: tuple[float, float] | None = None

    def sample(self) -> Sample:
        t = time.perf_counter()
        cpu_s = float(self._cpu_time())
        energy = cpu_s * self.model.per_core_w
        power = None
        last = self._last
        if last is not None and t > last[0]:
            power = max(0.0, (energy - last[1]) / (t - last[0]))
        self._last = (t, energy)
        return Sample(t, energy, power)

    def describe(self) -> str:
        return (f"estimate: {self.subject} CPU time × {self.model.per_core_w:.2f} W per busy core "
                f"({self.model.name}; {self._cpu_name}, {os.cpu_count() or '?'} logical CPUs visible), "
                f"±{self.model.rel_uncertainty:.0%}; excludes idle power, DRAM and other processes")
