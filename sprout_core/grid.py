"""Hourly grid carbon-intensity traces: the one reader of carbon data.

Three sources, merged (a later one replaces an earlier one for the same zone and year):

1. **shipped** — ``data/carbon/electricitymaps_hourly.npz``, committed with Sprout: every zone-year of
   the public Electricity Maps exports in a compact form (integers in centi-g CO₂eq/kWh, direct and
   life-cycle), built by ``scripts/build_data.py``; ODbL 1.0, see ``data/carbon/LICENSE.md``.
   Only its small index is read to list zones; a zone-year's hours are decompressed when first loaded.
2. **public folder** — Electricity Maps exports in ``<public data>/carbon`` (``SPROUT_DATA_DIR``, default
   ``data/external``), named ``<ZONE>_<YEAR>_hourly.csv``. A file byte-identical to the one a shipped
   trace was built from is not read again (the shipped copy is used).
3. **user** — traces a person added with :func:`add_user_trace` (the ``grid add`` command or the
   "Add your own grid data" box on the Optimizer and What-if pages), kept in ``<state>/grid``.

The CSV reader takes the export exactly as the Electricity Maps Data Portal gives it (UTF-8, CRLF or LF
line ends, quoted fields where needed; both the 2023 header spelling ``Zone Id`` / ``(LCA)`` and the newer
``Zone id`` / ``(Life cycle)``), one row per UTC hour::

    Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),
    Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,
    Data Source,Data Estimated,Data Estimation Method

A person's upload may also be a two-column CSV: hour (0-based hour of the year, or a UTC timestamp) and
intensity in g CO₂eq/kWh.

Units: carbon intensity in g CO₂eq per kWh (``direct`` = operational/combustion only, the column the
Sprout paper uses; ``lca`` = life-cycle). A :class:`Trace` always covers one full calendar year. Every
hour must lie within 0 … :data:`MAX_CI_G_PER_KWH`.

Public API (other modules code against it): :data:`ATTRIBUTION`, :data:`MAX_CI_G_PER_KWH`,
:class:`TraceInfo`, :class:`Trace`, :class:`TraceError`, :func:`list_traces`, :func:`load_trace`,
:func:`zones_by_year`, :func:`add_user_trace`, :func:`remove_user_trace`, :func:`sources_signature`.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import logging
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from sprout_core import access, storage
from sprout_core.cache import KeyedCache
from sprout_core.errors import DataFileError, InputError, NotAllowedError
from sprout_core.paths import MissingDataError, public_data_dir, shipped_file, state_dir, user_grid_dir

_log = logging.getLogger("sprout.grid")

#: How to credit the data wherever a trace is shown.
ATTRIBUTION = "Carbon intensity data: Electricity Maps (ODbL 1.0)"

#: Highest hourly carbon intensity accepted, g CO₂eq/kWh. No grid mix can be dirtier than its dirtiest
#: generator: lignite and oil-shale units, the most carbon-intensive plants in service, emit about
#: 1,000–1,400 g CO₂eq/kWh (IPCC AR5 WGIII Annex III, Table A.III.2: coal life-cycle up to 1,000; direct
#: emissions of old lignite units ~1,200–1,400). The highest hour in the shipped traces is 808 g/kWh.
#: 2,000 leaves room for grid losses and estimation error while catching unit mistakes (mg/kWh,
#: lb/MWh, kg/MWh ≈ ×1,000) and corrupt numbers.
MAX_CI_G_PER_KWH = 2000.0

#: Largest upload :func:`add_user_trace` accepts (a year of hourly exports is ~1 MB).
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Longest line of an upload, characters (an export's rows are ~200; Python's csv module refuses fields
#: over 131,072): longer lines are refused before any parser sees them, naming the line. A long zone name
#: (thousands of characters) still passes and is cut to :data:`MAX_ZONE_NAME_CHARS`.
MAX_LINE_CHARS = 65_536
#: Zone names (typed, ``--name``, or read from an export) are cut to this many characters.
MAX_ZONE_NAME_CHARS = 80
#: The most traces one class-mode visitor may keep (the operator has no limit).
VISITOR_MAX_TRACES = 20

COL_TIME = "Datetime (UTC)"
COL_ZONE_ID = "Zone Id"
COL_ZONE_NAME = "Zone Name"
#: column key -> header text in the export (2023 spelling; the newer spelling is read too)
CI_COLUMNS = {
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
    "lca": "Carbon Intensity gCO₂eq/kWh (LCA)",
}
EXPORT_HEADER = [COL_TIME, "Country", COL_ZONE_NAME, COL_ZONE_ID, CI_COLUMNS["direct"], CI_COLUMNS["lca"],
                 "Low Carbon Percentage", "Renewable Percentage", "Data Source", "Data Estimated",
                 "Data Estimation Method"]
#: origins of a trace: ``user`` is the reader's own upload; ``operator`` is an upload of the operator's seen by a
#: class-mode visitor (shared data, read-only for them)
ORIGINS = ("shipped", "public", "operator", "user")

_FILE_RE = re.compile(r"^(?P<zone>[A-Za-z0-9-]+)_(?P<year>\d{4})_hourly\.csv$")
_ZONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")


class TraceError(DataFileError):
    """A trace file is unusable; the message names the file and, where it applies, the line."""


def clean_zone_name(name: object) -> str:
    """A zone name as Sprout stores and shows it: control characters (and other non-printing ones) become
    spaces, runs of white space one space, cut to :data:`MAX_ZONE_NAME_CHARS` characters."""
    s = "".join(c if c.isprintable() else " " for c in str(name or ""))
    return re.sub(r"\s+", " ", s).strip()[:MAX_ZONE_NAME_CHARS].strip()


# ------------------------------------------------------------------------------------- whose view

_visitor_resolver: Callable[[], "str | None"] = lambda: None  # noqa: E731 - the default: the operator
_AUTO = object()


def set_visitor_resolver(resolver: Callable[[], "str | None"]) -> None:
    """Register how to find the visitor of the current request (``sprout_core.ui`` does, for class mode):
    ``None`` or :data:`sprout_core.access.LOCAL_VISITOR` = the operator. Readers (:func:`list_traces`,
    :func:`load_trace`, …) then show a visitor their own uploads beside the shared data, and nobody
    else's."""
    global _visitor_resolver
    _visitor_resolver = resolver


def current_visitor() -> str | None:
    """The class-mode visitor whose view the readers give now, or ``None`` for the operator."""
    try:
        v = _visitor_resolver()
    except Exception as exc:  # noqa: BLE001 - no visitor can be told (e.g. outside a page run): the shared view
        _log.debug("no visitor can be told (e.g. outside a page run): the shared view: %s", exc)
        v = None
    return None if access.is_operator(v) else v


def _who(visitor) -> str | None:
    if visitor is _AUTO:
        return current_visitor()
    return None if access.is_operator(visitor) else visitor


def visitors_dir(create: bool = False) -> Path:
    """``<state>/visitors``: one folder per class-mode visitor (a hash of their id), cleared by the operator
    with ``grid clear --visitors``."""
    return state_dir(create=create) / "visitors"


def visitor_grid_dir(visitor: str) -> Path:
    """A class-mode visitor's own traces: ``<state>/visitors/<hash of the id>/grid`` (may not exist)."""
    return visitors_dir() / access.visitor_namespace(visitor) / "grid"


def _own_dir(visitor: str | None) -> Path:
    return user_grid_dir(create=False) if visitor is None else visitor_grid_dir(visitor)


@dataclass(frozen=True)
class TraceInfo:
    """One zone-year trace that can be loaded.

    ``origin``: ``shipped`` (committed compact data), ``public`` (an export in the public data folder) or
    ``user`` (added by a person); ``path``: the file it is read from.
    """

    zone: str
    year: int
    path: Path
    zone_name: str
    origin: str = "public"
    attribution: str = ATTRIBUTION


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
    origin: str = "public"

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


# ------------------------------------------------------------------------------------- helpers

def _hours_in_year(year: int) -> int:
    return 8784 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 8760


def _line(idx: int) -> int:
    """File line number (1-based, header = line 1) of data row ``idx`` (0-based)."""
    return int(idx) + 2


def _header_key(h: str) -> str:
    return re.sub(r"\s+", " ", str(h).strip().lower().replace("₂", "2"))


def _columns(headers) -> dict[str, str]:
    """Map ``time / zone / zone_name / direct / lca`` to the header text found (either spelling)."""
    out: dict[str, str] = {}
    for h in headers:
        k = _header_key(h)
        if k == "datetime (utc)":
            out.setdefault("time", h)
        elif k == "zone id":
            out.setdefault("zone", h)
        elif k == "zone name":
            out.setdefault("zone_name", h)
        elif k.startswith("carbon intensity") and k.endswith("(direct)"):
            out.setdefault("direct", h)
        elif k.startswith("carbon intensity") and (k.endswith("(lca)") or k.endswith("(life cycle)")):
            out.setdefault("lca", h)
    return out


def _implausible(name: str, line: int, col: str, raw: str) -> TraceError:
    return TraceError(
        f"{name}, line {line}: '{col}' value {raw!r} is implausible — above {MAX_CI_G_PER_KWH:,.0f} g CO₂eq/kWh, "
        "more than the dirtiest power plants emit. Check the unit (g/kWh, not mg/kWh or lb/MWh) and the column."
    )


def _check_values(name: str, raw: pd.Series, ci: np.ndarray, col: str, line_of: Callable[[int], int]) -> None:
    """Every hour a finite number within 0 … MAX_CI_G_PER_KWH, else TraceError naming the first bad line."""
    bad = np.flatnonzero(~np.isfinite(ci) | (ci < 0))
    if bad.size:
        i = bad[0]
        hint = " (use '.' as the decimal mark)" if re.fullmatch(r"\s*\d+,\d+\s*", str(raw.iloc[i])) else ""
        raise TraceError(
            f"{name}, line {line_of(i)}: bad '{col}' value {raw.iloc[i]!r} "
            f"(need a number ≥ 0 in g/kWh{hint}; is the row cut short?)"
        )
    high = np.flatnonzero(ci > MAX_CI_G_PER_KWH)
    if high.size:
        i = high[0]
        raise _implausible(name, line_of(i), col, str(raw.iloc[i]))


def _check_calendar(name: str, t64: np.ndarray, year: int | None, line_of: Callable[[int], int]) -> int:
    """Contiguous UTC hours covering exactly one calendar year; returns the year."""
    step = np.diff(t64).astype("timedelta64[s]").astype(np.int64)
    bad = np.flatnonzero(step != 3600)
    if bad.size:
        i = bad[0] + 1
        raise TraceError(
            f"{name}, line {line_of(i)}: timestamp {str(t64[i])} does not follow {str(t64[i - 1])} by one hour "
            "(rows must be contiguous UTC hours)"
        )
    first_year = int(str(t64[0])[:4])
    y = year if year is not None else first_year
    start = np.datetime64(f"{y}-01-01T00:00:00", "s")
    n_expected = _hours_in_year(y)
    if t64[0] != start:
        raise TraceError(f"{name}, line {line_of(0)}: trace starts at {str(t64[0])} UTC, expected {str(start)} "
                         f"(a full year {y})")
    if len(t64) != n_expected:
        raise TraceError(
            f"{name}, line {line_of(len(t64) - 1)}: partial year — {len(t64)} of {n_expected} hours, "
            f"ends at {str(t64[-1])} UTC"
        )
    return y


def _year_hours(year: int) -> np.ndarray:
    t = np.datetime64(f"{year}-01-01T00:00:00", "s") + np.arange(_hours_in_year(year)) * np.timedelta64(3600, "s")
    t.setflags(write=False)
    return t


# ------------------------------------------------------------------------------------- CSV exports

def _read_export(src, name: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(src, dtype=str, encoding="utf-8-sig", keep_default_na=False, na_values=[])
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        where = f", line {m.group(1)}" if m else ""
        raise TraceError(f"{name}{where}: not a well-formed CSV ({exc})") from exc
    except pd.errors.EmptyDataError as exc:
        raise TraceError(f"{name}: empty file") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{name}: not UTF-8 text ({exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    return df


def _parse_export(df: pd.DataFrame, name: str, column: str, zone: str | None, year: int | None,
                  source_file: Path) -> Trace:
    """Validate one export table; raise :class:`TraceError` naming ``name`` and the line."""
    if column not in CI_COLUMNS:
        raise ValueError(f"column must be one of {sorted(CI_COLUMNS)}, not {column!r}")
    cols = _columns(df.columns)
    missing = [{"time": COL_TIME, "zone": COL_ZONE_ID, "direct": CI_COLUMNS["direct"]}[k]
               for k in ("time", "zone", "direct") if k not in cols]
    if missing:
        raise TraceError(
            f"{name}, line 1: header lacks {missing}; expected an Electricity Maps export with columns "
            f"{EXPORT_HEADER[:6]}… (a two-column hour,intensity file can be added with "
            "`python -m sprout_core grid add FILE --zone Z --year Y`)"
        )
    if column not in cols:
        raise TraceError(f"{name}: no {column.upper()} carbon-intensity column in this trace "
                         f"(header has {list(df.columns)[:6]}…); use the direct intensity")
    if len(df) == 0:
        raise TraceError(f"{name}: header only, no data rows")

    raw_t = df[cols["time"]].fillna("").astype(str).str.strip()
    ts = pd.to_datetime(raw_t, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise TraceError(f"{name}, line {_line(i)}: bad '{COL_TIME}' value {raw_t.iloc[i]!r}")
    col_name = cols[column]
    raw_ci = df[col_name].fillna("").astype(str).str.strip()
    if column == "lca" and (raw_ci == "").all():
        raise TraceError(f"{name}: this trace has no life-cycle (LCA) values, only direct ones; use the direct intensity")
    ci = pd.to_numeric(raw_ci, errors="coerce").to_numpy(dtype=float)
    _check_values(name, raw_ci, ci, col_name, _line)
    zones = df[cols["zone"]].fillna("").astype(str).str.strip().to_numpy()
    file_zone = zone or zones[0]
    bad = np.flatnonzero(zones != file_zone)
    if bad.size:
        i = bad[0]
        raise TraceError(f"{name}, line {_line(i)}: Zone Id {zones[i]!r}, expected {file_zone!r} (one zone per file)")
    t64 = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    y = _check_calendar(name, t64, year, _line)
    zone_name = clean_zone_name(df[cols["zone_name"]].iloc[0]) if "zone_name" in cols else file_zone
    ci.setflags(write=False)
    t64.setflags(write=False)
    return Trace(zone=file_zone, year=y, column=column, timestamps=t64, ci=ci, zone_name=zone_name or file_zone,
                 source_file=Path(source_file))


def _parse(path: Path, column: str, zone: str | None, year: int | None) -> Trace:
    """Read and validate one export file; raise :class:`TraceError` naming file and line."""
    if column not in CI_COLUMNS:
        raise ValueError(f"column must be one of {sorted(CI_COLUMNS)}, not {column!r}")
    return _parse_export(_read_export(path, str(path)), str(path), column, zone, year, path)


_CACHE: KeyedCache = KeyedCache("grid traces")


def _cached(key: tuple, make: Callable[[], object]):
    return _CACHE.get(key, make)


def _stat_key(path: Path) -> tuple:
    st = path.stat()
    return (str(path.resolve()), st.st_mtime_ns, st.st_size)


def _load_path(path: Path, column: str, zone: str | None, year: int | None) -> Trace:
    return _cached(("csv", *_stat_key(path), column, zone, year), lambda: _parse(path, column, zone, year))


def _sha256(path: Path) -> str:
    def digest() -> str:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    return _cached(("sha", *_stat_key(path)), digest)


# ------------------------------------------------------------------------------------- shipped (npz)

def shipped_path() -> Path:
    """``data/carbon/electricitymaps_hourly.npz`` (committed; may be absent in a stripped copy)."""
    return shipped_file("carbon")


def _shipped_index(path: Path) -> dict[tuple[str, int], dict]:
    """``{(zone, year): entry}`` of the shipped file (only its small ``index`` member is read)."""
    def read() -> dict:
        try:
            with np.load(path, allow_pickle=False) as z:
                index = json.loads(str(z["index"][()]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise TraceError(f"{path}: the shipped carbon data is unreadable ({exc}); restore it with "
                             "`git checkout data/carbon` or rebuild it with `python scripts/build_data.py`") from exc
        return {(e["zone"], int(e["year"])): e for e in index["traces"]}

    return _cached(("npz-index", *_stat_key(path)), read)


def _load_shipped(path: Path, zone: str, year: int, column: str) -> Trace:
    def read() -> Trace:
        entry = _shipped_index(path)[(zone, year)]
        try:
            with np.load(path, allow_pickle=False) as z:
                arr = z[entry["member"]]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise TraceError(f"{path}: cannot read the shipped {zone} {year} trace ({exc}); restore it with "
                             "`git checkout data/carbon`") from exc
        row = {"direct": 0, "lca": 1}[column]
        t = _year_hours(year)
        if arr.ndim != 2 or arr.shape[1] != len(t):
            raise TraceError(f"{path}: the shipped {zone} {year} trace has shape {arr.shape}, expected (2, {len(t)})")
        ci = arr[row].astype(np.float64) / 100.0  # centi-g/kWh -> g/kWh (exactly the export's 2-decimal values)
        ci.setflags(write=False)
        return Trace(zone=zone, year=year, column=column, timestamps=t, ci=ci, zone_name=entry["zone_name"],
                     source_file=path, origin="shipped")

    return _cached(("npz", *_stat_key(path), zone, year, column), read)


# ------------------------------------------------------------------------------------- sources

@dataclass(frozen=True)
class _Source:
    origin: str
    path: Path
    zone: str
    year: int
    meta: dict = field(default_factory=dict)


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


def _public_carbon_dir() -> Path | None:
    try:
        return _carbon_dir(None)
    except MissingDataError:
        return None


def _user_meta(csv_path: Path) -> dict:
    p = csv_path.with_suffix(".json")
    try:
        meta = json.loads(p.read_text(encoding="utf-8")) if p.exists() else {}
    except (OSError, ValueError):
        meta = {}
    return meta if isinstance(meta, dict) else {}


def _named_csvs(folder: Path, errors: list[TraceError] | None):
    """``(path, zone, year)`` of each ``<ZONE>_<YEAR>_hourly.csv`` in ``folder``; other CSVs go to ``errors``."""
    for path in sorted(folder.glob("*.csv")):
        m = _FILE_RE.match(path.name)
        if m:
            yield path, m.group("zone"), int(m.group("year"))
        elif errors is not None:
            errors.append(TraceError(f"{path}: file name is not <ZONE>_<YEAR>_hourly.csv"))


def _all_sources(visitor: str | None = None) -> tuple[dict[tuple[str, int], list[_Source]], list[TraceError]]:
    """Every candidate per (zone, year), highest precedence first, and misnamed files' errors.

    ``visitor`` ``None``: the operator's view (their uploads are ``user``); a class-mode visitor: the
    operator's uploads as ``operator`` and the visitor's own as ``user``, nobody else's."""
    found: dict[tuple[str, int], list[_Source]] = {}
    errors: list[TraceError] = []
    shipped = shipped_path()
    index: dict = {}
    if shipped.exists():
        try:
            index = _shipped_index(shipped)
        except TraceError as exc:
            errors.append(exc)
    for (zone, year) in index:
        found.setdefault((zone, year), []).append(_Source("shipped", shipped, zone, year))
    folders = [("public", _public_carbon_dir())]
    udir = user_grid_dir(create=False)
    folders.append(("user" if visitor is None else "operator", udir if udir.is_dir() else None))
    if visitor is not None:
        vdir = visitor_grid_dir(visitor)
        folders.append(("user", vdir if vdir.is_dir() else None))
    for origin, folder in folders:
        if folder is None:
            continue
        for path, zone, year in _named_csvs(folder, errors):
            if origin == "public" and (zone, year) in index:
                try:
                    if _sha256(path) == index[(zone, year)].get("source_sha256"):
                        continue  # the very file the shipped trace was built from
                except OSError as exc:
                    errors.append(TraceError(f"{path}: cannot read ({exc})"))
                    continue
            meta = _user_meta(path) if origin in ("user", "operator") else {}
            found.setdefault((zone, year), []).insert(0, _Source(origin, path, zone, year, meta))
    return found, errors


def _describe(src: _Source, zone_name: str) -> TraceInfo:
    name = clean_zone_name(src.meta.get("zone_name") or zone_name) or src.zone
    return TraceInfo(zone=src.zone, year=src.year, path=src.path, zone_name=name,
                     origin=src.origin, attribution=src.meta.get("attribution") or ATTRIBUTION)


def _open(src: _Source, column: str) -> Trace:
    if src.origin == "shipped":
        return _load_shipped(src.path, src.zone, src.year, column)
    tr = _load_path(src.path, column, src.zone, src.year)
    info = _describe(src, tr.zone_name)
    return dataclasses.replace(tr, zone_name=info.zone_name, attribution=info.attribution, origin=src.origin)


def _winner(cands: list[_Source], errors: list[TraceError] | None = None) -> TraceInfo | None:
    """The first candidate that is usable (a CSV's direct column is validated; broken files go to ``errors``).

    Shipped traces were validated when they were built: only their index is read here.
    """
    for src in cands:
        try:
            if src.origin == "shipped":
                return _describe(src, _shipped_index(src.path)[(src.zone, src.year)]["zone_name"])
            return _describe(src, _load_path(src.path, "direct", src.zone, src.year).zone_name)
        except TraceError as exc:
            if errors is not None:
                errors.append(exc)
        except OSError as exc:
            if errors is not None:
                errors.append(TraceError(f"{src.path}: cannot read ({exc})"))
    return None


def _list_folder(folder: Path) -> tuple[list[TraceInfo], list[TraceError]]:
    infos: list[TraceInfo] = []
    errors: list[TraceError] = []
    for path, zone, year in _named_csvs(folder, errors):
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


def list_traces(data_dir: Path | None = None, visitor=_AUTO) -> tuple[list[TraceInfo], list[TraceError]]:
    """Every usable zone-year trace, and the broken files.

    ``data_dir`` ``None`` (the app, the CLI): shipped traces, the public folder's exports and the user's
    own traces, merged (user > public folder > shipped for the same zone and year; a broken file never
    hides a usable copy of the same zone-year). Shipped traces are listed from their index only.
    ``data_dir`` given: only the exports in ``<data_dir>/carbon`` (raises
    :class:`~sprout_core.paths.MissingDataError` when that folder is absent).

    Every CSV is fully read and validated (then cached on its mtime and size), so a listed trace always
    loads. Broken or misnamed files come back as :class:`TraceError` in the second list, never raised.
    Sorted by year, then zone. ``visitor``: whose view (default: :func:`current_visitor`).
    """
    if data_dir is not None:
        return _list_folder(_carbon_dir(data_dir))
    found, errors = _all_sources(_who(visitor))
    if not found and not errors and not shipped_path().exists():
        _carbon_dir(None)  # raises MissingDataError saying what is missing
    infos: list[TraceInfo] = []
    for key in sorted(found, key=lambda k: (k[1], k[0])):
        info = _winner(found[key], errors)
        if info is not None:
            infos.append(info)
    return infos, errors


def load_trace(zone: str, year: int, column: str = "direct", data_dir: Path | None = None, visitor=_AUTO) -> Trace:
    """The full-year hourly trace of ``zone`` in ``year`` (cached per process).

    ``column``: ``"direct"`` (operational; the Sprout paper's choice) or ``"lca"`` (life-cycle).
    ``data_dir`` ``None``: from the merged sources (see :func:`list_traces`); given: only from
    ``<data_dir>/carbon``. Raises :class:`MissingDataError` when no source has the zone-year and
    :class:`TraceError` (naming file and line) when it is malformed or covers only part of the year.
    """
    column = str(column).lower()
    if column not in CI_COLUMNS:
        raise InputError(f"column must be one of {sorted(CI_COLUMNS)}, not {column!r}")
    year = int(year)
    if data_dir is not None:
        folder = _carbon_dir(data_dir)
        path = folder / f"{zone}_{year}_hourly.csv"
        if not path.exists():
            have = sorted(p.name for p in folder.glob("*_hourly.csv"))
            raise MissingDataError(f"No carbon-intensity trace for zone {zone!r}, year {year}: {path} is absent "
                                   f"({len(have)} trace files in {folder}).")
        return _load_path(path, column, zone, year)
    found, _ = _all_sources(_who(visitor))
    cands = found.get((zone, year))
    if not cands:
        have = sorted({z for (z, y) in found if y == year})
        years = sorted({y for (z, y) in found if z == zone})
        hint = (f"{zone} has {', '.join(map(str, years))}" if years else
                f"zones for {year}: {', '.join(have) or 'none'}")
        raise MissingDataError(f"No carbon-intensity trace for zone {zone!r}, year {year} ({hint}). Add your own "
                               "with `python -m sprout_core grid add FILE` or the 'Add your own grid data' box.")
    errors: list[TraceError] = []
    info = _winner(cands, errors)
    if info is None:
        raise errors[0]
    src = next(s for s in cands if s.origin == info.origin)
    return _open(src, column)


def zones_by_year(data_dir: Path | None = None, visitor=_AUTO) -> dict[int, list[str]]:
    """``{year: [zone, …]}`` of the valid traces (see :func:`list_traces`)."""
    infos, _ = list_traces(data_dir, visitor)
    out: dict[int, list[str]] = {}
    for i in infos:
        out.setdefault(i.year, []).append(i.zone)
    return out


def sources_signature(visitor=_AUTO) -> tuple:
    """Changes whenever a trace source changes (file added, removed or rewritten): a cache key for the UI.

    It names the view (the visitor's namespace, or the operator's), so a cache keyed on it never hands one
    visitor's traces to another."""
    who = _who(visitor)
    sig: list = [("view", access.visitor_namespace(who) if who else "operator")]
    for p in (shipped_path(), _public_carbon_dir(), user_grid_dir(create=False),
              visitor_grid_dir(who) if who else None):
        if p is not None and p.exists():
            st = p.stat()
            sig.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(sig)


# ------------------------------------------------------------------------------------- user traces

def _check_zone(zone: str) -> str:
    z = str(zone or "").strip()
    if not _ZONE_RE.match(z):
        raise InputError(f"zone {zone!r} is not a zone id: use letters, digits and '-' (up to 40), e.g. DE or "
                         "US-CAL-CISO")
    return z


def _check_year(year) -> int:
    try:
        y = int(str(year).strip())
    except (TypeError, ValueError):
        raise InputError(f"year {year!r} is not a whole number (e.g. 2023)") from None
    if not 1970 <= y <= 2100:
        raise InputError(f"year {y} is outside 1970–2100")
    return y


def _sniff_delimiter(lines: list[str]) -> str | None:
    """The delimiter that splits the first lines into two fields (',', ';' or tab), else the commonest one."""
    head = [ln for ln in lines if ln.strip()][:5]
    for d in (";", "\t", ","):  # ';' first: "0;12,5" (decimal comma) also splits in two on ','
        if head and all(len([f for f in next(csv.reader([ln], delimiter=d))]) == 2 for ln in head):
            return d
    counts = {d: head[0].count(d) if head else 0 for d in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else None


def _parse_hour_intensity(text: str, name: str, zone: str, year: int | None) -> tuple[int, np.ndarray]:
    """A two-column CSV (hour or UTC time, g CO₂eq/kWh) → ``(year, ci)``; TraceError naming the line."""
    lines = text.splitlines()
    delim = _sniff_delimiter(lines)
    if delim is None:
        raise TraceError(f"{name}, line 1: expected two columns (hour of the year or UTC time, then g CO₂eq/kWh) "
                         "separated by ',' or ';', or an Electricity Maps export")
    rows: list[tuple[int, str, str]] = []
    for ln_no, fields in enumerate(csv.reader(lines, delimiter=delim), start=1):
        fields = [f.strip() for f in fields]
        while fields and fields[-1] == "":
            fields.pop()
        if not fields:
            continue
        if len(fields) != 2:
            raise TraceError(f"{name}, line {ln_no}: {len(fields)} columns, expected 2 (hour or UTC time, g CO₂eq/kWh)")
        rows.append((ln_no, fields[0], fields[1]))
    if rows and not rows[0][1][:1].isdigit():
        rows = rows[1:]  # a header row (hour counts and ISO times start with a digit)
    if not rows:
        raise TraceError(f"{name}: no data rows")
    line_nos = [r[0] for r in rows]
    line_of = lambda i: line_nos[int(i)]  # noqa: E731 - tiny adapter
    raw_h = pd.Series([r[1] for r in rows])
    raw_ci = pd.Series([r[2] for r in rows])
    ci = pd.to_numeric(raw_ci, errors="coerce").to_numpy(dtype=float)
    _check_values(name, raw_ci, ci, "intensity", line_of)
    if re.fullmatch(r"\d+", raw_h.iloc[0]):
        if year is None:
            raise TraceError(f"{name}: the first column counts hours, so the year is needed "
                             "(give --year, or the year in the form)")
        bad = np.flatnonzero(~raw_h.str.fullmatch(r"\d+").to_numpy())
        if bad.size:
            i = bad[0]
            raise TraceError(f"{name}, line {line_of(i)}: hour {raw_h.iloc[i]!r} is not a whole number "
                             "(the first column counts hours from 0 = 1 Jan 00:00 UTC)")
        idx = raw_h.astype(np.int64).to_numpy()
        base = int(idx[0])
        if base not in (0, 1):
            raise TraceError(f"{name}, line {line_of(0)}: the hours start at {base}; they must start at 0 "
                             "(= 1 Jan 00:00 UTC) and cover the whole year")
        wrong = np.flatnonzero(idx != base + np.arange(len(idx)))
        if wrong.size:
            i = wrong[0]
            raise TraceError(f"{name}, line {line_of(i)}: hour {idx[i]} does not follow {idx[i - 1]} "
                             "(rows must be consecutive hours)")
        n = _hours_in_year(year)
        if len(idx) != n:
            raise TraceError(f"{name}, line {line_of(len(idx) - 1)}: partial year — {len(idx)} of {n} hours "
                             f"in {year}")
        return year, ci
    ts = pd.to_datetime(raw_h, format="ISO8601", utc=True, errors="coerce")
    bad = np.flatnonzero(ts.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise TraceError(f"{name}, line {line_of(i)}: bad time {raw_h.iloc[i]!r} (use an hour count from 0, or "
                         "an ISO time such as 2023-01-01 00:00 in UTC)")
    t64 = ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    file_year = int(str(t64[0])[:4])
    if year is not None and year != file_year:
        raise TraceError(f"{name}, line {line_of(0)}: the times start in {file_year}, not {year}")
    return _check_calendar(name, t64, file_year, line_of), ci


def _fmt(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else f"{v:.1f}"


def _export_csv(zone: str, zone_name: str, year: int, ci: np.ndarray, source: str) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(EXPORT_HEADER)
    for t, v in zip(_year_hours(year), ci):
        w.writerow([str(t).replace("T", " "), "", zone_name, zone, _fmt(v), "", "", "", source, "", ""])
    return buf.getvalue().encode("utf-8")


def _check_lines(text: str, name: str) -> None:
    """Refuse a line longer than :data:`MAX_LINE_CHARS` (naming it) before any CSV parser sees it."""
    for ln_no, line in enumerate(text.splitlines(), start=1):
        if len(line) > MAX_LINE_CHARS:
            raise TraceError(f"{name}, line {ln_no}: {len(line):,} characters on one line; a row of hourly data is "
                             f"short (under {MAX_LINE_CHARS:,} characters). Is this the right file, with one row per "
                             "hour?")


def _origin_words(origin: str) -> str:
    return {"shipped": "shipped with Sprout", "public": "in the public data folder",
            "operator": "shared by the operator", "user": "added by you earlier"}[origin]


def add_user_trace(data: bytes, filename: str, zone: str | None = None, year: int | None = None,
                   zone_name: str | None = None, replace: bool = False, visitor=_AUTO) -> TraceInfo:
    """Validate a person's grid data and store it as ``<ZONE>_<YEAR>_hourly.csv``.

    ``data``: an Electricity Maps export (its Zone Id and year are used; ``zone``/``year`` must agree
    when given) or a two-column CSV, hour (0-based hour of the year, or a UTC time) and g CO₂eq/kWh
    (``zone`` needed; ``year`` needed when the first column counts hours). The whole file is checked
    first (every error names the file and line; over-long lines are refused before parsing); nothing
    stored is touched unless it passes. Zone names are cleaned and cut like typed ones
    (:func:`clean_zone_name`).

    Where it goes: the operator (``visitor`` ``None``, the CLI, the local app) writes ``<state>/grid``; a
    class-mode visitor writes their own namespace (:func:`visitor_grid_dir`), may keep at most
    :data:`VISITOR_MAX_TRACES` traces, and can never replace shared data (shipped, public-folder or the
    operator's traces) — only their own uploads. A zone-year that already exists in the writer's view is
    replaced only with ``replace=True`` (a shipped one then comes back when the copy is removed).

    Writers of one folder serialise on a ``filelock`` lock; the existence check is repeated under it, so of
    two processes adding the same zone-year at once the second is told the first one's copy arrived
    meanwhile. The CSV and its metadata are written all-or-nothing (temporary files, fsync, rename).
    Raises :class:`TraceError`, :class:`InputError`, :class:`~sprout_core.errors.NotAllowedError` or
    :class:`~sprout_core.errors.StorageError` (read-only folder, full disk, lock held too long).
    """
    who = _who(visitor)
    name = clean_zone_name(Path(str(filename or "upload.csv")).name) or "upload.csv"
    if len(data) > MAX_UPLOAD_BYTES:
        raise InputError(f"{name}: {len(data) / 1e6:.1f} MB is too large for one year of hourly data "
                         f"(limit {MAX_UPLOAD_BYTES // (1024 * 1024)} MB)")
    if not data.strip():
        raise TraceError(f"{name}: empty file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TraceError(f"{name}: not UTF-8 text ({exc})") from exc
    _check_lines(text, name)
    zone = _check_zone(zone) if zone not in (None, "") else None
    year = _check_year(year) if year not in (None, "") else None
    label = clean_zone_name(zone_name)
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    is_export = "time" in _columns(next(csv.reader([header]), []))
    if is_export:
        df = _read_export(io.StringIO(text), name)
        cols = _columns(df.columns)
        file_zone = str(df[cols["zone"]].iloc[0]).strip() if "zone" in cols and len(df) else ""
        if zone and file_zone and zone != file_zone:
            raise TraceError(f"{name}, line 2: the export is for zone {file_zone!r}, not {zone!r}; leave the zone "
                             f"empty or give {file_zone}")
        tr = _parse_export(df, name, "direct", zone or file_zone or None, year, Path(name))
        if "lca" in cols and (df[cols["lca"]].astype(str).str.strip() != "").any():
            _parse_export(df, name, "lca", tr.zone, tr.year, Path(name))
        zone, year = _check_zone(tr.zone), tr.year
        label = label or tr.zone_name
        stored = data
        kind, attribution = "electricitymaps-export", ATTRIBUTION
    else:
        if zone is None:
            raise InputError(f"{name}: a two-column file has no zone id; give one (--zone, or the zone field), "
                             "e.g. --zone MY-LAB")
        year, ci = _parse_hour_intensity(text, name, zone, year)
        label = label or zone
        attribution = f"Carbon intensity data: supplied by the user ({name})"
        stored = _export_csv(zone, label, year, ci, f"user-supplied: {name}")
        kind = "hour-intensity"

    def refuse_existing(origins: list[str], arrived: bool) -> None:
        shared_here = [o for o in origins if o != "user"]
        if who is not None and shared_here:
            raise NotAllowedError(f"{zone} {year} is shared data here ({_origin_words(shared_here[0])}); in "
                                  "class mode it cannot be replaced. Give your trace another zone id, e.g. "
                                  f"{zone[:34]}-MINE.")
        if origins and not replace:
            if arrived:
                raise InputError(f"{zone} {year} was added by another upload while yours was being checked; yours "
                                 "was not stored. Replace it explicitly (--replace, or tick 'Replace') to use "
                                 "your file instead.")
            raise InputError(f"{zone} {year} already exists ({_origin_words(origins[0])}). Replace it explicitly "
                             "(--replace, or tick 'Replace') to use your file instead" +
                             ("; the shipped trace comes back when you remove yours." if "shipped" in origins else "."))

    found, _ = _all_sources(who)
    before = [s.origin for s in found.get((zone, year), [])]
    refuse_existing(before, arrived=False)
    folder = _own_dir(who)
    action = f"store the {zone} {year} trace"
    with storage.locked(folder, action):
        found, _ = _all_sources(who)  # again, under the lock: another writer may have finished meanwhile
        now = [s.origin for s in found.get((zone, year), [])]
        path = folder / f"{zone}_{year}_hourly.csv"
        if now != before:
            refuse_existing(now, arrived=True)
        if who is not None and not path.exists():
            mine = sum(1 for _ in _named_csvs(folder, None))
            if mine >= VISITOR_MAX_TRACES:
                raise NotAllowedError(f"You already keep {mine} traces, the most one visitor may; remove one first.")
        meta = {"zone": zone, "year": year, "zone_name": label, "kind": kind, "original_name": name,
                "attribution": attribution, "sha256": hashlib.sha256(stored).hexdigest(),
                "added_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        storage.write_files([(path, stored),
                             (path.with_suffix(".json"),
                              (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))], action)
    tr = _load_path(path, "direct", zone, year)  # the stored file reads back
    return _describe(_Source("user", path, zone, year, meta), tr.zone_name)


def remove_user_trace(zone: str, year: int, visitor=_AUTO) -> bool:
    """Delete a trace the reader added — the operator's own (``<state>/grid``) or, for a class-mode visitor,
    only theirs; shipped, public-folder and other people's traces are never touched. False if there is
    none. Raises :class:`~sprout_core.errors.StorageError` (nothing removed) when the folder refuses."""
    who = _who(visitor)
    zone, year = _check_zone(zone), _check_year(year)
    folder = _own_dir(who)
    path = folder / f"{zone}_{year}_hourly.csv"
    if not path.exists():
        return False
    action = f"remove the {zone} {year} trace"
    with storage.locked(folder, action):
        if not path.exists():
            return False
        storage.remove_files([path, path.with_suffix(".json")], action)
    return True


def user_traces(visitor=_AUTO) -> list[TraceInfo]:
    """The traces the reader added (valid ones; a class-mode visitor's own only), sorted by year and zone."""
    folder = _own_dir(_who(visitor))
    if not folder.is_dir():
        return []
    out = []
    for path, zone, year in _named_csvs(folder, None):
        src = _Source("user", path, zone, year, _user_meta(path))
        try:
            out.append(_describe(src, _load_path(path, "direct", src.zone, src.year).zone_name))
        except (TraceError, OSError):
            continue
    return sorted(out, key=lambda i: (i.year, i.zone))


def clear_visitor_traces() -> tuple[int, int]:
    """The operator's reset after a class: delete every class-mode visitor's files (``<state>/visitors``: their
    traces and their uploaded prompt files).

    Returns ``(visitors, traces)`` removed. Raises :class:`~sprout_core.errors.StorageError` naming the folder
    when it cannot be deleted."""
    import shutil

    root = visitors_dir()
    if not root.is_dir():
        return 0, 0
    visitors = [p for p in root.iterdir() if p.is_dir()]
    traces = sum(1 for v in visitors for _ in (v / "grid").glob("*_hourly.csv"))
    try:
        for v in visitors:
            shutil.rmtree(v)
    except OSError as exc:
        raise storage.storage_error(exc, root, "clear the visitors' uploads") from None
    return len(visitors), traces
