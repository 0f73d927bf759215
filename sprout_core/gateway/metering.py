"""A meter read in the background, so a server's event loop never waits for it.

Reading a local upstream's energy can be slow: the CPU-time estimate walks the server's process tree
(``psutil`` scans ``/proc``: tens of ms on a busy machine), and the shared attribution reads the meter at
every request's start and end and every sampling period. :class:`PolledMeter` reads the inner meter in one
background thread every ``period_s`` (while requests are in flight) and answers :meth:`sample` at once with
the latest reading stamped *now* — the same as a hardware counter that updates every ``period_s``, which the
attribution already allows for (energy moves between neighbouring intervals, evens out over requests longer
than a few periods; see :mod:`sprout_core.energy.attribution`). After ``idle_s`` without a call it stops
polling; the next call reads synchronously once, so idle energy is never given to the next request.
"""
from __future__ import annotations

import logging
import threading
import time

from sprout_core.energy.base import EnergyMeter, Sample

_log = logging.getLogger("sprout.gateway.metering")


class PolledMeter(EnergyMeter):
    """``inner`` read every ``period_s`` s in a background thread (see the module docstring)."""

    def __init__(self, inner: EnergyMeter, period_s: float = 0.2, idle_s: float = 2.0) -> None:
        super().__init__(inner.device)
        self.inner = inner
        self.name, self.method, self.counter_based = inner.name, inner.method, inner.counter_based
        self.counter_period_s = max(float(inner.counter_period_s or 0.0), float(period_s))
        self.rel_uncertainty, self.power_uncertainty_w = inner.rel_uncertainty, inner.power_uncertainty_w
        self.base_flags = tuple(inner.base_flags)
        self.notes = list(inner.notes)
        self.period_s, self.idle_s = float(period_s), float(idle_s)
        self._lock = threading.Lock()
        self._last: Sample | None = None
        self._asked = 0.0
        self._thread: threading.Thread | None = None
        self.reads = 0

    def _read(self) -> Sample:
        s = self.inner.sample()
        self.reads += 1
        with self._lock:
            self._last = s
        return s

    def _poll(self) -> None:
        while True:
            time.sleep(self.period_s)
            with self._lock:
                if time.monotonic() - self._asked > self.idle_s:
                    self._thread = None
                    return
            try:
                self._read()
            except Exception as exc:  # noqa: BLE001 - a failed read keeps the last one; the next try may work
                _log.debug("a failed read keeps the last one; the next try may work: %s", exc)
                continue

    def sample(self) -> Sample:
        now = time.monotonic()
        with self._lock:
            self._asked = now
            last, running = self._last, self._thread is not None
        if last is None or not running:
            last = self._read()
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._poll, name="sprout-gateway-meter", daemon=True)
                    self._thread.start()
        return Sample(time.perf_counter(), last.energy_j, last.power_w)

    def describe(self) -> str:
        return f"{self.inner.describe()}; read every {self.period_s:g} s in the background"

    @property
    def available(self) -> bool:
        return self.inner.available

    def close(self) -> None:
        self.inner.close()
