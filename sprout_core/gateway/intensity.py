"""The gateway's carbon intensity (g CO₂e/kWh) now: a fixed value, the zone's trace at the current hour of the
year, or — opt-in — Electricity Maps' live API, cached per hour, with the trace as labelled fallback.

Every reading says what it is: :class:`CIReading` carries the value, the source (``fixed``, ``trace``,
``electricitymaps`` or ``trace (live source unavailable: reason)``) and the signal as its source names it
(average/location-based vs marginal, direct vs life-cycle). The Electricity Maps call is
``GET {base}/carbon-intensity/latest?zone=Z`` with the token in the ``auth-token`` header (read from an
environment variable at each call, never stored or shown); its ``carbonIntensity`` is the zone's *average*
(location-based, consumption-based) intensity and ``emissionFactorType`` says ``lifecycle`` or ``direct``.
Nothing here reaches the network unless the operator chose ``--ci-source electricitymaps``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sprout_core import defaults, grid
from sprout_core.errors import InputError, MissingDataError

#: Electricity Maps' API base URL and the environment variable holding the token
ELECTRICITYMAPS_URL = "https://api.electricitymap.org/v3"
ELECTRICITYMAPS_TOKEN_ENV = "ELECTRICITYMAPS_API_TOKEN"
LIVE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class CIReading:
    """One hour's intensity: ``ci_g_per_kwh`` (``None`` = unknown), ``source`` label, ``signal`` (what kind of
    intensity), ``zone`` and the hour of the year it stands for."""

    ci_g_per_kwh: float | None
    source: str
    signal: str
    zone: str | None
    hour_of_year: int


def hour_of_year(t: float) -> tuple[int, int]:
    """``(year, hour of the year)`` of the epoch time ``t`` (s, UTC)."""
    d = _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc)
    start = _dt.datetime(d.year, 1, 1, tzinfo=_dt.timezone.utc)
    return d.year, int((d - start).total_seconds() // 3600)


def hour_start_iso(t: float) -> str:
    """ISO 8601 UTC start of the hour containing ``t``."""
    d = _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    return d.isoformat().replace("+00:00", "Z")


def latest_year(zone: str) -> int:
    years = [y for y, zones in grid.zones_by_year().items() if zone in zones]
    if not years:
        raise InputError(f"no carbon-intensity trace for zone {zone!r}: pick a shipped or uploaded zone "
                         "(python -m sprout_core grid --list) or give --ci")
    return defaults.latest_year(years)


class TraceSource:
    """The zone's trace (``--zone Z [--year Y]``, default its latest year) at the current hour of the year."""

    def __init__(self, zone: str, year: int | None = None, column: str = "direct") -> None:
        self.zone = zone
        self.year = latest_year(zone) if year is None else int(year)
        try:
            self.trace = grid.load_trace(zone, self.year, column)
        except MissingDataError as exc:
            raise InputError(f"carbon intensity for zone {zone!r} in {self.year} is not available ({exc})") from None
        self.column = column

    @property
    def ci_range(self) -> tuple[float, float]:
        return self.trace.min(), self.trace.max()

    def index(self, t: float) -> int:
        """The trace hour standing for time ``t``: the same hour of the year (the last hour for Dec 31 of a
        leap year against a shorter trace)."""
        _, h = hour_of_year(t)
        return min(h, len(self.trace) - 1)

    def history(self, t: float, hours: int = 24) -> np.ndarray:
        i = self.index(t)
        return np.asarray(self.trace.ci[max(0, i - hours):i], dtype=float)

    def signal(self) -> str:
        kind = "life-cycle" if self.column == "lca" else "direct"
        return f"average (location-based), {kind}; Electricity Maps hourly data for {self.zone} {self.year}"

    def read(self, t: float) -> CIReading:
        i = self.index(t)
        return CIReading(float(self.trace.ci[i]), f"trace ({self.zone} {self.year}, hour {i} of the year)",
                         self.signal(), self.zone, i)


class FixedSource:
    """A fixed intensity (``--ci``); the floor is placed in ``ci_range`` (the default zone's year) when known."""

    def __init__(self, ci: float, ci_range: tuple[float, float] | None = None) -> None:
        self.ci = float(ci)
        self.ci_range = ci_range or (self.ci, self.ci)
        self.zone = None

    def history(self, t: float, hours: int = 24) -> np.ndarray:
        return np.full(min(hours, 24), self.ci)

    def index(self, t: float) -> int:
        return hour_of_year(t)[1]

    def read(self, t: float) -> CIReading:
        return CIReading(self.ci, f"fixed ({self.ci:g} g/kWh, --ci)", "as given by the operator", None, self.index(t))


Fetch = Callable[[str, dict, float], dict]


def _http_get_json(url: str, headers: dict, timeout_s: float) -> dict:
    req = urllib.request.Request(url, headers=headers, method="GET")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 - the operator's opt-in URL
        return json.loads(resp.read().decode("utf-8"))


class ElectricityMapsSource:
    """Live intensity from Electricity Maps (opt-in), cached per hour; on any failure the trace at the same
    hour, labelled ``trace (live source unavailable: reason)``."""

    def __init__(self, zone: str, fallback: TraceSource, token_env: str = ELECTRICITYMAPS_TOKEN_ENV,
                 base_url: str = ELECTRICITYMAPS_URL, timeout_s: float = LIVE_TIMEOUT_S,
                 fetch: Fetch = _http_get_json) -> None:
        self.zone = zone
        self.fallback = fallback
        self.token_env = token_env
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)
        self._fetch = fetch
        self._cache: dict[tuple[int, int], CIReading] = {}
        self.calls = 0

    @property
    def ci_range(self) -> tuple[float, float]:
        return self.fallback.ci_range

    def history(self, t: float, hours: int = 24) -> np.ndarray:
        return self.fallback.history(t, hours)

    def index(self, t: float) -> int:
        return self.fallback.index(t)

    def read(self, t: float) -> CIReading:
        key = hour_of_year(t)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out = self._live(t)
        self._cache = {key: out}  # one hour cached: the next hour asks again
        return out

    def _fallback(self, t: float, why: str) -> CIReading:
        r = self.fallback.read(t)
        return CIReading(r.ci_g_per_kwh, f"trace (live source unavailable: {why})", r.signal, r.zone, r.hour_of_year)

    def _live(self, t: float) -> CIReading:
        token = os.environ.get(self.token_env)
        if not token:
            return self._fallback(t, f"no token in ${self.token_env}")
        url = f"{self.base_url}/carbon-intensity/latest?{urllib.parse.urlencode({'zone': self.zone})}"
        self.calls += 1
        try:
            data = self._fetch(url, {"auth-token": token, "Accept": "application/json"}, self.timeout_s)
        except urllib.error.HTTPError as exc:
            return self._fallback(t, f"Electricity Maps answered HTTP {exc.code}")
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            return self._fallback(t, f"Electricity Maps not reachable ({type(exc).__name__}: {why})")
        except ValueError as exc:
            return self._fallback(t, f"Electricity Maps sent something that is not JSON ({exc})")
        if not isinstance(data, dict):
            return self._fallback(t, "Electricity Maps sent an unexpected body")
        ci = data.get("carbonIntensity")
        if isinstance(ci, bool) or not isinstance(ci, (int, float)) or not (0 <= float(ci) <= 2000):
            return self._fallback(t, f"Electricity Maps gave no usable carbonIntensity ({ci!r})")
        factor = str(data.get("emissionFactorType") or "unstated")
        kind = {"lifecycle": "life-cycle", "direct": "direct"}.get(factor, factor)
        est = " (estimated by Electricity Maps" + (f": {data['estimationMethod']}" if data.get("estimationMethod") else "") \
            + ")" if data.get("isEstimated") else ""
        signal = f"average (location-based), {kind}{est}; Electricity Maps live API, {data.get('datetime', 'time n/a')}"
        return CIReading(float(ci), f"electricitymaps (live, zone {data.get('zone') or self.zone})", signal, self.zone,
                         self.index(t))
