"""Meter interface: readings, windows and the abstract :class:`EnergyMeter`.

Units everywhere: energy in J, power in W, time in s.

A backend implements :meth:`EnergyMeter.sample`, returning a :class:`Sample` with a cumulative
energy counter (J, monotonic within the process) and/or an instantaneous power (W). The window
logic — bracketing a request, completing short counter windows from power × time, integrating
power samples — lives here once for every backend.
"""
from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

log = logging.getLogger("sprout.energy")

#: method labels (the team's vocabulary; shown next to every figure)
METHOD_NVML_COUNTER = "measured:nvml-counter"
METHOD_NVML_POWER = "measured:nvml-power"
METHOD_RAPL = "measured:rapl"
METHOD_CPU_TDP = "estimated:cpu-tdp"
METHOD_NONE = "n/a"

#: flag texts (stable strings; the UI and the store show them)
FLAG_SHORT_WINDOW = "short-window"
FLAG_COMPLETED_FROM_POWER = "completed-from-power"
FLAG_TWO_POINT = "two-point-power"
FLAG_WHOLE_DEVICE = "whole-device"
FLAG_PROCESS_ONLY = "process-cpu-only"
FLAG_METER_ERROR = "meter-error"
FLAG_SHARED = "shared-by-tokens"   # split with overlapping requests on a shared device (attribution.py)
FLAG_REMOTE = "remote-server"      # a server on another machine: energy not measurable from here
FLAG_SYNC_FAILED = "sync-failed"   # torch.cuda.synchronize failed: queued GPU work may fall outside the window


@dataclass
class EnergyReading:
    """Energy of one window.

    ``energy_j``: joules consumed in the window, ``None`` when unknown ("n/a", never 0).
    ``method``: how it was obtained (``measured:…`` / ``estimated:…`` / ``n/a``).
    ``source``: human description incl. the device (e.g. "NVML energy counter, NVIDIA H100 (GPU-…)").
    ``duration_s``: wall-clock length of the window, s.
    ``power_w_mean``: ``energy_j / duration_s`` in W, ``None`` when unknown.
    ``uncertainty_j``: ± J where the method has a stated uncertainty, else ``None``.
    ``flags``: caveats (``short-window``, ``completed-from-power``, ``whole-device`` …).
    ``started_at`` / ``ended_at``: wall-clock times (``time.time()``, s since the epoch) the window opened
    and closed, ``None`` when the reading was not made by a window.
    """

    energy_j: float | None
    method: str
    source: str
    duration_s: float
    power_w_mean: float | None = None
    uncertainty_j: float | None = None
    flags: list[str] = field(default_factory=list)
    started_at: float | None = None
    ended_at: float | None = None

    @property
    def measured(self) -> bool:
        """True for a hardware measurement, False for an estimate or n/a."""
        return self.method.startswith("measured:") and self.energy_j is not None

    def label(self) -> str:
        """``"12.3 J (measured:nvml-counter)"``, ``"n/a"`` or ``"n/a (remote server)"``."""
        if self.energy_j is None:
            if FLAG_REMOTE in self.flags:
                return "n/a (remote server)"
            return f"n/a ({self.method})" if self.method != METHOD_NONE else "n/a"
        unc = f" ± {self.uncertainty_j:.3g}" if self.uncertainty_j is not None else ""
        return f"{self.energy_j:.4g}{unc} J ({self.method})"

    def to_dict(self) -> dict:
        return {
            "energy_j": self.energy_j, "energy_method": self.method, "energy_source": self.source,
            "duration_s": self.duration_s, "power_w_mean": self.power_w_mean,
            "energy_uncertainty_j": self.uncertainty_j, "energy_flags": list(self.flags),
        }


@dataclass(frozen=True)
class Sample:
    """One reading of a meter at ``t`` (``time.perf_counter()`` s).

    ``energy_j``: cumulative counter in J (backend-specific zero), ``None`` for power-only meters.
    ``power_w``: instantaneous (or last-interval) power in W, ``None`` when not available.
    """

    t: float
    energy_j: float | None
    power_w: float | None


class EnergyMeter(ABC):
    """One energy source for one device.

    Subclasses set :attr:`name` (short id), :attr:`method` (label), and implement :meth:`sample`.
    ``counter_based``: the energy of a window is the difference of two counter samples; otherwise
    it is the time integral of power samples.
    """

    name: str = "meter"
    method: str = METHOD_NONE
    counter_based: bool = True
    #: seconds between counter updates (windows shorter than this are completed from power × time)
    counter_period_s: float = 0.0
    #: stated relative uncertainty of the energy (fraction), and/or absolute power uncertainty (W)
    rel_uncertainty: float | None = None
    power_uncertainty_w: float | None = None
    #: flags every reading of this meter carries
    base_flags: tuple[str, ...] = ()

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        #: why other backends were not picked (filled by detect_meter)
        self.notes: list[str] = []

    @abstractmethod
    def sample(self) -> Sample:
        """Read the source now (thread-safe)."""

    @abstractmethod
    def describe(self) -> str:
        """Human description of the source and device, e.g. for the UI."""

    @property
    def available(self) -> bool:
        return self.method != METHOD_NONE

    def close(self) -> None:  # noqa: B027 - optional hook, deliberately not abstract
        """Release the source (NVML handles …); default: nothing."""

    def window(self, live: bool = True) -> "EnergyWindow":
        """A context manager bracketing one request; ``live`` subscribes to the process sampler."""
        return EnergyWindow(self, live=live)

    def _sync(self) -> str | None:
        """Wait for queued device work (``torch.cuda.synchronize`` on CUDA devices). Returns ``None`` when done
        (or nothing to wait for), else why it failed: the caller flags the reading (:data:`FLAG_SYNC_FAILED`)
        instead of silently giving a window that misses queued work; the failure is logged."""
        if not self.device.startswith("cuda"):
            return None
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize(self.device)
        except Exception as exc:  # noqa: BLE001 - metering must never break generation: flagged and logged
            reason = f"{type(exc).__name__}: {exc}"
            log.warning("CUDA synchronize failed on %s (%s): the energy window may miss queued GPU work",
                        self.device, reason)
            return reason
        return None

    def _uncertainty(self, energy_j: float | None, duration_s: float) -> float | None:
        if energy_j is None:
            return None
        parts = []
        if self.rel_uncertainty is not None:
            parts.append(abs(energy_j) * self.rel_uncertainty)
        if self.power_uncertainty_w is not None:
            parts.append(self.power_uncertainty_w * duration_s)
        return max(parts) if parts else None


def integrate_power(samples: list[Sample]) -> float | None:
    """Trapezoid integral of power samples over their times, J; ``None`` with < 2 usable points."""
    pts = [(s.t, s.power_w) for s in samples if s.power_w is not None]
    if len(pts) < 2:
        return None
    pts.sort()
    total = 0.0
    for (t0, p0), (t1, p1) in zip(pts, pts[1:]):
        total += 0.5 * (p0 + p1) * (t1 - t0)
    return total


class EnergyWindow:
    """One request's energy window. Use as ``with meter.window() as w: ... w.live() ...; w.reading``."""

    def __init__(self, meter: EnergyMeter, live: bool = True) -> None:
        self.meter = meter
        self.live_enabled = live
        self._lock = threading.Lock()
        self._samples: list[Sample] = []
        self._start: Sample | None = None
        self._end: Sample | None = None
        self._subscribed = False
        self._error: str | None = None
        self._sync_errors: list[str] = []
        self.reading: EnergyReading | None = None

    # sampler callback (background thread)
    def _add(self, s: Sample) -> None:
        with self._lock:
            if self._end is None:
                self._samples.append(s)

    def __enter__(self) -> "EnergyWindow":
        self._wall0 = time.time()
        m = self.meter
        if not m.available:
            self._t0 = time.perf_counter()
            return self
        self._note_sync(m._sync(), "start")
        try:
            self._start = m.sample()
        except Exception as exc:  # noqa: BLE001 - a failing meter never breaks the request: n/a, flagged, logged
            self._error = f"{type(exc).__name__}: {exc}"
            log.warning("energy meter %s failed at the window's start: %s", m.name, self._error)
            self._t0 = time.perf_counter()
            return self
        self._t0 = self._start.t
        if self.live_enabled:
            from sprout_core.energy.sampler import get_sampler

            get_sampler().subscribe(self)
            self._subscribed = True
        return self

    def _note_sync(self, reason: str | None, where: str) -> None:
        if reason is not None:
            self._sync_errors.append(f"{where}: {reason}")

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._close()
        finally:
            if self.reading is not None:
                self.reading.started_at, self.reading.ended_at = self._wall0, time.time()
                if self._sync_errors and FLAG_SYNC_FAILED not in self.reading.flags:
                    self.reading.flags.append(FLAG_SYNC_FAILED)
                    self.reading.source += f" — CUDA synchronize failed ({'; '.join(self._sync_errors)})"

    def _close(self) -> None:
        m = self.meter
        if not m.available:
            dur = time.perf_counter() - self._t0
            self.reading = EnergyReading(None, METHOD_NONE, m.describe(), dur, None, None, [])
            return None
        self._note_sync(m._sync(), "end")
        if self._subscribed:
            from sprout_core.energy.sampler import get_sampler

            get_sampler().unsubscribe(self)
        end = None
        if self._error is None:
            try:
                end = m.sample()
            except Exception as exc:  # noqa: BLE001 - a failing meter never breaks the request: n/a, flagged, logged
                self._error = f"{type(exc).__name__}: {exc}"
                log.warning("energy meter %s failed at the window's end: %s", m.name, self._error)
        if self._error is not None or end is None:
            dur = time.perf_counter() - self._t0
            self.reading = EnergyReading(None, m.method, f"{m.describe()} — reading failed: {self._error}", dur, None,
                                         None, [FLAG_METER_ERROR])
            return None
        with self._lock:
            self._end = end
            samples = [self._start, *[s for s in self._samples if self._start.t < s.t < end.t], end]
        self.reading = self._compute(samples)
        return None

    def _compute(self, samples: list[Sample]) -> EnergyReading:
        m = self.meter
        start, end = samples[0], samples[-1]
        dur = max(0.0, end.t - start.t)
        flags = list(m.base_flags)
        method = m.method
        energy: float | None = None
        if m.counter_based and start.energy_j is not None and end.energy_j is not None:
            energy = max(0.0, end.energy_j - start.energy_j)
            short = dur < m.counter_period_s or energy == 0.0
            if short and m.counter_period_s > 0:
                flags.append(FLAG_SHORT_WINDOW)
                integ = integrate_power(samples)
                if integ is None or integ <= 0:
                    pw = [s.power_w for s in samples if s.power_w is not None]
                    integ = (sum(pw) / len(pw)) * dur if pw else None
                if integ is not None:
                    energy = integ
                    flags.append(FLAG_COMPLETED_FROM_POWER)
                    method = getattr(m, "power_method", method)
        elif not m.counter_based:
            energy = integrate_power(samples)
            if len(samples) <= 2:
                flags.append(FLAG_TWO_POINT)
        power_mean = energy / dur if (energy is not None and dur > 0) else None
        return EnergyReading(energy, method, m.describe(), dur, power_mean, m._uncertainty(energy, dur), flags)

    def add_tokens(self, total: int) -> None:
        """The request has produced ``total`` tokens so far. A window that has its device to itself
        ignores this; :class:`~sprout_core.energy.attribution.AttributedWindow` splits shared energy by it."""

    def live(self) -> tuple[float | None, float | None]:
        """``(power_w, energy_j_so_far)`` from the sampler; ``(None, None)`` before the first sample.

        Safe to call from the thread consuming the token stream. Power is the latest sample's power,
        or the slope of the last two counter samples.
        """
        if self.reading is not None:
            return self.reading.power_w_mean, self.reading.energy_j
        if self._start is None:
            return None, None
        with self._lock:
            samples = [self._start, *self._samples[-256:]] if len(self._samples) > 256 else [self._start, *self._samples]
            all_samples = None
            if not self.meter.counter_based:
                all_samples = [self._start, *self._samples]
        if len(samples) < 2:
            return None, None
        last, prev = samples[-1], samples[-2]
        power = last.power_w
        if power is None and last.energy_j is not None and prev.energy_j is not None and last.t > prev.t:
            power = max(0.0, (last.energy_j - prev.energy_j) / (last.t - prev.t))
        if self.meter.counter_based:
            energy = None if last.energy_j is None or self._start.energy_j is None else max(0.0, last.energy_j - self._start.energy_j)
        else:
            energy = integrate_power(all_samples or samples)
        return power, energy

    def samples(self) -> list[Sample]:
        """The background samples taken inside the window so far (for charts and benchmarks)."""
        with self._lock:
            return list(self._samples)


class NullMeter(EnergyMeter):
    """No readable source: every reading is ``n/a`` with the reason in :attr:`reason`."""

    name = "none"
    method = METHOD_NONE

    def __init__(self, device: str = "cpu", reason: str = "no energy source") -> None:
        super().__init__(device)
        self.reason = reason

    def sample(self) -> Sample:
        return Sample(time.perf_counter(), None, None)

    def describe(self) -> str:
        return f"no energy source for {self.device}: {self.reason}"
