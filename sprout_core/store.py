"""SQLite store: one database file for the app (``<state_dir>/sprout.sqlite``), WAL mode.

Schema migrations are kept per *component* (``schema_versions`` table): a component is a list of
SQL scripts (or callables); script ``k`` (1-based) brings it to version ``k`` and runs once, in a
transaction. This module is the one schema mechanism of the one database file: it owns the
``requests`` component (History) and the ``evaluation`` component (``eval_runs``, ``eval_prompts``,
``eval_answers``, ``eval_judgments``, ``eval_claims``; read and written by
:mod:`sprout_core.evaluate.db`). :func:`connect` brings both up to date, so a database written by an
older Sprout is migrated in place the first time it is opened.

Nothing is lost when the database cannot be written (locked by another program, read-only, corrupt):
the row goes to a *pending queue* (a JSONL file next to the database, or in the temp folder when that
folder is not writable) and is added automatically the next time the database is written or read.
The error raised then is a :class:`~sprout_core.errors.QueuedError` that says so; only when even the
queue cannot be written does the message say the row was not saved.

The ``requests`` table (stable; the optimizer reads it to build an "own" profile) — one row per
generated answer, written from and read back as a :class:`sprout_core.record.AnswerRecord`
(:func:`record_answer`, :func:`read_answers`). Units: seconds, J, W, g/kWh, g CO₂e. ``NULL`` = unknown ("n/a"), never 0.

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
uid                      text    unique id of the answer (a queued row is never added twice)
window_start_utc         text    ISO-8601 UTC start of the energy window (NULL if not known)
window_end_utc           text    ISO-8601 UTC end of the energy window
backend, placement       text    ``transformers`` / ``llama.cpp`` / ``server``; ``system`` or ``user`` directive
max_new_tokens(_capped)  int     the token cap; 1 if it was lowered to fit the context
do_sample, seed          int     sampling settings
tokens_per_s, started_at real    new tokens ÷ s; wall-clock start (s since the epoch)
partial                  int     1 when the answer was cut mid-stream (``finish_reason`` says why)
energy_j_low/_high       real    an estimate's range (J), e.g. EcoLogits
energy_duration_s        real    length of the energy window (s)
pinned                   int     1 when a client pinned the level (gateway), NULL where not assigned
ci_source                text    ``trace`` / ``fixed`` / ``electricitymaps`` / ``trace (live source unavailable…)``
hour_utc                 text    ISO-8601 UTC hour the answer was priced at
=======================  ======  ==============================================================
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
import pandas as pd

from sprout_core import record as record_mod
from sprout_core.errors import InputError, QueuedError, StoreError
from sprout_core.paths import state_dir
from sprout_core.record import AnswerRecord

DB_NAME = "sprout.sqlite"


def default_path() -> Path:
    """``<state_dir>/sprout.sqlite``."""
    return state_dir() / DB_NAME


def _wrap(exc: sqlite3.Error, path: Path | str, op: str = "write") -> StoreError:
    """A :class:`StoreError` whose message says what went wrong and what to do.

    ``op``: ``read`` (nothing stored can be lost by a failed read, and the message says so) or
    ``write`` (the caller says what happened to the data: queued, or exactly what was not saved)."""
    msg = str(exc).lower()
    if "locked" in msg or "busy" in msg:
        if op == "read":
            return StoreError(f"The database {path} is busy (locked by another program or process, e.g. an open "
                              "SQLite browser or a long write). Nothing stored is lost; try again in a moment.")
        return StoreError(f"The database {path} is locked by another program or process (e.g. an open SQLite "
                          "browser or a long write); close it and try again.")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg or "disk image" in msg:
        return StoreError(f"The database {path} is not a readable SQLite database (corrupt or not SQLite: {exc}). "
                          "Move it aside (e.g. rename it to sprout.sqlite.bad) and Sprout will start a new one.")
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg or "permission" in msg:
        return StoreError(f"The database {path} cannot be opened for writing ({exc}). "
                          "Check the folder's permissions or set SPROUT_STATE_DIR to a writable folder.")
    if "disk" in msg and "full" in msg:
        return StoreError(f"The disk holding the database {path} is full ({exc}); free some space and try again.")
    return StoreError(f"Database error in {path}: {exc}")


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
    conn.row_factory = sqlite3.Row
    # Switching a new file to WAL and migrating it can meet another connection doing the same (SQLite then
    # answers "locked" at once, without waiting): every step is idempotent, so try again until timeout_s.
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if str(p) != ":memory:":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            apply_migrations(conn, "requests", REQUESTS_MIGRATIONS)
            apply_migrations(conn, "evaluation", EVALUATION_MIGRATIONS)
            return conn
        except sqlite3.OperationalError as exc:
            msg = str(exc).lower()
            if ("locked" in msg or "busy" in msg) and time.monotonic() < deadline:
                if conn.in_transaction:
                    conn.rollback()
                time.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            conn.close()
            raise _wrap(exc, p, "open") from exc
        except sqlite3.Error as exc:
            conn.close()
            raise _wrap(exc, p, "open") from exc
        except StoreError:
            conn.close()
            raise


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
    # 2: a unique id per answer (the pending queue adds a row at most once) and the energy window's times
    """
    ALTER TABLE requests ADD COLUMN uid TEXT;
    ALTER TABLE requests ADD COLUMN window_start_utc TEXT;
    ALTER TABLE requests ADD COLUMN window_end_utc TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS requests_uid ON requests(uid) WHERE uid IS NOT NULL;
    """,
    # 3: the rest of the one answer record (sprout_core.record.AnswerRecord), so a row reads back as the record
    #    it was written from: backend and sampling settings, whether the answer was cut, the energy window's
    #    length and an estimate's range, and the gateway's fields (pinned level, intensity source, UTC hour)
    """
    ALTER TABLE requests ADD COLUMN backend TEXT;
    ALTER TABLE requests ADD COLUMN placement TEXT;
    ALTER TABLE requests ADD COLUMN max_new_tokens INTEGER;
    ALTER TABLE requests ADD COLUMN max_new_tokens_capped INTEGER;
    ALTER TABLE requests ADD COLUMN do_sample INTEGER;
    ALTER TABLE requests ADD COLUMN seed INTEGER;
    ALTER TABLE requests ADD COLUMN tokens_per_s REAL;
    ALTER TABLE requests ADD COLUMN started_at REAL;
    ALTER TABLE requests ADD COLUMN partial INTEGER;
    ALTER TABLE requests ADD COLUMN energy_j_low REAL;
    ALTER TABLE requests ADD COLUMN energy_j_high REAL;
    ALTER TABLE requests ADD COLUMN energy_duration_s REAL;
    ALTER TABLE requests ADD COLUMN pinned INTEGER;
    ALTER TABLE requests ADD COLUMN ci_source TEXT;
    ALTER TABLE requests ADD COLUMN hour_utc TEXT;
    """,
]


# --------------------------------------------------------------------------- evaluation tables
def prompts_digest(items: Sequence[Sequence[Any]]) -> str:
    """Digest of a run's prompt list: ``(id, prompt, category, reference)`` per item, in order.

    Part of a run's identity, so editing a prompt file and rerunning under the same path is a new run."""
    rows = [[str(x) if x is not None else None for x in it] for it in items]
    return hashlib.sha1(json.dumps(rows, ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def content_run_key(config_key: str, digest: str) -> str:
    """A run's key: its settings' key (``RunConfig.key()``) and the digest of its prompts."""
    return hashlib.sha1(f"{config_key}:{digest}".encode()).hexdigest()[:16]


_HEX16 = re.compile(r"^[0-9a-f]{16}$")


def _eval_v2(conn: sqlite3.Connection) -> None:
    """Error rows, claims, and runs keyed on their prompts' content (existing runs re-keyed in place)."""
    cols = {r[1] for r in conn.execute("PRAGMA table_info(eval_answers)")}
    # error rows; and each answer's carbon (g CO₂e) at the intensity (g/kWh) and zone it was priced with
    for name, kind in (("error", "TEXT"), ("carbon_total_g", "REAL"), ("ci_g_per_kwh", "REAL"), ("zone", "TEXT")):
        if name not in cols:
            conn.execute(f"ALTER TABLE eval_answers ADD COLUMN {name} {kind}")
    conn.execute("""
        CREATE TABLE IF NOT EXISTS eval_claims (
            run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
            prompt_id TEXT NOT NULL,
            item TEXT NOT NULL,
            owner TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            pid_started REAL,
            claimed_at REAL NOT NULL,
            PRIMARY KEY (run_id, prompt_id, item)
        )""")
    for run_id, key in conn.execute("SELECT id, run_key FROM eval_runs").fetchall():
        if not _HEX16.match(key or ""):  # standing runs (Playground votes) keep their fixed key
            continue
        items = conn.execute("SELECT prompt_id, prompt, category, reference FROM eval_prompts WHERE run_id=? "
                             "ORDER BY position", (run_id,)).fetchall()
        conn.execute("UPDATE eval_runs SET run_key=? WHERE id=?", (content_run_key(key, prompts_digest(items)), run_id))


#: columns of the answer record that ``eval_answers`` gained in evaluation schema 3 (name, SQL type)
EVAL_ANSWER_RECORD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("energy_source", "TEXT"), ("energy_flags", "TEXT"), ("power_w_mean", "REAL"), ("energy_duration_s", "REAL"),
    ("ci_label", "TEXT"), ("pue", "REAL"), ("carbon_operational_g", "REAL"), ("carbon_embodied_g", "REAL"),
    ("embodied_model", "TEXT"), ("backend", "TEXT"), ("partial", "INTEGER"), ("window_start_utc", "TEXT"),
    ("window_end_utc", "TEXT"), ("uid", "TEXT"))


def _add_columns(conn: sqlite3.Connection, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """Add the ``(name, type)`` columns ``table`` lacks (idempotent)."""
    have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
    for name, kind in columns:
        if name not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")


def _eval_v4(conn: sqlite3.Connection) -> None:
    """Evaluation schema 4 (issue 18): ``eval_judgments`` gains ``energy_j`` (J of judging that pass, NULL =
    n/a) and ``energy_method``, ``visitor`` (who voted, for people's verdicts; '' otherwise) and ``merged``
    (0 = a class-mode visitor's vote not yet merged by the operator); ``eval_flip_rates`` keeps, per run,
    judge and task, how many prompts had two valid passes (``pairs``) and how many of them flipped."""
    _add_columns(conn, "eval_judgments", [("energy_j", "REAL"), ("energy_method", "TEXT NOT NULL DEFAULT 'n/a'"),
                                          ("visitor", "TEXT NOT NULL DEFAULT ''"), ("merged", "INTEGER NOT NULL DEFAULT 1")])
    conn.execute("CREATE TABLE IF NOT EXISTS eval_flip_rates (run_id INTEGER NOT NULL REFERENCES eval_runs(id) "
                 "ON DELETE CASCADE, judge TEXT NOT NULL, task TEXT NOT NULL, pairs INTEGER NOT NULL, "
                 "flips INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (run_id, judge, task))")


EVALUATION_MIGRATIONS: list[Migration] = [
    """
    CREATE TABLE IF NOT EXISTS eval_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_key TEXT NOT NULL UNIQUE,
        label TEXT NOT NULL,
        prompt_set TEXT NOT NULL,
        n INTEGER NOT NULL,
        seed INTEGER NOT NULL,
        sampling TEXT NOT NULL DEFAULT 'stratified',
        levels TEXT NOT NULL,
        judge TEXT NOT NULL,
        model TEXT NOT NULL,
        directive_set TEXT NOT NULL DEFAULT '',
        params TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE TABLE IF NOT EXISTS eval_prompts (
        run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        prompt_id TEXT NOT NULL,
        prompt TEXT NOT NULL,
        category TEXT NOT NULL,
        reference TEXT,
        UNIQUE (run_id, prompt_id)
    );
    CREATE TABLE IF NOT EXISTS eval_answers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        prompt_id TEXT NOT NULL,
        level TEXT NOT NULL,
        directive TEXT NOT NULL DEFAULT '',
        text TEXT NOT NULL,
        prompt_tokens INTEGER,
        new_tokens INTEGER,
        ttft_s REAL,
        total_s REAL,
        finish_reason TEXT,
        energy_j REAL,
        energy_method TEXT NOT NULL DEFAULT 'n/a',
        energy_uncertainty_j REAL,
        model TEXT NOT NULL DEFAULT '',
        device TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        UNIQUE (run_id, prompt_id, level)
    );
    CREATE TABLE IF NOT EXISTS eval_judgments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
        prompt_id TEXT NOT NULL,
        judge TEXT NOT NULL,
        pass_no INTEGER NOT NULL DEFAULT 1,
        winner TEXT,
        valid INTEGER NOT NULL,
        shown_order TEXT NOT NULL,
        raw TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}',
        seconds REAL,
        created_at REAL NOT NULL,
        UNIQUE (run_id, prompt_id, judge, pass_no)
    );
    """,
    # 2: failed answers stored as error rows; claims so two processes never generate the same answer;
    #    runs keyed on the content of their prompts
    _eval_v2,
    # 3: evaluation answers keep the same energy and carbon labels as History's rows (the one answer record)
    lambda conn: _add_columns(conn, "eval_answers", EVAL_ANSWER_RECORD_COLUMNS),
    # 4: judging twice (issue 18): each pass's judging energy, the flip rate per run, judge and task, and
    #    who cast a person's (blind) vote — see _eval_v4
    _eval_v4,
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
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    window_start_utc: str | None = None
    window_end_utc: str | None = None
    # requests schema 3 (the rest of sprout_core.record.AnswerRecord)
    backend: str | None = None
    placement: str | None = None
    max_new_tokens: int | None = None
    max_new_tokens_capped: int | None = None
    do_sample: int | None = None
    seed: int | None = None
    tokens_per_s: float | None = None
    started_at: float | None = None
    partial: int | None = None
    energy_j_low: float | None = None
    energy_j_high: float | None = None
    energy_duration_s: float | None = None
    pinned: int | None = None
    ci_source: str | None = None
    hour_utc: str | None = None

    @classmethod
    def from_answer(cls, rec: AnswerRecord) -> "RequestRecord":
        """The row of one :class:`~sprout_core.record.AnswerRecord`."""
        return cls(**rec.to_columns())

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
            rec.window_start_utc = iso_utc(getattr(reading, "started_at", None))
            rec.window_end_utc = iso_utc(getattr(reading, "ended_at", None))
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


iso_utc = record_mod.iso_utc


# --------------------------------------------------------------------------- pending queue
def _db_path_nocreate(path: Path | str | None) -> Path:
    return Path(state_dir(create=False) / DB_NAME if path is None else path)


def _db_id(path: Path | str | None) -> str:
    p = _db_path_nocreate(path)
    try:
        key = str(Path(p).resolve())
    except OSError:
        key = str(p)
    return hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def _queue_dirs(path: Path | str | None) -> list[Path]:
    """Where the pending queue of database ``path`` may live: next to it, else in the temp folder."""
    p = _db_path_nocreate(path)
    return [p.parent / "pending", Path(tempfile.gettempdir()) / f"sprout-pending-{os.getuid()}"]


def _queue_files(kind: str, path: Path | str | None) -> list[Path]:
    if str(path) == ":memory:":
        return []
    return [d / f"{kind}-{_db_id(path)}.jsonl" for d in _queue_dirs(path)]


@contextlib.contextmanager
def _locked(f):
    """Hold ``<queue file>.lock`` (a ``filelock`` lock, across processes and threads) while the block runs."""
    with filelock.FileLock(f"{f.name}.lock"):
        yield f


def queue_append(kind: str, item: dict, path: Path | str | None = None) -> Path:
    """Append one row to the pending queue ``kind`` of database ``path``; returns the file written.

    Tries the folder next to the database, then the temp folder; ``OSError`` when neither is writable."""
    last: OSError | None = None
    line = json.dumps(item, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n"
    for f in _queue_files(kind, path):
        try:
            f.parent.mkdir(parents=True, exist_ok=True)
            with open(f, "ab") as fh, _locked(fh):
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            return f
        except OSError as exc:
            last = exc
    raise last or OSError("no pending-queue folder")


def queue_items(kind: str, path: Path | str | None = None) -> list[dict]:
    """The rows waiting in the pending queue ``kind`` of database ``path`` (oldest first)."""
    out: list[dict] = []
    for f in _queue_files(kind, path):
        try:
            data = f.read_bytes()
        except OSError:
            continue
        for line in data.splitlines():
            try:
                out.append(json.loads(line.decode("utf-8", "surrogatepass")))
            except ValueError:
                continue  # a torn last line of a killed writer
    return out


def queue_drain(kind: str, apply: Callable[[list[dict]], list[dict]], path: Path | str | None = None) -> int:
    """Hand the queued rows to ``apply`` (which writes them and returns those it could not place yet);
    rewrites the queue with what is left. Returns the number of rows placed. ``apply`` must be
    idempotent (rows carry unique keys), so a drain interrupted half-way never duplicates anything."""
    placed = 0
    for f in _queue_files(kind, path):
        if not f.exists() or f.stat().st_size == 0:
            continue
        with open(f, "r+b") as fh, _locked(fh):
            items = []
            for line in fh.read().splitlines():
                try:
                    items.append(json.loads(line.decode("utf-8", "surrogatepass")))
                except ValueError:
                    continue
            left = apply(items) if items else []
            placed += len(items) - len(left)
            fh.seek(0)
            fh.truncate()
            for it in left:
                fh.write(json.dumps(it, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")
    return placed


def pending_requests(path: Path | str | None = None) -> int:
    """How many answers wait in the pending queue for History (the database could not be written)."""
    return len(queue_items("requests", path))


def _insert_request(c: sqlite3.Connection, data: dict) -> int | None:
    cols = ", ".join(data)
    qs = ", ".join("?" for _ in data)
    cur = c.execute(f"INSERT OR IGNORE INTO requests ({cols}) VALUES ({qs})", list(data.values()))
    return int(cur.lastrowid) if cur.rowcount else None


def flush_pending(conn: sqlite3.Connection, path: Path | str | None = None) -> int:
    """Add the queued History rows to the database (each at most once); returns how many were added.

    Never raises: when the database still cannot be written the rows stay queued."""
    def apply(items: list[dict]) -> list[dict]:
        try:
            for data in items:
                _insert_request(conn, {k: v for k, v in data.items() if k in REQUEST_COLUMNS})
            conn.commit()
        except sqlite3.Error:
            conn.rollback()
            return items
        return []

    try:
        return queue_drain("requests", apply, path)
    except OSError:
        return 0


def new_run_id() -> str:
    """A fresh id grouping the requests of one run."""
    return uuid.uuid4().hex[:12]


def record_request(record: RequestRecord | AnswerRecord | None = None, conn: sqlite3.Connection | None = None,
                   path: Path | str | None = None, **columns: Any) -> int | None:
    """Insert one request (a :class:`RequestRecord`, or columns as keywords); returns its id.

    Uses ``conn`` if given, else opens ``path`` (default database) for this one write. Answers queued
    earlier (database locked then) are added first. When the database cannot be written the row goes to
    the pending queue and :class:`~sprout_core.errors.QueuedError` says so (nothing lost); a plain
    :class:`StoreError` only when even the queue cannot be written (the message says the answer was not
    saved).
    """
    if isinstance(record, AnswerRecord):
        record = RequestRecord.from_answer(record)
    rec = record if record is not None else RequestRecord(**columns)
    data = asdict(rec)
    for k, v in list(data.items()):
        if isinstance(v, (list, tuple, dict)):
            data[k] = json.dumps(v)
    own = conn is None
    c = None
    try:
        c = connect(path) if own else conn
        flush_pending(c, path)
        rid = _insert_request(c, data)
        c.commit()
        if rid is None:  # already there (same uid)
            rid = int(c.execute("SELECT id FROM requests WHERE uid=?", (rec.uid,)).fetchone()[0])
        return rid
    except (sqlite3.Error, StoreError) as exc:
        if c is not None and not own:
            with contextlib.suppress(sqlite3.Error):
                c.rollback()
        err = _wrap(exc, path or default_path(), "write") if isinstance(exc, sqlite3.Error) else exc
        try:
            q = queue_append("requests", data, path)
        except OSError as qexc:
            raise StoreError(f"{err} This answer was NOT saved to History: the pending queue could not be "
                             f"written either ({qexc}). It is still on screen; copy it if you need it.") from exc
        raise QueuedError(f"{err} The answer was kept in the pending queue ({q}) and is added to History "
                          "automatically as soon as the database can be written again; nothing was lost.",
                          str(q)) from exc
    finally:
        if own and c is not None:
            c.close()


def record_answer(rec: AnswerRecord, conn: sqlite3.Connection | None = None,
                  path: Path | str | None = None) -> AnswerRecord:
    """Store one answer record in ``requests``; returns it with its ``request_id``. Errors as
    :func:`record_request` (a :class:`~sprout_core.errors.QueuedError` when it waits in the pending queue)."""
    return rec.replace(request_id=record_request(rec, conn=conn, path=path))


def read_answers(filters: "RequestFilter | dict | None" = None, conn: sqlite3.Connection | None = None,
                 path: Path | str | None = None) -> list[AnswerRecord]:
    """The stored answers matching ``filters`` (newest first), read back as :class:`AnswerRecord` s."""
    df = query_requests(filters, conn=conn, path=path)
    return [AnswerRecord.from_row({k: (None if _isnan(v) else v) for k, v in row.items()})
            for row in df.to_dict("records")]


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and v != v


_LIKE_ESCAPE = "\\"


def like_pattern(text: str) -> str:
    """``%text%`` for ``LIKE … ESCAPE '\\'`` with ``%``, ``_`` and ``\\`` in ``text`` matched literally."""
    esc = text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2).replace("%", _LIKE_ESCAPE + "%").replace("_", _LIKE_ESCAPE + "_")
    return f"%{esc}%"


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
        where.append(f"(prompt LIKE ? ESCAPE '{_LIKE_ESCAPE}' OR answer LIKE ? ESCAPE '{_LIKE_ESCAPE}')")
        args.extend([like_pattern(f.text)] * 2)
    sql = "SELECT * FROM requests" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY ts_utc DESC, id DESC"
    if f.limit:
        sql += f" LIMIT {int(f.limit)}"
    own = conn is None
    c = connect(path) if own else conn
    try:
        flush_pending(c, path)  # answers queued while the database was locked reach History now
        rows = c.execute(sql, args).fetchall()
        cols = [d[0] for d in c.execute("SELECT * FROM requests LIMIT 0").description]
    except sqlite3.Error as exc:
        raise _wrap(exc, path or default_path(), "read") from exc
    finally:
        if own:
            c.close()
    return pd.DataFrame([tuple(r) for r in rows], columns=cols)


def distinct_values(column: str, conn: sqlite3.Connection | None = None, path: Path | str | None = None) -> list[str]:
    """Distinct non-null values of one ``requests`` column (for filter widgets)."""
    if column not in REQUEST_COLUMNS:
        raise InputError(f"unknown requests column {column!r}")
    own = conn is None
    c = connect(path) if own else conn
    try:
        return [r[0] for r in c.execute(f"SELECT DISTINCT {column} FROM requests WHERE {column} IS NOT NULL ORDER BY 1")]
    except sqlite3.Error as exc:
        raise _wrap(exc, path or default_path(), "read") from exc
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
