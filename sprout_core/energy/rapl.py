"""Linux RAPL through powercap (``/sys/class/powercap/intel-rapl*``) — ``measured:rapl``.

Reads the package zones (``intel-rapl:N``, name ``package-N``) and their DRAM sub-zones
(``intel-rapl:N:M``, name ``dram``); core/uncore sub-zones are already inside the package and are
skipped. Each ``energy_uj`` counter (µJ) wraps at ``max_energy_range_uj``; the meter unwraps it on
every read (the background sampler reads often enough: a package counter wraps after minutes at
full load). AMD Zen CPUs expose the same interface (package only, no DRAM zone).

Since Linux 5.10 ``energy_uj`` is readable by root only (CVE-2020-8694). :class:`RaplPermissionError`
explains the fix.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sprout_core.energy.base import FLAG_WHOLE_DEVICE, METHOD_RAPL, EnergyMeter, Sample
from sprout_core.errors import EnergyError

DEFAULT_POWERCAP = Path("/sys/class/powercap")


class RaplError(EnergyError):
    """RAPL is absent or unusable; the message says why."""


class RaplPermissionError(RaplError):
    """``energy_uj`` exists but is not readable by this user."""


def permission_fix(files: list[Path]) -> str:
    """The message for unreadable counters, with the commands that fix it."""
    shown = ", ".join(str(f) for f in files[:3]) + (" …" if len(files) > 3 else "")
    return (
        f"RAPL energy counters exist but are not readable by this user (permission denied: {shown}). "
        "Since Linux 5.10 they are root-only (CVE-2020-8694). To let Sprout measure CPU energy, run once per boot: "
        "`sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj` "
        "(or add a udev rule / systemd-tmpfiles entry doing the same). Until then Sprout uses the CPU-time estimate "
        "(estimated:cpu-tdp)."
    )


@dataclass
class RaplZone:
    """One powercap zone: its folder, name, wrap range (µJ) and unwrapping state."""

    path: Path
    name: str
    max_range_uj: int
    last_raw_uj: int | None = None
    total_uj: int = 0
    wraps: int = 0

    def read_raw(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())

    def update(self) -> int:
        """Read the counter and return the unwrapped cumulative energy, µJ."""
        raw = self.read_raw()
        if self.last_raw_uj is not None:
            delta = raw - self.last_raw_uj
            if delta < 0:  # wrapped around max_energy_range_uj
                delta += self.max_range_uj + 1
                self.wraps += 1
            self.total_uj += delta
        self.last_raw_uj = raw
        return self.total_uj


def find_zones(root: Path | str = DEFAULT_POWERCAP) -> list[RaplZone]:
    """Package and DRAM zones under ``root``; raises :class:`RaplError` / :class:`RaplPermissionError`."""
    root = Path(root)
    if not root.is_dir():
        raise RaplError(f"RAPL not available: {root} does not exist (no powercap driver, e.g. a virtual machine or a non-Linux system)")
    packages = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1 and p.is_dir())
    if not packages:
        raise RaplError(f"RAPL not available: no intel-rapl:N package zone in {root}")
    candidates: list[tuple[Path, str]] = []
    for pkg in packages:
        candidates.append((pkg, _read_name(pkg)))
        for sub in sorted(pkg.glob(f"{pkg.name}:*")):
            nm = _read_name(sub)
            if nm == "dram":
                candidates.append((sub, nm))
    zones: list[RaplZone] = []
    denied: list[Path] = []
    for path, nm in candidates:
        try:
            max_range = int((path / "max_energy_range_uj").read_text().strip())
            zone = RaplZone(path, nm, max_range)
            zone.update()
        except PermissionError:
            denied.append(path / "energy_uj")
            continue
        except (OSError, ValueError) as exc:
            raise RaplError(f"RAPL zone {path} unreadable: {exc}") from exc
        zones.append(zone)
    if denied:
        raise RaplPermissionError(permission_fix(denied))
    return zones


def _read_name(path: Path) -> str:
    try:
        return (path / "name").read_text().strip()
    except OSError:
        return path.name


class RaplMeter(EnergyMeter):
    """Measured CPU package (+ DRAM) energy from RAPL counters; whole sockets, all processes."""

    name = "rapl"
    method = METHOD_RAPL
    counter_based = True
    counter_period_s = 0.0  # RAPL updates about every 1 ms: no short-window completion needed
    base_flags = (FLAG_WHOLE_DEVICE,)

    def __init__(self, device: str = "cpu", root: Path | str = DEFAULT_POWERCAP) -> None:
        super().__init__(device)
        self.root = Path(root)
        self.zones = find_zones(self.root)
        self._lock = threading.Lock()
        self._last: tuple[float, float] | None = None

    def sample(self) -> Sample:
        with self._lock:
            t = time.perf_counter()
            energy_j = sum(z.update() for z in self.zones) / 1e6
            power = None
            if self._last is not None and t > self._last[0]:
                power = max(0.0, (energy_j - self._last[1]) / (t - self._last[0]))
            self._last = (t, energy_j)
        return Sample(t, energy_j, power)

    def describe(self) -> str:
        names = ", ".join(f"{z.name} ({z.path.name})" for z in self.zones)
        return f"RAPL counters: {names}; whole CPU sockets incl. other processes"
