"""SQLite tables of the evaluator: ``eval_runs``, ``eval_prompts``, ``eval_answers``, ``eval_judgments``.

They live in the shared Sprout database (:func:`sprout_core.store.connect`), created with
``CREATE TABLE IF NOT EXISTS``. Uniqueness makes runs resumable and duplicate-free:

* a run is identified by its ``run_key`` (prompt set, sample, levels, model, decoding, judge);
* an answer by ``(run_id, prompt_id, level)``;
* a verdict by ``(run_id, prompt_id, judge, pass_no)``.

Every insert is committed at once, so killing a run loses at most the answer in flight.
Energy is stored as ``energy_j`` (J, NULL = n/a) with its ``energy_method`` label.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from sprout_core.evaluate.judges import Verdict
from sprout_core.evaluate.prompts import PromptItem

SCHEMA = """
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
"""


def connect() -> sqlite3.Connection:
    """The shared Sprout database with the evaluator's tables (one connection per thread)."""
    try:
        from sprout_core.store import connect as store_connect
    except ImportError:  # the store module is not there yet: same file, own connection
        from sprout_core.paths import state_dir

        con = sqlite3.connect(str(state_dir() / "sprout.sqlite"), timeout=30)
        con.execute("PRAGMA journal_mode=WAL")
    else:
        con = store_connect()
    con.row_factory = sqlite3.Row
    ensure_schema(con)
    return con


#: columns added after the first schema: name → SQL type (added in place to older databases)
ADDED_ANSWER_COLUMNS = {"carbon_total_g": "REAL", "ci_g_per_kwh": "REAL", "zone": "TEXT"}


def ensure_schema(con: sqlite3.Connection) -> None:
    """Create the evaluator's tables if missing, and add later columns to older ones."""
    con.executescript(SCHEMA)
    have = {r[1] for r in con.execute("PRAGMA table_info(eval_answers)")}
    for name, kind in ADDED_ANSWER_COLUMNS.items():
        if name not in have:
            con.execute(f"ALTER TABLE eval_answers ADD COLUMN {name} {kind}")
    con.commit()


@dataclass(frozen=True)
class RunConfig:
    """What a run is: which prompts, levels, model and decoding (identifies it for resuming), and the
    judge it was started with.

    ``max_new_tokens``: cap per answer (tokens); ``threads``: torch threads used.
    """

    prompt_set: str
    n: int
    seed: int
    levels: tuple[str, ...]
    judge: str
    model: str
    directive_set: str = ""
    sampling: str = "stratified"
    max_new_tokens: int = 256
    second_pass: bool = False
    #: the level texts when they differ from the named set (a user's own levels); else read from the set
    directive_texts: tuple[str, ...] = ()

    def key(self) -> str:
        """Identity of the answers: the judge is not part of it, so several judges share one run."""
        d = {"prompt_set": self.prompt_set, "n": self.n, "seed": self.seed, "levels": list(self.levels),
             "model": self.model, "directive_set": self.directive_set,
             "sampling": self.sampling, "max_new_tokens": self.max_new_tokens}
        if self.directive_texts:
            d["directive_texts"] = list(self.directive_texts)
        elif self.directive_set:
            # The directive texts are part of the answers' identity: an edited set starts a new run
            # instead of resuming into answers made under the old texts.
            from sprout_core.directives import load_directive_set

            try:
                d["directive_texts"] = [x.text for x in load_directive_set(self.directive_set).levels]
            except (KeyError, ValueError):
                pass
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def label(self) -> str:
        return f"{self.model} · {self.prompt_set} n={self.n} seed={self.seed} · {','.join(self.levels)}"


def get_or_create_run(con: sqlite3.Connection, cfg: RunConfig, prompts: Sequence[PromptItem]) -> int:
    """The id of the run for ``cfg``; created (with its prompt list) if new. Re-entrant."""
    row = con.execute("SELECT id FROM eval_runs WHERE run_key=?", (cfg.key(),)).fetchone()
    if row:
        run_id = int(row[0])
    else:
        cur = con.execute(
            "INSERT OR IGNORE INTO eval_runs (run_key, label, prompt_set, n, seed, sampling, levels, judge, model,"
            " directive_set, params, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (cfg.key(), cfg.label(), cfg.prompt_set, cfg.n, cfg.seed, cfg.sampling, ",".join(cfg.levels), cfg.judge,
             cfg.model, cfg.directive_set, json.dumps({"max_new_tokens": cfg.max_new_tokens,
                                                        "second_pass": cfg.second_pass}), time.time()),
        )
        run_id = int(cur.lastrowid) if cur.rowcount else int(
            con.execute("SELECT id FROM eval_runs WHERE run_key=?", (cfg.key(),)).fetchone()[0])
    con.executemany(
        "INSERT OR IGNORE INTO eval_prompts (run_id, position, prompt_id, prompt, category, reference) VALUES (?,?,?,?,?,?)",
        [(run_id, i, p.id, p.prompt, p.category, p.reference) for i, p in enumerate(prompts)],
    )
    con.commit()
    return run_id


def stored_answers(con: sqlite3.Connection, run_id: int) -> dict[tuple[str, str], dict]:
    """``(prompt_id, level)`` → answer row for a run."""
    rows = con.execute("SELECT * FROM eval_answers WHERE run_id=?", (run_id,)).fetchall()
    return {(r["prompt_id"], r["level"]): dict(r) for r in rows}


def insert_answer(con: sqlite3.Connection, run_id: int, prompt_id: str, level: str, rec: Mapping[str, Any]) -> bool:
    """Store one answer (committed at once); False when it was already there (never duplicated)."""
    cur = con.execute(
        "INSERT OR IGNORE INTO eval_answers (run_id, prompt_id, level, directive, text, prompt_tokens, new_tokens,"
        " ttft_s, total_s, finish_reason, energy_j, energy_method, energy_uncertainty_j, model, device, created_at,"
        " carbon_total_g, ci_g_per_kwh, zone)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, prompt_id, level, rec.get("directive", ""), rec.get("text", ""), rec.get("prompt_tokens"),
         rec.get("new_tokens"), rec.get("ttft_s"), rec.get("total_s"), rec.get("finish_reason"), rec.get("energy_j"),
         rec.get("energy_method") or "n/a", rec.get("energy_uncertainty_j"), rec.get("model", ""), rec.get("device", ""),
         time.time(), rec.get("carbon_total_g"), rec.get("ci_g_per_kwh"), rec.get("zone")),
    )
    con.commit()
    return cur.rowcount == 1


def stored_judgments(con: sqlite3.Connection, run_id: int, judge: str | None = None) -> set[tuple[str, str, int]]:
    """``(prompt_id, judge, pass_no)`` of verdicts already stored."""
    q = "SELECT prompt_id, judge, pass_no FROM eval_judgments WHERE run_id=?"
    args: tuple = (run_id,)
    if judge:
        q += " AND judge=?"
        args += (judge,)
    return {(r[0], r[1], int(r[2])) for r in con.execute(q, args)}


def insert_verdict(con: sqlite3.Connection, run_id: int, prompt_id: str, v: Verdict) -> bool:
    """Store one verdict (committed); False when that judge/pass already judged this prompt."""
    cur = con.execute(
        "INSERT OR IGNORE INTO eval_judgments (run_id, prompt_id, judge, pass_no, winner, valid, shown_order, raw,"
        " reason, details, seconds, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, prompt_id, v.judge, v.pass_no, v.winner, 1 if v.valid else 0, json.dumps(v.order), v.raw or "",
         v.reason or "", json.dumps(v.details), v.seconds, time.time()),
    )
    con.commit()
    return cur.rowcount == 1


def finish_run(con: sqlite3.Connection, run_id: int) -> None:
    con.execute("UPDATE eval_runs SET finished_at=? WHERE id=?", (time.time(), run_id))
    con.commit()


def list_runs(con: sqlite3.Connection) -> list[dict]:
    """All runs with their counts of prompts, answers and verdicts, newest first."""
    rows = con.execute(
        "SELECT r.*, (SELECT COUNT(*) FROM eval_prompts p WHERE p.run_id=r.id) AS n_prompts,"
        " (SELECT COUNT(*) FROM eval_answers a WHERE a.run_id=r.id) AS n_answers,"
        " (SELECT COUNT(*) FROM eval_judgments j WHERE j.run_id=r.id) AS n_judgments"
        " FROM eval_runs r ORDER BY r.id DESC"
    ).fetchall()
    return [dict(r) for r in rows]


def run_tables(con: sqlite3.Connection, run_ids: Iterable[int] | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """(prompts, answers, judgments) rows of the given runs (all runs when ``None``)."""
    ids = list(run_ids) if run_ids is not None else [r["id"] for r in con.execute("SELECT id FROM eval_runs")]
    if not ids:
        return [], [], []
    ph = ",".join("?" * len(ids))
    prompts = [dict(r) for r in con.execute(f"SELECT * FROM eval_prompts WHERE run_id IN ({ph}) ORDER BY run_id, position", ids)]
    answers = [dict(r) for r in con.execute(f"SELECT * FROM eval_answers WHERE run_id IN ({ph})", ids)]
    judg = [dict(r) for r in con.execute(f"SELECT * FROM eval_judgments WHERE run_id IN ({ph})", ids)]
    return prompts, answers, judg


HUMAN_RUN_KEY = "playground-human-votes"


def record_human_vote(con: sqlite3.Connection, prompt: str, answers: Mapping[str, Mapping[str, Any] | str], winner: str,
                      model: str = "", category: str = "playground", reference: str | None = None) -> tuple[int, str]:
    """Store a person's "which answer is best?" vote on a Playground comparison as a ``human`` verdict.

    ``answers``: level → text, or level → record (``text``, ``new_tokens``, ``energy_j``, ``energy_method`` …).
    The answers go into a standing run ``playground-human-votes``; the prompt id is a hash of the
    prompt and the answers, so voting twice on the same comparison keeps the first vote.
    Returns ``(run_id, prompt_id)``.
    """
    levels = list(answers)
    if winner not in levels:
        raise ValueError(f"winner {winner!r} is not one of the answers' levels {levels}")
    texts = {lv: (a if isinstance(a, str) else a.get("text", "")) for lv, a in answers.items()}
    pid = "pg-" + hashlib.sha1(json.dumps([prompt, texts], sort_keys=True).encode()).hexdigest()[:12]
    row = con.execute("SELECT id FROM eval_runs WHERE run_key=?", (HUMAN_RUN_KEY,)).fetchone()
    if row:
        run_id = int(row[0])
    else:
        con.execute(
            "INSERT OR IGNORE INTO eval_runs (run_key, label, prompt_set, n, seed, sampling, levels, judge, model, params,"
            " created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (HUMAN_RUN_KEY, "Playground votes (human judge)", "playground", 0, 0, "none", ",".join(levels), "human",
             model or "various", "{}", time.time()))
        run_id = int(con.execute("SELECT id FROM eval_runs WHERE run_key=?", (HUMAN_RUN_KEY,)).fetchone()[0])
    pos = con.execute("SELECT COUNT(*) FROM eval_prompts WHERE run_id=?", (run_id,)).fetchone()[0]
    con.execute("INSERT OR IGNORE INTO eval_prompts (run_id, position, prompt_id, prompt, category, reference)"
                " VALUES (?,?,?,?,?,?)", (run_id, pos, pid, prompt, category, reference))
    con.commit()
    for lv, a in answers.items():
        rec = {"text": a} if isinstance(a, str) else dict(a)
        rec.setdefault("model", model)
        insert_answer(con, run_id, pid, lv, rec)
    insert_verdict(con, run_id, pid, Verdict("human", winner, True, levels, raw=f"person chose {winner}"))
    return run_id, pid


def delete_run(con: sqlite3.Connection, run_id: int) -> int:
    """Delete a run with its prompts, answers and verdicts; returns the number of answers removed."""
    n = con.execute("SELECT COUNT(*) FROM eval_answers WHERE run_id=?", (run_id,)).fetchone()[0]
    for table in ("eval_judgments", "eval_answers", "eval_prompts"):
        con.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
    con.execute("DELETE FROM eval_runs WHERE id=?", (run_id,))
    con.commit()
    return int(n)
