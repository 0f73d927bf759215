"""SQLite store: one database file for the app (``<state_dir>/sprout.sqlite``), WAL mode.

Schema migrations are kept per *component* (``schema_versions`` table): a component is a list of
SQL scripts; script ``k`` (1-based) brings it to version ``k`` and runs once, in a transaction. This
module owns the ``requests`` component; other modules add their own tables with
``apply_migrations(conn, "<component>", [...])`` through :func:`connect`.

The ``requests`` table (stable; the optimizer reads it to build an "own" profile) — one row per
generated answer. Units: seconds, J, W, g/kWh, g CO₂e. ``NULL`` = unknown ("n/a"), never 0.

=======================  ======  ==============================================================
column                   type    meaning
=======================  ======  ==============================================================
id                       int     row id
ts_utc                   text    ISO-8601 UTC time the request finished
run_id                   text    groups the levels of one Playground run / CLI call
origin                   text    ``playground`` / ``cli`` / ``bench`` / …
model                    text    model name
device                   text    ``cpu`` / ``cuda:0`` …
level                    text    directive level (``L0``, ``L1`` …)
directive                text    directive text ("" for L0)
task                     text    task label (nullable)
prompt, answer           text    user prompt and generated text
prompt_tokens            int     prompt tokens (incl. directive/template)
new_tokens               int     generated tokens
ttft_s, total_s          real    time to first token, total generation time (s)
finish_reason, error     text    why generation stopped; error text if it failed
energy_j                 real    energy of the window (J), NULL if unknown
energy_method            text    ``measured:nvml-counter`` / ``measured:rapl`` / ``estimated:cpu-tdp`` / ``n/a`` …
energy_source            text    meter description incl. device
energy_uncertainty_j     real    ± J where stated
energy_flags             text    comma-separated flags (``short-window`` …)
power_w_mean             real    mean power over the window (W)
zone                     text    grid zone of the intensity (NULL for an override)
ci_g_per_kwh             real    carbon intensity used (g CO₂e/kWh)
ci_label                 text    where the intensity came from
pue                      real    PUE used
carbon_operational_g     real    kWh × CI × PUE
carbon_embodied_g        real    embodied share for total_s
carbon_total_g           real    sum (NULL if operational unknown)
embodied_model           text    embodied preset name
=======================  ======  ==============================================================
"""
from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from sprout_core.errors import StoreError
from sprout_core.paths import state_dir

DB_NAME = "sprout.sqlite"


def default_path() -> Path:
    """``<state_dir>/sprout.sqlite``."""
    return state_dir() / DB_NAME


def _wrap(exc: sqlite3.Error, path: Path | str) -> StoreError:
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        return StoreError(f"The history database {path} is locked by another program or process (e.g. an open "
                          "SQLite browser or a long write). Close it and try again; nothing was lost.")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg or "disk image" in msg:
        return StoreError(f"The history database {path} is not a readable SQLite database (corrupt or not SQLite: {exc}). "
                          "Move it aside (e.g. rename it to sprout.sqlite.bad) and Sprout will start a new one.")
    if "readonly" in msg or "unable to open" in msg or "permission" in msg:
        return StoreError(f"The history database {path} cannot be opened for writing ({exc}). "
                          "Check the folder's permissions or set SPROUT_STATE_DIR to a writable folder.")
    return StoreError(f"History database error in {path}: {exc}")


def connect(path: Path | str | None = None, timeout_s: float = 5.0) -> sqlite3.Connection:
    """Open (creating if needed) the database: WAL, foreign keys on, ``requests`` schema migrated.

    ``path`` default :func:`default_path`; ``":memory:"`` works for tests. Waits up to ``timeout_s``
    seconds for a lock. Raises :class:`StoreError` for a locked / corrupt / unwritable database.
    Rows come back as :class:`sqlite3.Row`. Close it when done (``with closing(connect()) as c``).
    """
    p = default_path() if path is None else path
    if str(p) != ":memory:":
        try:
            Path(p).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the folder for the history database {p}: {exc}") from exc
    try:
        conn = sqlite3.connect(str(p), timeout=timeout_s, check_same_thread=False)
    except sqlite3.Error as exc:
        raise _wrap(exc, p) from exc
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        if str(p) != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA foreign_keys = ON")
        apply_migrations(conn, "requests", REQUESTS_MIGRATIONS)
    except sqlite3.Error as exc:
        conn.close()
        raise _wrap(exc, p) from exc
    return conn


Migration = str | Callable[[sqlite3.Connection], None]


def schema_version(conn: sqlite3.Connection, component: str) -> int:
    """Current schema version of ``component`` (0 = never migrated)."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_versions WHERE component = ?", (component,)).fetchone()
    return int(row[0]) if row else 0


def apply_migrations(conn: sqlite3.Connection, component: str, migrations: Sequence[Migration]) -> int:
    """Run the migrations of ``component`` not yet applied, each in its own transaction; returns the version.

    A migration is an SQL script (may hold several statements) or a callable taking the connection.
    A database newer than the code (version > len(migrations)) raises :class:`StoreError`.
    """
    current = schema_version(conn, component)
    conn.commit()
    if current > len(migrations):
        raise StoreError(f"The history database has {component} schema version {current}, newer than this Sprout "
                         f"({len(migrations)}). Update Sprout or use another SPROUT_STATE_DIR.")
    for version in range(current + 1, len(migrations) + 1):
        step = migrations[version - 1]
        try:
            conn.execute("BEGIN IMMEDIATE")
            if schema_version(conn, component) >= version:  # another process got here first
                conn.rollback()
                continue
            if callable(step):
                step(conn)
            else:
                for stmt in _split_sql(step):
                    conn.execute(stmt)
            conn.execute("INSERT INTO schema_versions(component, version) VALUES(?, ?) "
                         "ON CONFLICT(component) DO UPDATE SET version = excluded.version", (component, version))
            conn.commit()
        except Exception:
            conn.rollback()
            raise
    return max(current, len(migrations))


def _split_sql(script: str) -> list[str]:
    out, buf = [], []
    for line in script.splitlines():
        buf.append(line)
        if sqlite3.complete_statement("\n".join(buf)):
            stmt = "\n".join(buf).strip()
            if stmt.rstrip(";").strip():
                out.append(stmt)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out


REQUESTS_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_utc TEXT NOT NULL,
        run_id TEXT,
        origin TEXT,
        model TEXT,
        device TEXT,
        level TEXT,
        directive TEXT,
        task TEXT,
        prompt TEXT,
        answer TEXT,
        prompt_tokens INTEGER,
        new_tokens INTEGER,
        ttft_s REAL,
        total_s REAL,
        finish_reason TEXT,
        error TEXT,
        energy_j REAL,
        energy_method TEXT NOT NULL DEFAULT 'n/a',
        energy_source TEXT,
        energy_uncertainty_j REAL,
        energy_flags TEXT,
        power_w_mean REAL,
        zone TEXT,
        ci_g_per_kwh REAL,
        ci_label TEXT,
        pue REAL,
        carbon_operational_g REAL,
        carbon_embodied_g REAL,
        carbon_total_g REAL,
        embodied_model TEXT
    );
    CREATE INDEX IF NOT EXISTS requests_ts ON requests(ts_utc);
    CREATE INDEX IF NOT EXISTS requests_model_level ON requests(model, level);
    CREATE INDEX IF NOT EXISTS requests_run ON requests(run_id);
    """,
]


@dataclass
class RequestRecord:
    """One row of ``requests`` (see the module docstring for units)."""

    model: str | None = None
    device: str | None = None
    level: str | None = None
    directive: str | None = None
    prompt: str | None = None
    answer: str | None = None
    prompt_tokens: int | None = None
    new_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    energy_j: float | None = None
    energy_method: str = "n/a"
    energy_source: str | None = None
    energy_uncertainty_j: float | None = None
    energy_flags: str | None = None
    power_w_mean: float | None = None
    zone: str | None = None
    ci_g_per_kwh: float | None = None
    ci_label: str | None = None
    pue: float | None = None
    carbon_operational_g: float | None = None
    carbon_embodied_g: float | None = None
    carbon_total_g: float | None = None
    embodied_model: str | None = None
    task: str | None = None
    run_id: str | None = None
    origin: str | None = None
    ts_utc: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="milliseconds"))

    @classmethod
    def from_parts(cls, result: Any = None, reading: Any = None, carbon: Any = None, *, zone: str | None = None,
                   task: str | None = None, run_id: str | None = None, origin: str | None = None,
                   **overrides: Any) -> "RequestRecord":
        """Build a record from a ``GenerationResult``-like object, an ``EnergyReading`` and a ``CarbonAccount``.

        Any of them may be ``None``; ``overrides`` set columns directly.
        """
        rec = cls(task=task, run_id=run_id, origin=origin, zone=zone)
        if result is not None:
            for name in ("model", "device", "level", "directive", "prompt", "prompt_tokens", "new_tokens",
                         "ttft_s", "total_s", "finish_reason", "error"):
                if hasattr(result, name):
                    setattr(rec, name, getattr(result, name))
            rec.answer = getattr(result, "text", None)
            if rec.model is not None and not isinstance(rec.model, str):
                rec.model = str(rec.model)
        if reading is not None:
            rec.energy_j = reading.energy_j
            rec.energy_method = reading.method
            rec.energy_source = reading.source
            rec.energy_uncertainty_j = reading.uncertainty_j
            rec.energy_flags = ",".join(reading.flags) if reading.flags else None
            rec.power_w_mean = reading.power_w_mean
        if carbon is not None:
            rec.ci_g_per_kwh = carbon.ci_g_per_kwh
            rec.ci_label = carbon.ci_label
            rec.pue = carbon.pue
            rec.carbon_operational_g = carbon.operational_g
            rec.carbon_embodied_g = carbon.embodied_g
            rec.carbon_total_g = carbon.total_g
            rec.embodied_model = carbon.embodied_name
        for k, v in overrides.items():
            if k not in {f.name for f in fields(cls)}:
                raise TypeError(f"unknown requests column {k!r}")
            setattr(rec, k, v)
        return rec

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "RequestRecord":
        """A record from an answer's flat row (:meth:`sprout_core.metered.MeteredOutcome.to_row`): ``text``
        becomes ``answer``, a list of flags a comma-separated string; keys that are not columns are ignored."""
        data = {k: v for k, v in row.items() if k in _COLUMN_SET}
        if "answer" not in data and "text" in row:
            data["answer"] = row["text"]
        flags = data.get("energy_flags")
        if isinstance(flags, (list, tuple)):
            data["energy_flags"] = ",".join(map(str, flags)) or None
        if data.get("energy_method") is None:
            data["energy_method"] = "n/a"
        if data.get("ts_utc") is None:
            data.pop("ts_utc", None)
        return cls(**data)


REQUEST_COLUMNS = [f.name for f in fields(RequestRecord)]
_COLUMN_SET = frozenset(REQUEST_COLUMNS)


def new_run_id() -> str:
    """A fresh id grouping the requests of one run."""
    return uuid.uuid4().hex[:12]


def record_request(record: RequestRecord | None = None, conn: sqlite3.Connection | None = None,
                   path: Path | str | None = None, **columns: Any) -> int:
    """Insert one request (a :class:`RequestRecord`, or columns as keywords); returns its id.

    Uses ``conn`` if given, else opens ``path`` (default database) for this one write.
    Raises :class:`StoreError` when the database is locked/corrupt/unwritable.
    """
    rec = record if record is not None else RequestRecord(**columns)
    data = asdict(rec)
    for k, v in list(data.items()):
        if isinstance(v, (list, tuple, dict)):
            data[k] = json.dumps(v)
    cols = ", ".join(data)
    qs = ", ".join("?" for _ in data)
    own = conn is None
    c = connect(path) if own else conn
    try:
        cur = c.execute(f"INSERT INTO requests ({cols}) VALUES ({qs})", list(data.values()))
        c.commit()
        return int(cur.lastrowid)
    except sqlite3.Error as exc:
        raise _wrap(exc, path or default_path()) from exc
    finally:
        if own:
            c.close()


@dataclass
class RequestFilter:
    """Filters for :func:`query_requests`; empty fields do not filter.

    ``since`` / ``until``: ISO dates or datetimes (UTC), inclusive; ``text``: substring of prompt or answer.
    """

    models: list[str] = field(default_factory=list)
    levels: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    zones: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    run_id: str | None = None
    since: str | None = None
    until: str | None = None
    text: str | None = None
    limit: int | None = None


def query_requests(filters: RequestFilter | dict | None = None, conn: sqlite3.Connection | None = None,
                   path: Path | str | None = None) -> pd.DataFrame:
    """Requests matching ``filters``, newest first, as a DataFrame with the table's columns."""
    f = filters if isinstance(filters, RequestFilter) else RequestFilter(**(filters or {}))
    where, args = [], []
    for col, values in (("model", f.models), ("level", f.levels), ("energy_method", f.methods), ("zone", f.zones),
                        ("device", f.devices), ("task", f.tasks), ("origin", f.origins)):
        if values:
            where.append(f"{col} IN ({', '.join('?' for _ in values)})")
            args.extend(values)
    if f.run_id:
        where.append("run_id = ?")
        args.append(f.run_id)
    if f.since:
        where.append("ts_utc >= ?")
        args.append(str(f.since))
    if f.until:
        u = str(f.until)
        if len(u) == 10:  # a date: include the whole day
            u += "T23:59:59.999999"
        where.append("ts_utc <= ?")
        args.append(u)
    if f.text:
        where.append("(prompt LIKE ? OR answer LIKE ?)")
        args.extend([f"%{f.text}%"] * 2)
    sql = "SELECT * FROM requests" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts_utc DESC, id DESC"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    own = conn is None
    c = connect(path) if own else conn
    try:
        rows = c.execute(sql, args).fetchall()
        cols = [d[0] for d in c.execute("SELECT * FROM requests LIMIT 0").description]
    except sqlite3.Error as exc:
        raise _wrap(exc, path or default_path()) from exc
    finally:
        if own:
            c.close()
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def distinct_values(column: str, conn: sqlite3.Connection | None = None, path: Path | str | None = None) -> list[str]:
    """Distinct non-null values of one ``requests`` column (for filter widgets)."""
    if column not in REQUEST_COLUMNS:
        raise ValueError(f"unknown requests column {column!r}")
    own = conn is None
    c = connect(path) if own else conn
    try:
        return [r[0] for r in c.execute(f"SELECT DISTINCT {column} FROM requests WHERE {column} IS NOT NULL ORDER BY 1")]
    except sqlite3.Error as exc:
        raise _wrap(exc, path or default_path()) from exc
    finally:
        if own:
            c.close()


@dataclass(frozen=True)
class HistorySummary:
    """Totals over a set of requests; energy/carbon totals per method so estimates never mix silently."""

    requests: int
    new_tokens: int
    energy_j_by_method: dict[str, float]
    unknown_energy: int
    carbon_total_g: float | None
    unknown_carbon: int


def summarize(df: pd.DataFrame) -> HistorySummary:
    """Totals of a :func:`query_requests` frame (energy per method, J; carbon g, over known rows)."""
    if df.empty:
        return HistorySummary(0, 0, {}, 0, None, 0)
    known = df[df["energy_j"].notna()]
    by_method = {str(k): float(v) for k, v in known.groupby("energy_method")["energy_j"].sum().items()}
    ct = df["carbon_total_g"]
    return HistorySummary(
        requests=len(df), new_tokens=int(df["new_tokens"].fillna(0).sum()), energy_j_by_method=by_method,
        unknown_energy=int(df["energy_j"].isna().sum()),
        carbon_total_g=float(ct.sum()) if ct.notna().any() else None, unknown_carbon=int(ct.isna().sum()),
    )


def db_signature(path: Path | str | None = None) -> tuple:
    """``(mtime_ns, size)`` of the database and its WAL file: changes whenever a row is written (cache key)."""
    p = Path(default_path() if path is None else path)
    out = []
    for f in (p, p.with_name(p.name + "-wal")):
        try:
            st_ = f.stat()
            out.append((st_.st_mtime_ns, st_.st_size))
        except OSError:
            out.append(None)
    return tuple(out)
