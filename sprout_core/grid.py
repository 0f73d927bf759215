"""Hourly grid carbon-intensity traces: the Electricity Maps export reader.

Reads the CSV exactly as the Electricity Maps Data Portal gives it (UTF-8, CRLF or LF line ends,
quoted fields where needed), one row per UTC hour::

    Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),
    Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,
    Data Source,Data Estimated,Data Estimation Method

Files live in ``<public data>/carbon`` and are named ``<ZONE>_<YEAR>_hourly.csv``.
Units: carbon intensity in g CO₂eq per kWh (``direct`` = operational/combustion only, the column the
Sprout paper uses; ``lca`` = life-cycle). A :class:`Trace` always covers one full calendar year.

Public API (other modules code against it): :data:`ATTRIBUTION`, :class:`TraceInfo`, :class:`Trace`,
:class:`TraceError`, :func:`list_traces`, :func:`load_trace`.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sprout_core.errors import DataFileError
from sprout_core.paths import MissingDataError, public_data_dir

#: How to credit the data wherever a trace is shown.
ATTRIBUTION = "Carbon intensity data: Electricity Maps (ODbL 1.0)"

COL_TIME = "Datetime (UTC)"
COL_ZONE_ID = "Zone Id"
COL_ZONE_NAME = "Zone Name"
#: column key -> header text in the export
CI_COLUMNS = {
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
    "lca": "Carbon Intensity gCO₂eq/kWh (LCA)",
}
_FILE_RE = re.compile(r"^(?P<zone>[A-Za-z0-9-]+)_(?P<year>\d{4})_hourly\.csv$")


class TraceError(DataFileError):
    """A trace file is unusable; the message names the file and, where it applies, the line."""


@dataclass(frozen=True)
class TraceInfo:
    """One zone-year trace file found on disk."""

    zone: str
    year: int
    path: Path
    zone_name: str


@dataclass(frozen=True, eq=False)
class Trace:
    """One zone's hourly carbon intensity over one calendar year.

    ``timestamps``: ``datetime64[s]`` hour starts in UTC (naive, UTC implied), contiguous, hourly.
    ``ci``: carbon intensity in g CO₂eq/kWh, same length.
    """

    zone: str
    year: int
    column: str
    timestamps: np.ndarray
    ci: np.ndarray
    zone_name: str
    source_file: Path
    attribution: str = field(default=ATTRIBUTION)

    def __len__(self) -> int:
        return int(self.ci.shape[0])

    def mean(self) -> float:
        """Mean carbon intensity over the year, g/kWh."""
        return float(self.ci.mean())

    def min(self) -> float:
        """Lowest hourly carbon intensity of the year, g/kWh."""
        return float(self.ci.min())

    def max(self) -> float:
        """Highest hourly carbon intensity of the year, g/kWh."""
        return float(self.ci.max())

    def window(self, start_hour: int, hours: int) -> tuple[np.ndarray, np.ndarray]:
        """``(timestamps, ci)`` for hours ``start_hour .. start_hour+hours-1`` of the year (clipped)."""
        s = max(0, int(start_hour))
        e = min(len(self), s + max(0, int(hours)))
        return self.timestamps[s:e], self.ci[s:e]


def _carbon_dir(data_dir: Path | None) -> Path:
    """``<data_dir>/carbon`` (or ``data_dir`` itself when it holds the CSVs directly)."""
    base = Path(data_dir) if data_dir is not None else public_data_dir()
    if (base / "carbon").is_dir():
        return base / "carbon"
    if base.is_dir() and any(base.glob("*_hourly.csv")):
        return base
    raise MissingDataError(
        f"Missing carbon-intensity traces: no folder {base / 'carbon'}. Run `bash scripts/setup.sh` next to "
        "a ../shared/data folder, or put Electricity Maps exports named <ZONE>_<YEAR>_hourly.csv there."
    )


def _hours_in_year(year: int) -> int:
    return 8784 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 8760


def _line(idx: int) -> int:
    """File line number (1-based, header = line 1) of data row ``idx`` (0-based)."""
    return int(idx) + 2


def _parse(path: Path, column: str, zone: str | None, year: int | None) -> Trace:
    """Read and validate one export file; raise :class:`TraceError` naming file and line."""
    if column not in CI_COLUMNS:
        raise ValueError(f"column must be one of {sorted(CI_COLUMNS)}, not {column!r}")
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[])
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f", line {m.group(1)}" if m else ""
        raise TraceError(f"{path}{where}: not a well-formed CSV ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise TraceError(f"{path}: empty file") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not UTF-8 text ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    needed = [COL_TIME, COL_ZONE_ID, CI_COLUMNS[column]]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise TraceError(
            f"{path}, line 1: header lacks {missing}; expected an Electricity Maps export with columns "
            f"{[COL_TIME, 'Country', COL_ZONE_NAME, COL_ZONE_ID, *CI_COLUMNS.values()]}…"
        )
    if len(df) == 0:
        raise TraceError(f"{path}: header only, no data rows")

    # timestamps
    raw_t = df[COL_TIME].fillna("").astype(str).str.strip()
    ts = pd.to_datetime(raw_t, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise TraceError(f"{path}, line {_line(i)}: bad '{COL_TIME}' value {raw_t.iloc[i]!r}")
    # carbon intensity
    raw_ci = df[CI_COLUMNS[column]].fillna("").astype(str).str.strip()
    ci = pd.to_numeric(raw_ci, errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(ci) | (ci < 0))
    if bad.size:
        i = bad[0]
        raise TraceError(
            f"{path}, line {_line(i)}: bad '{CI_COLUMNS[column]}' value {raw_ci.iloc[i]!r} "
            "(need a number ≥ 0 in g/kWh; is the row cut short?)"
        )
    # zone
    zones = df[COL_ZONE_ID].fillna("").astype(str).str.strip().to_numpy()
    file_zone = zone or zones[0]
    bad = np.flatnonzero(zones != file_zone)
    if bad.size:
        i = bad[0]
        raise TraceError(f"{path}, line {_line(i)}: Zone Id {zones[i]!r}, expected {file_zone!r} (one zone per file)")
    # hourly contiguity
    t64 = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    step = np.diff(t64).astype("timedelta64[s]").astype(np.int64)
    bad = np.flatnonzero(step != 3600)
    if bad.size:
        i = bad[0] + 1
        raise TraceError(
            f"{path}, line {_line(i)}: timestamp {str(t64[i])} does not follow {str(t64[i - 1])} by one hour "
            "(rows must be contiguous UTC hours)"
        )
    # full year
    first_year = int(str(t64[0])[:4])
    y = year if year is not None else first_year
    start = np.datetime64(f"{y}-01-01T00:00:00", "s")
    n_expected = _hours_in_year(y)
    if t64[0] != start:
        raise TraceError(f"{path}, line 2: trace starts at {str(t64[0])} UTC, expected {str(start)} (a full year {y})")
    if len(t64) != n_expected:
        raise TraceError(
            f"{path}, line {_line(len(t64) - 1)}: partial year — {len(t64)} of {n_expected} hours, "
            f"ends at {str(t64[-1])} UTC"
        )
    zone_name = str(df[COL_ZONE_NAME].iloc[0]).strip() if COL_ZONE_NAME in df.columns else file_zone
    ci.setflags(write=False)
    t64.setflags(write=False)
    return Trace(zone=file_zone, year=y, column=column, timestamps=t64, ci=ci, zone_name=zone_name or file_zone, source_file=Path(path))


_CACHE: dict[tuple, Trace] = {}
_LOCK = threading.Lock()


def _load_path(path: Path, column: str, zone: str | None, year: int | None) -> Trace:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, column, zone, year)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    tr = _parse(path, column, zone, year)
    with _LOCK:
        _CACHE[key] = tr
    return tr


def list_traces(data_dir: Path | None = None) -> tuple[list[TraceInfo], list[TraceError]]:
    """Every valid zone-year trace in ``<data_dir or public data>/carbon``, and the broken ones.

    Each file is fully read and validated (then cached), so a listed trace always loads.
    Broken or misnamed files come back as :class:`TraceError` in the second list, never raised.
    Raises :class:`~sprout_core.paths.MissingDataError` when the folder itself is absent.
    Sorted by year, then zone.
    """
    folder = _carbon_dir(data_dir)
    infos: list[TraceInfo] = []
    errors: list[TraceError] = []
    for path in sorted(folder.glob("*.csv")):
        m = _FILE_RE.match(path.name)
        if not m:
            errors.append(TraceError(f"{path}: file name is not <ZONE>_<YEAR>_hourly.csv"))
            continue
        zone, year = m.group("zone"), int(m.group("year"))
        try:
            tr = _load_path(path, "direct", zone, year)
        except TraceError as exc:
            errors.append(exc)
            continue
        except OSError as exc:
            errors.append(TraceError(f"{path}: cannot read ({exc})"))
            continue
        infos.append(TraceInfo(zone=zone, year=year, path=path, zone_name=tr.zone_name))
    infos.sort(key=lambda i: (i.year, i.zone))
    return infos, errors


def load_trace(zone: str, year: int, column: str = "direct", data_dir: Path | None = None) -> Trace:
    """The full-year hourly trace of ``zone`` in ``year`` (cached per process).

    ``column``: ``"direct"`` (operational; the Sprout paper's choice) or ``"lca"`` (life-cycle).
    Raises :class:`MissingDataError` when the file is absent and :class:`TraceError` (naming file and
    line) when it is malformed or covers only part of the year.
    """
    column = column.lower()
    folder = _carbon_dir(data_dir)
    path = folder / f"{zone}_{int(year)}_hourly.csv"
    if not path.exists():
        have = sorted(p.name for p in folder.glob("*_hourly.csv"))
        raise MissingDataError(f"No carbon-intensity trace for zone {zone!r}, year {year}: {path} is absent "
                               f"({len(have)} trace files in {folder}).")
    return _load_path(path, column, zone, int(year))


def zones_by_year(data_dir: Path | None = None) -> dict[int, list[str]]:
    """``{year: [zone, …]}`` of the valid traces (see :func:`list_traces`)."""
    infos, _ = list_traces(data_dir)
    out: dict[int, list[str]] = {}
    for i in infos:
        out.setdefault(i.year, []).append(i.zone)
    return out
