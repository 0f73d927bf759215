"""The process's single background sampler: reads each open window's meter every period (≤ 100 ms).

It feeds :meth:`EnergyWindow.live` while tokens stream and supplies the power samples that
power-integrating meters need. The thread starts with the first open window and stops (joined)
when the last one closes, so an idle process runs no sampler at all. A sampling error never
reaches the generation thread: it is counted in :attr:`Sampler.errors` and the window keeps its
start and end readings.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any, Protocol

_log = logging.getLogger("sprout.energy.sampler")


class SampledWindow(Protocol):
    """What the sampler feeds (an :class:`sprout_core.energy.base.EnergyWindow`): a ``meter`` with
    ``sample()`` and ``_add(sample)``. A protocol, so this module needs nothing from ``energy.base``
    (which imports it)."""

    meter: Any

    def _add(self, sample: Any) -> None: ...


class Sampler:
    """Background thread sampling the meters of subscribed windows every ``period_s`` seconds."""

    def __init__(self, period_s: float = 0.05) -> None:
        if not (0 < period_s <= 0.1):
            raise ValueError(f"sampler period must be in (0, 0.1] s, got {period_s}")
        self.period_s = float(period_s)
        self._windows: list[SampledWindow] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.samples_taken = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, window: SampledWindow) -> None:
        """Start sampling ``window.meter`` into ``window`` (starts the thread if needed)."""
        with self._lock:
            self._windows.append(window)
            if not self.running:
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="sprout-energy-sampler", daemon=True)
                self._thread.start()

    def unsubscribe(self, window: SampledWindow) -> None:
        """Stop sampling into ``window``; the thread stops when no window is left."""
        with self._lock:
            if window in self._windows:
                self._windows.remove(window)
            last = not self._windows
        if last:
            self.stop()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop and join the thread (idempotent)."""
        with self._lock:
            if self._windows:
                return
            thread = self._thread
            self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        with self._lock:
            if self._thread is thread and (thread is None or not thread.is_alive()):
                self._thread = None

    def _run(self) -> None:
        next_t = time.perf_counter()
        while not self._stop.is_set():
            next_t += self.period_s
            with self._lock:
                windows = list(self._windows)
            seen: dict[int, object] = {}
            for w in windows:
                try:
                    key = id(w.meter)
                    if key not in seen:  # one read per meter per tick, shared by its windows
                        seen[key] = w.meter.sample()
                    w._add(seen[key])
                    self.samples_taken += 1
                except Exception as exc:  # noqa: BLE001 - never let sampling kill the thread
                    _log.debug("never let sampling kill the thread: %s", exc)
                    self.errors += 1
            delay = next_t - time.perf_counter()
            if delay < 0:  # fell behind (slow read or busy GIL): do not burst to catch up
                next_t = time.perf_counter()
                delay = 0
            if self._stop.wait(delay):
                break


_SAMPLER: Sampler | None = None
_SAMPLER_LOCK = threading.Lock()


def get_sampler() -> Sampler:
    """The process-wide sampler (created on first use, period 50 ms)."""
    global _SAMPLER
    with _SAMPLER_LOCK:
        if _SAMPLER is None:
            _SAMPLER = Sampler()
            atexit.register(_shutdown)
        return _SAMPLER


def configure_sampler(period_s: float) -> Sampler:
    """Set the process sampler's period (s, ≤ 0.1); takes effect at the next start of the thread."""
    s = get_sampler()
    if not (0 < period_s <= 0.1):
        raise ValueError(f"sampler period must be in (0, 0.1] s, got {period_s}")
    s.period_s = float(period_s)
    return s


def _shutdown() -> None:
    s = _SAMPLER
    if s is not None:
        with s._lock:
            s._windows.clear()
        s.stop()
