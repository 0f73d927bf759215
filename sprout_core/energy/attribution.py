"""Energy of concurrent requests on one shared device (a serving engine), split by tokens.

A serving engine (vLLM, llama.cpp server, Ollama …) answers several requests at once on the same
GPUs or CPU cores, so one meter's reading cannot be given whole to any one of them. The rule:

    The meter is read at every request's start and end and every sampling period in between
    (≤ 100 ms). Each interval between two consecutive readings has an energy E (J) and a set of
    requests in flight during all of it (starts and ends fall on readings). E is split among
    them in proportion to the tokens each produced in that interval; if none produced a token
    (e.g. all are reading their prompts), E is split equally. An interval with no request in
    flight is idle energy and belongs to no request.

So the parts of the requests add up exactly to the energy measured while any request was in
flight, and a request alone on the device gets all of it — the same number as a plain
:class:`~sprout_core.energy.EnergyWindow`. What the rule cannot see: prompt processing (prefill)
is billed to the tokens produced in the same interval, not to the request whose prompt it was;
a counter that updates only every ~100 ms (NVML) moves energy between neighbouring intervals,
which evens out over requests longer than a few updates.

:func:`split_interval` is the rule for one interval; :func:`attribute` replays it over recorded
readings (tests, docs); :class:`AttributedMeter` applies it live for the app: its windows are used
exactly like an ordinary meter's, plus :meth:`AttributedWindow.add_tokens` as tokens arrive.

**Across processes** (issue 20.5): several Sprout processes (two CLI runs, the app and a CLI run) that
stream from one local server each read the same server counter, so each alone would give its requests the
whole interval. A :class:`ServerLedger` — a small JSON file per server under the state folder, behind a
``filelock`` lock — lists every process's requests in flight with their token rate (tokens/s over its
last interval). Each process keeps of an interval's energy E only ``E × own tokens / (own tokens + the
other processes' rate × interval)`` (or by requests in flight when no tokens were produced) and splits
that among its own requests by the rule above; the rest is the others' (:attr:`AttributedMeter.foreign_j`).
The parts of all processes then add up to what the server used, to the accuracy of the rates: the
cross-process share is an **estimate** (the reading is flagged :data:`FLAG_CROSS_PROCESS`, and its source
says so), even when the counter itself is a measurement.

Units: J, W, s.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock

from sprout_core.energy.base import (
    FLAG_METER_ERROR,
    FLAG_SHARED,
    FLAG_SHORT_WINDOW,
    METHOD_NONE,
    EnergyMeter,
    EnergyReading,
    EnergyWindow,
    Sample,
)

_log = logging.getLogger("sprout.energy.attribution")

#: reading flag: part of the energy went to requests of other processes, their share estimated from token rates
FLAG_CROSS_PROCESS = "cross-process-share-estimated"


class ServerLedger:
    """The requests in flight on one server, of every process that meters it (a JSON file under a lock).

    ``path``: the ledger file (one per server; ``server_meter`` puts it in ``<state>/serving``);
    ``owner``: this process's key (default ``pid:<pid>``; tests give two owners in one process).
    Entries not refreshed for :attr:`stale_s` seconds, or of a process that has exited, are dropped, so a
    killed process never holds a share. I/O errors are counted in :attr:`errors` and leave the split to
    this process alone (as without a ledger)."""

    stale_s = 5.0

    def __init__(self, path: Path | str, owner: str | None = None, lock_timeout_s: float = 1.0) -> None:
        self.path = Path(path)
        self.owner = owner or f"pid:{os.getpid()}"
        self._lock = filelock.FileLock(str(self.path) + ".lock", timeout=lock_timeout_s)
        self.errors = 0
        self._last: tuple[int, float] = (0, 0.0)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a torn or foreign file: start afresh
        return data if isinstance(data, dict) else {}

    def exchange(self, rates: Mapping[Hashable, float]) -> tuple[int, float]:
        """Publish this owner's requests in flight (id → tokens/s; empty: none) and return the other owners'
        ``(requests in flight, Σ tokens/s)``."""
        now = time.time()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                data = self._read()
                others = {k: v for k, v in data.items() if k != self.owner and isinstance(v, dict)
                          and now - float(v.get("t", 0)) < self.stale_s and _pid_alive(v.get("pid"))}
                if rates:
                    others[self.owner] = {"t": now, "pid": os.getpid(),
                                          "requests": {str(k): max(0.0, float(r)) for k, r in rates.items()}}
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(others), encoding="utf-8")
                os.replace(tmp, self.path)
                others.pop(self.owner, None)
        except (OSError, ValueError, TypeError, filelock.Timeout):
            self.errors += 1
            return self._last
        reqs = [r for v in others.values() for r in (v.get("requests") or {}).values()]
        self._last = (len(reqs), float(sum(reqs)))
        return self._last


def _pid_alive(pid) -> bool:
    try:
        import psutil

        return pid is not None and psutil.pid_exists(int(pid))
    except (ImportError, ValueError, TypeError):
        return True


def split_interval(energy_j: float, tokens: Mapping[Hashable, int]) -> dict[Hashable, float]:
    """The rule for one interval: ``energy_j`` J split among the requests in ``tokens`` (id → tokens
    produced in the interval) in proportion to their tokens, or equally if none produced any.

    The parts add up to ``energy_j`` (to rounding); no requests → ``{}``.
    """
    if not tokens:
        return {}
    total = sum(max(0, int(n)) for n in tokens.values())
    if total > 0:
        return {k: energy_j * max(0, int(n)) / total for k, n in tokens.items()}
    share = energy_j / len(tokens)
    return {k: share for k in tokens}


@dataclass(frozen=True)
class RequestSpan:
    """One request for :func:`attribute`: id, start and end time (s), and the time of each token."""

    id: Hashable
    start: float
    end: float
    token_times: tuple[float, ...] = ()


@dataclass
class Attribution:
    """Result of :func:`attribute`: J per request, J while busy (= their sum) and idle J."""

    energy_j: dict[Hashable, float]
    busy_j: float
    idle_j: float


def attribute(readings: Sequence[tuple[float, float]], requests: Sequence[RequestSpan]) -> Attribution:
    """Replay the rule over cumulative meter readings ``(t s, energy J)``.

    The readings must include every request's start and end time (as the live meter takes them);
    a token at time ``t`` counts in the interval ``(t0, t1]`` that contains it.
    """
    pts = sorted(readings)
    times = {t for t, _ in pts}
    for r in requests:
        if r.start not in times or r.end not in times:
            raise ValueError(f"request {r.id!r}: its start and end must be meter readings")
        if r.end < r.start:
            raise ValueError(f"request {r.id!r} ends before it starts")
    out = {r.id: 0.0 for r in requests}
    busy = idle = 0.0
    for (t0, e0), (t1, e1) in zip(pts, pts[1:]):
        e = max(0.0, e1 - e0)
        live = [r for r in requests if r.start <= t0 and r.end >= t1]
        if not live:
            idle += e
            continue
        busy += e
        toks = {r.id: sum(1 for t in r.token_times if t0 < t <= t1) for r in live}
        for k, v in split_interval(e, toks).items():
            out[k] += v
    return Attribution(out, busy, idle)


# --------------------------------------------------------------------------- live
@dataclass
class _Request:
    id: int
    t_start: float
    tokens: int = 0
    pending: int = 0           # tokens since the last reading
    energy_j: float = 0.0
    effective_s: float = 0.0   # Σ interval length × share (for the ± W × s uncertainty)
    last_power_w: float | None = None
    peers: int = 1             # most requests in flight together (all processes)
    t_end: float | None = None
    foreign: bool = False      # shared an interval with another process's request (share estimated)


class _Feed:
    """What the process sampler sees: the inner meter and a callback for each reading."""

    def __init__(self, ledger: "AttributedMeter") -> None:
        self.meter = ledger.inner
        self._ledger = ledger

    def _add(self, s: Sample) -> None:
        self._ledger._reading(s)


class AttributedMeter(EnergyMeter):
    """A meter on a device shared by concurrent requests: each window gets its token share.

    Wraps ``inner`` (NVML counter of the server's GPUs, RAPL, the CPU-time estimate of the server's
    processes, or a :class:`~sprout_core.energy.NullMeter` for a remote server) and keeps the
    method label of ``inner``: splitting does not turn a measurement into an estimate. Thread-safe;
    share one instance per device among all sessions, or overlaps go unseen.
    """

    def __init__(self, inner: EnergyMeter, sampler=None, ledger: ServerLedger | None = None) -> None:
        super().__init__(inner.device)
        self.inner = inner
        self.name = inner.name
        self.method = inner.method
        self.counter_based = True
        self.counter_period_s = inner.counter_period_s
        self.rel_uncertainty = inner.rel_uncertainty
        self.power_uncertainty_w = inner.power_uncertainty_w
        self.base_flags = tuple(inner.base_flags)
        self.notes = inner.notes
        self._sampler = sampler
        self._lock = threading.Lock()
        self._sub_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._active: dict[int, _Request] = {}
        self._last: tuple[float, float, float | None] | None = None  # (t, cumulative J, power W)
        self._feed = _Feed(self)
        #: J split among requests so far, and J read while no request was in flight (not attributed)
        self.attributed_j = 0.0
        self.idle_j = 0.0
        #: the requests in flight of every process metering the same server (None: this process alone)
        self.shared_ledger = ledger
        #: J left to other processes' requests (their share of intervals this process read)
        self.foreign_j = 0.0
        self._rates: dict[int, float] = {}
        self.errors = 0

    def __getattr__(self, name: str):
        """Anything else (``model`` of a CPU estimate, ``gpu_name`` …) is the inner meter's."""
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # -- EnergyMeter
    def sample(self) -> Sample:
        return self.inner.sample()

    def describe(self) -> str:
        if not self.inner.available:
            return self.inner.describe()
        return (f"{self.inner.describe()}; shared by concurrent requests: each sampling interval's energy is split "
                "among the requests in flight by the tokens each produced in it")

    @property
    def available(self) -> bool:
        return self.inner.available

    def close(self) -> None:
        self.inner.close()

    def window(self, live: bool = True) -> "AttributedWindow":
        return AttributedWindow(self)

    @property
    def in_flight(self) -> int:
        """Requests in flight now."""
        with self._lock:
            return len(self._active)

    # -- ledger
    def _get_sampler(self):
        if self._sampler is None:
            from sprout_core.energy.sampler import get_sampler

            return get_sampler()
        return self._sampler

    def _cumulative(self, s: Sample) -> tuple[float, float | None] | None:
        """(cumulative J, power W) of a reading; power-only meters are integrated (trapezoid); None if unusable."""
        if self.inner.counter_based:
            return None if s.energy_j is None else (float(s.energy_j), s.power_w)
        if s.power_w is None:
            return None
        if self._last is None:
            return 0.0, s.power_w
        t0, e0, p0 = self._last
        p0 = s.power_w if p0 is None else p0
        return e0 + 0.5 * (p0 + s.power_w) * max(0.0, s.t - t0), s.power_w

    def _reading(self, s: Sample) -> None:
        with self._lock:
            self._close_interval(s)

    def _close_interval(self, s: Sample) -> None:
        """Close the interval ending at reading ``s`` and split its energy (caller holds the lock)."""
        if self._last is not None and s.t <= self._last[0]:
            return  # a sampler reading that arrived after a newer start/end reading
        cum = self._cumulative(s)
        if cum is None:
            self.errors += 1
            return
        if self._last is None:
            self._last = (s.t, cum[0], cum[1])
            return
        t0, e0, _ = self._last
        e = max(0.0, cum[0] - e0)
        dt = s.t - t0
        self._last = (s.t, cum[0], cum[1])
        live = list(self._active.values())
        total_tok = sum(r.pending for r in live)
        foreign_n, foreign_rate = 0, 0.0
        if self.shared_ledger is not None:
            self._rates = {r.id: (r.pending / dt if dt > 0 else 0.0) for r in live}
            foreign_n, foreign_rate = self.shared_ledger.exchange(self._rates)
        if not live:
            if foreign_n:
                self.foreign_j += e
            else:
                self.idle_j += e
            return
        own = 1.0
        if foreign_n:
            foreign_tok = foreign_rate * dt
            own = (total_tok / (total_tok + foreign_tok) if total_tok + foreign_tok > 0 else
                   len(live) / (len(live) + foreign_n))
            self.foreign_j += e * (1.0 - own)
            e *= own
        self.attributed_j += e
        parts = split_interval(e, {r.id: r.pending for r in live})
        for r in live:
            part = parts[r.id]
            share = ((r.pending / total_tok) if total_tok else 1.0 / len(live)) * own
            r.energy_j += part
            r.effective_s += dt * share
            r.last_power_w = part / dt if dt > 0 else r.last_power_w
            r.peers = max(r.peers, len(live) + foreign_n)
            r.foreign = r.foreign or bool(foreign_n)
            r.pending = 0

    def _start(self) -> _Request:
        with self._sub_lock:
            with self._lock:
                s = self.inner.sample()  # read under the lock: start/end readings stay in time order
                self._close_interval(s)
                r = _Request(next(self._ids), s.t)
                self._active[r.id] = r
                first = len(self._active) == 1
                if self.shared_ledger is not None:  # the others count it from now on
                    self._rates[r.id] = 0.0
                    self.shared_ledger.exchange(self._rates)
            if first:
                self._get_sampler().subscribe(self._feed)
        return r

    def _tokens(self, r: _Request, total: int) -> None:
        with self._lock:
            if r.id in self._active and total > r.tokens:
                r.pending += total - r.tokens
                r.tokens = total

    def _end(self, r: _Request) -> None:
        """Close the request's last interval and take it out of flight (re-raises a failed reading)."""
        with self._sub_lock:
            with self._lock:
                try:
                    s = self.inner.sample()
                    self._close_interval(s)
                    r.t_end = s.t
                finally:
                    self._active.pop(r.id, None)
                    last = not self._active
                    if self.shared_ledger is not None:
                        self._rates.pop(r.id, None)
                        self.shared_ledger.exchange(self._rates)  # never raises (errors are counted)
            if last:
                self._get_sampler().unsubscribe(self._feed)


class AttributedWindow(EnergyWindow):
    """One request's window on an :class:`AttributedMeter`; report tokens with :meth:`add_tokens`."""

    def __init__(self, meter: AttributedMeter) -> None:
        super().__init__(meter, live=True)
        self.ledger = meter
        self._req: _Request | None = None

    def __enter__(self) -> "AttributedWindow":
        self._t0 = time.perf_counter()
        if not self.ledger.available:
            return self
        try:
            self._req = self.ledger._start()
        except Exception as exc:  # noqa: BLE001 - a failing meter never breaks the request
            _log.warning("a failing meter never breaks the request: %s", exc)
            self._error = f"{type(exc).__name__}: {exc}"
        return self

    def add_tokens(self, total: int) -> None:
        """The request has produced ``total`` tokens so far (called as they arrive, from any thread)."""
        if self._req is not None:
            self.ledger._tokens(self._req, int(total))

    def __exit__(self, exc_type, exc, tb) -> None:
        led, inner = self.ledger, self.ledger.inner
        if not led.available:
            flags = [f for f in getattr(inner, "base_flags", ())]
            self.reading = EnergyReading(None, METHOD_NONE, inner.describe(), time.perf_counter() - self._t0, None, None,
                                         flags)
            return None
        r = self._req
        if r is not None:
            try:
                led._end(r)
            except Exception as exc:  # noqa: BLE001 - a failing meter never breaks the request: the reading is n/a with the reason
                _log.warning("energy meter failed at the window's end; reading n/a: %s", exc)
                self._error = f"{type(exc).__name__}: {exc}"
        if r is None or self._error is not None:
            self.reading = EnergyReading(None, led.method, f"{led.describe()} — reading failed: {self._error}",
                                         time.perf_counter() - self._t0, None, None, [FLAG_METER_ERROR])
            return None
        dur = max(0.0, (r.t_end or time.perf_counter()) - r.t_start)
        flags = list(led.base_flags)
        if r.peers > 1:
            flags.append(FLAG_SHARED)
        if r.foreign:
            flags.append(FLAG_CROSS_PROCESS)
        if led.counter_period_s and dur < led.counter_period_s:
            flags.append(FLAG_SHORT_WINDOW)
        parts = []
        if led.rel_uncertainty is not None:
            parts.append(r.energy_j * led.rel_uncertainty)
        if led.power_uncertainty_w is not None:
            parts.append(led.power_uncertainty_w * r.effective_s)
        src = led.describe() + (f"; overlapped with up to {r.peers - 1} other request(s)" if r.peers > 1 else "")
        if r.foreign:
            src += ("; some of them in other processes on the same server: this request's share of those intervals "
                    "is estimated from their token rates (docs/serving.md)")
        self.reading = EnergyReading(r.energy_j, led.method, src, dur, r.energy_j / dur if dur > 0 else None,
                                     max(parts) if parts else None, flags)
        return None

    def live(self) -> tuple[float | None, float | None]:
        """``(power_w, energy_j so far)`` of this request's share; ``(None, None)`` before the first interval."""
        if self.reading is not None:
            return self.reading.power_w_mean, self.reading.energy_j
        r = self._req
        if r is None:
            return None, None
        with self.ledger._lock:
            if r.last_power_w is None:
                return None, None
            return r.last_power_w, r.energy_j


class MeterSum(EnergyMeter):
    """Several meters read as one (e.g. the NVML counters of a tensor-parallel server's GPUs).

    Counters and powers add up; a part that cannot be read makes the sum unknown (``None``), never
    a partial sum presented as the whole.
    """

    def __init__(self, parts: Sequence[EnergyMeter], label: str = "") -> None:
        if not parts:
            raise ValueError("MeterSum needs at least one meter")
        first = parts[0]
        super().__init__(first.device)
        self.parts = list(parts)
        self.label = label
        self.name = first.name
        self.method = first.method
        self.counter_based = all(p.counter_based for p in self.parts)
        self.counter_period_s = max(p.counter_period_s for p in self.parts)
        self.power_uncertainty_w = (sum(p.power_uncertainty_w or 0.0 for p in self.parts)
                                    if any(p.power_uncertainty_w for p in self.parts) else None)
        self.rel_uncertainty = first.rel_uncertainty
        self.base_flags = tuple(first.base_flags)
        self.power_method = getattr(first, "power_method", first.method)

    def sample(self) -> Sample:
        ss = [p.sample() for p in self.parts]
        t = max(s.t for s in ss)
        e = None if any(s.energy_j is None for s in ss) else sum(s.energy_j for s in ss)
        pw = None if any(s.power_w is None for s in ss) else sum(s.power_w for s in ss)
        return Sample(t, e, pw)

    def describe(self) -> str:
        return self.label or " + ".join(p.describe() for p in self.parts)

    def close(self) -> None:
        for p in self.parts:
            p.close()
