"""Carbon accounting of a request: operational + embodied, in g CO₂e.

* Operational g = energy (kWh) × carbon intensity (g/kWh) × PUE (dimensionless, default 1.0).
* Embodied g = device embodied carbon (g) × request duration (s) ÷ device lifetime (s).

:func:`grams_per_request` is the one cost formula (the Playground's account, the optimizer's per-level
cost family, the replay, What-if and History all call it) and :func:`saving_pct` the one saving.

Unknown energy or intensity gives ``None`` (shown "n/a"), never 0. Carbon-intensity traces come from
:mod:`sprout_core.grid` (Electricity Maps, ODbL); this module only prices energy with them.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime

import numpy as np

from sprout_core import defaults, grid

_log = logging.getLogger("sprout.carbon")

J_PER_KWH = 3.6e6
SECONDS_PER_YEAR = 365 * 24 * 3600  # the Sprout simulator's year (365 d)


def kwh(energy_j: float | None) -> float | None:
    """J → kWh (``None`` stays ``None``)."""
    return None if energy_j is None else energy_j / J_PER_KWH


def grams_per_request(energy_kwh, duration_s, ci_g_per_kwh, pue=1.0, embodied_g_per_s=0.0):
    """g CO₂e of a request: ``energy_kwh`` (kWh) × ``ci_g_per_kwh`` (g/kWh) × ``pue`` (≥ 1, scales the
    operational part only) + ``embodied_g_per_s`` (g/s) × ``duration_s`` (s) — the one cost formula.

    Broadcasts over numpy arrays with numpy's rules (float32 inputs stay float32 when the scalars are
    Python floats); the caller lines up the axes. ``None`` for energy, duration or intensity (a scalar
    that is unknown) gives ``None`` ("n/a"), never 0.
    """
    if energy_kwh is None or duration_s is None or ci_g_per_kwh is None or pue is None or embodied_g_per_s is None:
        return None
    return energy_kwh * ci_g_per_kwh * pue + embodied_g_per_s * duration_s


@dataclass(frozen=True)
class EmbodiedModel:
    """Embodied (manufacturing) carbon of one device, amortised over its lifetime.

    ``device_g``: g CO₂e per device; ``lifetime_s``: seconds of service; ``source``: where the number comes from.
    """

    name: str
    device_g: float
    lifetime_s: float
    source: str

    def __post_init__(self) -> None:
        if self.device_g < 0:
            raise ValueError(f"embodied carbon must be ≥ 0 g, got {self.device_g}")
        if self.lifetime_s <= 0:
            raise ValueError(f"device lifetime must be > 0 s, got {self.lifetime_s}")

    @property
    def lifetime_years(self) -> float:
        return self.lifetime_s / SECONDS_PER_YEAR

    @property
    def g_per_s(self) -> float:
        """Embodied carbon charged per second of use, g/s."""
        return self.device_g / self.lifetime_s

    def grams(self, duration_s: float) -> float:
        """Embodied g CO₂e charged to ``duration_s`` seconds of use."""
        if duration_s < 0:
            raise ValueError(f"duration must be ≥ 0 s, got {duration_s}")
        return self.g_per_s * duration_s

    @classmethod
    def custom(cls, device_kg: float, lifetime_years: float, name: str = "custom") -> "EmbodiedModel":
        """A user-set model: ``device_kg`` kg CO₂e over ``lifetime_years`` years."""
        return cls(name, float(device_kg) * 1000.0, float(lifetime_years) * SECONDS_PER_YEAR, "set by the user")


#: named presets; values are approximate published estimates — check the source before citing
EMBODIED_PRESETS: dict[str, EmbodiedModel] = {
    "sprout-paper": EmbodiedModel(
        "Sprout paper (per device)", 26_356.568, 5 * SECONDS_PER_YEAR,
        "Li et al. 2024, Sprout (EMNLP): simulator constant 26,356.568 g per device over 5 years",
    ),
    "a100": EmbodiedModel(
        "NVIDIA A100 GPU", 150_000.0, 5 * SECONDS_PER_YEAR,
        "≈150 kg CO₂e per A100 (Luccioni, Viguier & Ligozat 2023, BLOOM carbon footprint, JMLR 24:253); 5-year life assumed",
    ),
    "h100": EmbodiedModel(
        "NVIDIA H100 GPU", 164_000.0, 5 * SECONDS_PER_YEAR,
        "≈164 kg CO₂e per H100 (NVIDIA HGX H100 product carbon footprint summary, 8-GPU board ÷ 8); 5-year life assumed",
    ),
    "cpu-server": EmbodiedModel(
        "CPU server (one node)", 2_500_000.0, 5 * SECONDS_PER_YEAR,
        "≈2,500 kg CO₂e per server node without GPUs (Luccioni et al. 2023, BLOOM estimate for a compute node); 5-year life assumed",
    ),
}
DEFAULT_EMBODIED = EMBODIED_PRESETS["sprout-paper"]


def embodied_preset(name: str) -> EmbodiedModel:
    """A preset by key; ``ValueError`` naming the keys otherwise."""
    try:
        return EMBODIED_PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown embodied-carbon preset {name!r}; choose one of {', '.join(EMBODIED_PRESETS)}") from None


@dataclass(frozen=True)
class CarbonAccount:
    """Carbon of one request, g CO₂e. ``None`` = unknown ("n/a").

    ``operational_g`` = kWh × ``ci_g_per_kwh`` × ``pue``; ``embodied_g`` = embodied model over ``duration_s``;
    ``total_g`` = both, ``None`` if operational is unknown. Labels: ``energy_method`` (how the energy was
    obtained), ``ci_label`` (where the intensity came from), ``embodied_name`` / ``embodied_source``.
    """

    energy_j: float | None
    duration_s: float
    ci_g_per_kwh: float | None
    pue: float
    operational_g: float | None
    embodied_g: float
    total_g: float | None
    energy_method: str = "n/a"
    ci_label: str = ""
    embodied_name: str = ""
    embodied_source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def energy_kwh(self) -> float | None:
        return kwh(self.energy_j)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["energy_kwh"] = self.energy_kwh
        return d


def account(energy_j: float | None, duration_s: float, ci_g_per_kwh: float | None, pue: float = 1.0,
            embodied: EmbodiedModel | str | None = None, *, energy_method: str = "n/a",
            ci_label: str = "") -> CarbonAccount:
    """Operational and embodied carbon of one request.

    ``energy_j`` J (``None`` = unknown), ``duration_s`` s, ``ci_g_per_kwh`` g CO₂e/kWh (``None`` = unknown),
    ``pue`` ≥ 1 (data-centre overhead; 1.0 = none), ``embodied`` a model or preset key (default: Sprout paper).
    """
    if pue < 1.0:
        raise ValueError(f"PUE must be ≥ 1.0, got {pue}")
    if ci_g_per_kwh is not None and ci_g_per_kwh < 0:
        raise ValueError(f"carbon intensity must be ≥ 0 g/kWh, got {ci_g_per_kwh}")
    if energy_j is not None and energy_j < 0:
        raise ValueError(f"energy must be ≥ 0 J, got {energy_j}")
    model = embodied_preset(embodied) if isinstance(embodied, str) else (embodied or DEFAULT_EMBODIED)
    notes = []
    if energy_j is None:
        notes.append("energy unknown: operational carbon n/a")
    if ci_g_per_kwh is None:
        notes.append("carbon intensity unknown: operational carbon n/a")
    dur = max(0.0, duration_s)
    op = grams_per_request(kwh(energy_j), dur, ci_g_per_kwh, pue, 0.0)
    emb = model.grams(dur)
    return CarbonAccount(
        energy_j=energy_j, duration_s=duration_s, ci_g_per_kwh=ci_g_per_kwh, pue=pue,
        operational_g=op, embodied_g=emb, total_g=grams_per_request(kwh(energy_j), dur, ci_g_per_kwh, pue, model.g_per_s),
        energy_method=energy_method, ci_label=ci_label, embodied_name=model.name,
        embodied_source=model.source, notes=notes,
    )


def saving_pct(cost, baseline, missing=None):
    """How much smaller ``cost`` is than ``baseline``, %: ``100 · (1 − cost / baseline)`` (positive = saving)
    — the one saving formula.

    Scalars: ``missing`` (default ``None``, "n/a") when either is unknown, not finite, or the baseline is
    ≤ 0. Arrays broadcast; entries whose baseline is ≤ 0 or not finite get ``missing`` (``NaN`` when
    ``missing`` is ``None``).
    """
    if cost is None or baseline is None:
        return missing
    if np.ndim(cost) == 0 and np.ndim(baseline) == 0:
        c, b = float(cost), float(baseline)
        if not (np.isfinite(b) and b > 0) or np.isnan(c):
            return missing
        return 100.0 * (1.0 - c / b)
    c, b = np.asarray(cost, dtype=float), np.asarray(baseline, dtype=float)
    ok = np.isfinite(b) & (b > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * (1.0 - c / np.where(ok, b, 1.0))
    return np.where(ok, out, np.nan if missing is None else missing)


#: the earlier name of :func:`saving_pct` (same function)
savings_pct = saving_pct


# ---- carbon intensity choice (prices energy with sprout_core.grid traces) ----------------------------

@dataclass(frozen=True)
class IntensityChoice:
    """The carbon intensity used to price energy: value (g/kWh) and a human label."""

    ci_g_per_kwh: float | None  # None = unknown (carbon n/a)
    zone: str | None
    label: str
    year: int | None = None
    hour: int | None = None  # hour of the year (0-based) or None for the yearly mean
    column: str = "direct"


def override_intensity(ci_g_per_kwh: float) -> IntensityChoice:
    """A user-set intensity (slider), 0–1,000 g/kWh."""
    if not (0 <= ci_g_per_kwh <= 1000):
        raise ValueError(f"carbon intensity override must be within 0–1,000 g/kWh, got {ci_g_per_kwh}")
    return IntensityChoice(float(ci_g_per_kwh), None, f"override {ci_g_per_kwh:g} g/kWh (slider value, not a grid trace)")


def unknown_intensity(reason: str) -> IntensityChoice:
    """No usable intensity: operational carbon will be ``None`` ("n/a")."""
    return IntensityChoice(None, None, f"unknown ({reason})")


def hour_of_year(year: int, month: int, day: int, hour: int) -> int:
    """0-based index of the UTC hour ``year-month-day hour:00`` in a full-year hourly trace."""
    start = datetime(int(year), 1, 1)
    return int((datetime(int(year), int(month), int(day), int(hour)) - start).total_seconds() // 3600)


def trace_intensity(zone: str, year: int, hour: int | None = None, column: str = "direct") -> IntensityChoice:
    """Intensity of ``zone`` in ``year`` at hour-of-year ``hour`` (0-based; ``None`` = yearly mean).

    Raises ``MissingDataError`` / ``TraceError`` from :mod:`sprout_core.grid`, and ``ValueError`` for an
    hour outside the trace.
    """
    tr = grid.load_trace(zone, year, column)
    source = "Electricity Maps" if tr.attribution == grid.ATTRIBUTION else "your data"
    if hour is None:
        return IntensityChoice(tr.mean(), zone, f"{zone} {year} yearly mean ({column}), {source}", year, None, column)
    if not (0 <= hour < len(tr)):
        raise ValueError(f"hour {hour} outside the {zone} {year} trace (0–{len(tr) - 1})")
    ts = str(tr.timestamps[hour]).replace("T", " ")[:16]
    return IntensityChoice(float(tr.ci[hour]), zone, f"{zone} {ts} UTC ({column}), {source}", year, hour, column)


@dataclass(frozen=True)
class ZonePrice:
    """The same energy priced at one zone's intensity."""

    zone: str
    year: int
    ci_g_per_kwh: float
    operational_g: float


def price_elsewhere(energy_j: float, year: int | None = None, hour: int | None = None, pue: float = 1.0,
                    column: str = "direct") -> tuple[list[ZonePrice], list[str]]:
    """``energy_j`` J priced at each zone's yearly mean (or hour-of-year ``hour``) intensity, sorted low→high.

    ``year`` None = the latest year for each zone. Returns the prices and messages for traces that
    could not be read (the others stay usable).
    """
    infos, errors = grid.list_traces()
    msgs = [str(e) for e in errors]
    chosen: dict[str, int] = (defaults.latest_years(infos) if year is None
                              else {i.zone: i.year for i in infos if i.year == year})
    out = []
    for zone, y in chosen.items():
        try:
            tr = grid.load_trace(zone, y, column)
            ci = tr.mean() if hour is None else float(tr.ci[min(hour, len(tr) - 1)])
        except Exception as exc:  # noqa: BLE001 - one bad zone never hides the others
            _log.warning("one bad zone never hides the others: %s", exc)
            msgs.append(str(exc))
            continue
        out.append(ZonePrice(zone, y, ci, grams_per_request(kwh(energy_j), 0.0, ci, pue)))
    out.sort(key=lambda z: z.operational_g)
    return out, msgs
