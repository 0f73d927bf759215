"""SQLite tables of the evaluator: ``eval_runs``, ``eval_prompts``, ``eval_answers``, ``eval_judgments``,
``eval_claims``.

They live in the shared Sprout database; their schema is the ``evaluation`` component of the versioned
migrations in :mod:`sprout_core.store` (one schema mechanism for the one file). Uniqueness makes runs
resumable and duplicate-free:

* a run is identified by its ``run_key``: its settings (prompt set, sample, levels, model, decoding,
  directive texts) *and the content of its prompts*, so an edited prompt file is a new run;
* an answer by ``(run_id, prompt_id, level)``; one that could not be generated (e.g. a prompt longer
  than the model's context) is an *error row* (``error`` set, ``text`` empty), so a run can finish;
* a verdict by ``(run_id, prompt_id, judge, pass_no)``.

Two processes (or two app sessions) on the same run never generate the same answer: before generating,
a worker *claims* the answer in ``eval_claims`` in one ``BEGIN IMMEDIATE`` transaction that also checks
no answer is stored; the claim is removed in the transaction that stores the answer. A claim whose
owner is gone (its process ended, e.g. killed) is taken over. Judging a prompt is claimed the same way.

Every insert is committed at once, so killing a run loses at most the answer in flight. An answer that
cannot be written (database locked for too long, read-only, corrupt) goes to the pending queue
(:func:`queue_answer`) and is added on the next run instead of being generated again.
Energy is stored as ``energy_j`` (J, NULL = n/a) with its ``energy_method`` label.
"""
from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import psutil

from sprout_core import store
from sprout_core.directives import load_directive_set
from sprout_core.evaluate.judges import Verdict
from sprout_core.evaluate.prompts import PromptItem

#: claims made on another machine (a shared folder) are taken over after this many seconds
FOREIGN_CLAIM_TTL_S = 3 * 3600.0


def connect() -> sqlite3.Connection:
    """The shared Sprout database (its schema, the evaluator's tables included, migrated by
    :func:`sprout_core.store.connect`; :class:`~sprout_core.errors.StoreError` when unusable)."""
    return store.connect()


def ensure_schema(con: sqlite3.Connection) -> None:
    """Bring the evaluator's tables up to date (``store.connect`` already does this)."""
    store.apply_migrations(con, "evaluation", store.EVALUATION_MIGRATIONS)


def _begin(con: sqlite3.Connection) -> None:
    """Start a write transaction now (``BEGIN IMMEDIATE``): waits for the lock up to the busy timeout."""
    if con.in_transaction:
        con.commit()
    con.execute("BEGIN IMMEDIATE")


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
    second_pass: bool = True
    #: the level texts when they differ from the named set (a user's own levels); else read from the set
    directive_texts: tuple[str, ...] = ()

    def key(self) -> str:
        """Identity of the settings: the judge is not part of it, so several judges share one run."""
        d = {"prompt_set": self.prompt_set, "n": self.n, "seed": self.seed, "levels": list(self.levels),
             "model": self.model, "directive_set": self.directive_set,
             "sampling": self.sampling, "max_new_tokens": self.max_new_tokens}
        if self.directive_texts:
            d["directive_texts"] = list(self.directive_texts)
        elif self.directive_set:
            # The directive texts are part of the answers' identity: an edited set starts a new run
            # instead of resuming into answers made under the old texts.
            try:
                d["directive_texts"] = [x.text for x in load_directive_set(self.directive_set).levels]
            except (KeyError, ValueError):  # an unknown set has no texts to add (UnknownNameError is both)
                pass
        return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def run_key(self, prompts: Sequence[PromptItem]) -> str:
        """Identity of the run: :meth:`key` and the content of its prompts (ids, texts, categories, references)."""
        return store.content_run_key(self.key(), store.prompts_digest(prompt_rows(prompts)))

    def label(self) -> str:
        return f"{self.model} · {self.prompt_set} n={self.n} seed={self.seed} · {','.join(self.levels)}"


def prompt_rows(prompts: Sequence[PromptItem]) -> list[tuple]:
    """``(id, prompt, category, reference)`` per prompt, in order (what the run key digests)."""
    return [(p.id, p.prompt, p.category, p.reference) for p in prompts]


def get_or_create_run(con: sqlite3.Connection, cfg: RunConfig, prompts: Sequence[PromptItem]) -> int:
    """The id of the run for ``cfg`` and these prompts; created (with its prompt list) if new. Re-entrant
    and safe when two processes start the same run at once."""
    key = cfg.run_key(prompts)
    _begin(con)
    try:
        row = con.execute("SELECT id FROM eval_runs WHERE run_key=?", (key,)).fetchone()
        if row:
            run_id = int(row[0])
        else:
            cur = con.execute(
                "INSERT INTO eval_runs (run_key, label, prompt_set, n, seed, sampling, levels, judge, model,"
                " directive_set, params, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (key, cfg.label(), cfg.prompt_set, cfg.n, cfg.seed, cfg.sampling, ",".join(cfg.levels), cfg.judge,
                 cfg.model, cfg.directive_set, json.dumps({"max_new_tokens": cfg.max_new_tokens,
                                                            "second_pass": cfg.second_pass}), time.time()),
            )
            run_id = int(cur.lastrowid)
        con.executemany(
            "INSERT OR IGNORE INTO eval_prompts (run_id, position, prompt_id, prompt, category, reference) VALUES (?,?,?,?,?,?)",
            [(run_id, i, p.id, p.prompt, p.category, p.reference) for i, p in enumerate(prompts)],
        )
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return run_id


def run_id_for_key(con: sqlite3.Connection, run_key: str) -> int | None:
    row = con.execute("SELECT id FROM eval_runs WHERE run_key=?", (run_key,)).fetchone()
    return int(row[0]) if row else None


def stored_answers(con: sqlite3.Connection, run_id: int) -> dict[tuple[str, str], dict]:
    """``(prompt_id, level)`` → answer row for a run (error rows included: ``error`` is set on them)."""
    rows = con.execute("SELECT * FROM eval_answers WHERE run_id=?", (run_id,)).fetchall()
    return {(r["prompt_id"], r["level"]): dict(r) for r in rows}


#: the answer record's energy and carbon labels (evaluation schema 3: the same as History's rows)
_RECORD_COLS = tuple(name for name, _ in store.EVAL_ANSWER_RECORD_COLUMNS)
_ANSWER_SQL = (
    "INSERT OR IGNORE INTO eval_answers (run_id, prompt_id, level, directive, text, prompt_tokens, new_tokens,"
    " ttft_s, total_s, finish_reason, energy_j, energy_method, energy_uncertainty_j, model, device, created_at, error,"
    " carbon_total_g, ci_g_per_kwh, zone, " + ", ".join(_RECORD_COLS) + ")"
    " VALUES (" + ",".join("?" * (20 + len(_RECORD_COLS))) + ")")


def _label(rec: Mapping[str, Any], name: str) -> Any:
    v = rec.get(name)
    if name == "energy_flags" and isinstance(v, (list, tuple)):
        return ",".join(map(str, v)) or None
    if name == "partial" and v is not None:
        return int(bool(v))
    return v


def _answer_args(run_id: int, prompt_id: str, level: str, rec: Mapping[str, Any]) -> tuple:
    return (run_id, prompt_id, level, rec.get("directive") or "", rec.get("text") or "", rec.get("prompt_tokens"),
            rec.get("new_tokens"), rec.get("ttft_s"), rec.get("total_s"), rec.get("finish_reason"), rec.get("energy_j"),
            rec.get("energy_method") or "n/a", rec.get("energy_uncertainty_j"), rec.get("model") or "",
            rec.get("device") or "", rec.get("created_at") or time.time(), rec.get("error") or None,
            rec.get("carbon_total_g"), rec.get("ci_g_per_kwh"), rec.get("zone"),
            *(_label(rec, name) for name in _RECORD_COLS))


def insert_answer(con: sqlite3.Connection, run_id: int, prompt_id: str, level: str, rec: Mapping[str, Any]) -> bool:
    """Store one answer (committed at once, together with the release of its claim); False when it was
    already there (never duplicated). ``rec["error"]`` set makes it an error row."""
    try:
        cur = con.execute(_ANSWER_SQL, _answer_args(run_id, prompt_id, level, rec))
        con.execute("DELETE FROM eval_claims WHERE run_id=? AND prompt_id=? AND item=?", (run_id, prompt_id, level))
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return cur.rowcount == 1


def answer_errors(con: sqlite3.Connection, run_id: int) -> list[dict]:
    """The error rows of a run (answers that could not be generated), with their messages."""
    return [dict(r) for r in con.execute("SELECT prompt_id, level, error FROM eval_answers WHERE run_id=? AND error IS "
                                         "NOT NULL ORDER BY prompt_id, level", (run_id,))]


def clear_errors(con: sqlite3.Connection, run_id: int) -> int:
    """Delete a run's error rows so the next run tries those answers again; returns how many."""
    cur = con.execute("DELETE FROM eval_answers WHERE run_id=? AND error IS NOT NULL", (run_id,))
    con.commit()
    return int(cur.rowcount)


# ---------------------------------------------------------------- claims (no answer generated twice)

_ACTIVE: set[str] = set()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class Worker:
    """Who generates: a unique owner id per run call, its host, process id and the process's start time."""

    owner: str
    host: str
    pid: int
    pid_started: float | None

    @classmethod
    def start(cls) -> "Worker":
        """A new worker of this process, active until :meth:`stop`."""
        try:
            started = psutil.Process().create_time()
        except psutil.Error:
            started = None
        w = cls(uuid.uuid4().hex, socket.gethostname(), os.getpid(), started)
        with _ACTIVE_LOCK:
            _ACTIVE.add(w.owner)
        return w

    def stop(self) -> None:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self.owner)


def claim_alive(owner: str, host: str, pid: int, pid_started: float | None, claimed_at: float) -> bool:
    """Whether a claim's owner may still be working on it.

    Same machine: its process runs (the same process, not a reused pid) and, within this very process,
    the worker is still active. Another machine: until :data:`FOREIGN_CLAIM_TTL_S` has passed."""
    if host != socket.gethostname():
        return time.time() - claimed_at < FOREIGN_CLAIM_TTL_S
    if pid == os.getpid():
        with _ACTIVE_LOCK:
            return owner in _ACTIVE
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if pid_started is not None and abs(proc.create_time() - pid_started) > 1.0:
            return False
    except psutil.Error:
        return False
    return True


def _claim(con: sqlite3.Connection, run_id: int, prompt_id: str, item: str, worker: Worker, done_sql: str,
           done_args: tuple) -> str:
    _begin(con)
    try:
        if con.execute(done_sql, done_args).fetchone():
            con.commit()
            return "done"
        row = con.execute("SELECT owner, host, pid, pid_started, claimed_at FROM eval_claims WHERE run_id=? AND "
                          "prompt_id=? AND item=?", (run_id, prompt_id, item)).fetchone()
        if row and row["owner"] != worker.owner and claim_alive(row["owner"], row["host"], row["pid"],
                                                                 row["pid_started"], row["claimed_at"]):
            con.commit()
            return "busy"
        con.execute("INSERT OR REPLACE INTO eval_claims (run_id, prompt_id, item, owner, host, pid, pid_started,"
                    " claimed_at) VALUES (?,?,?,?,?,?,?,?)",
                    (run_id, prompt_id, item, worker.owner, worker.host, worker.pid, worker.pid_started, time.time()))
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return "taken-over" if row and row["owner"] != worker.owner else "mine"


def claim_answer(con: sqlite3.Connection, run_id: int, prompt_id: str, level: str, worker: Worker) -> str:
    """Claim the answer ``(prompt_id, level)`` atomically: ``mine`` (generate it), ``taken-over`` (generate
    it; its previous owner is gone), ``done`` (already stored) or ``busy`` (another live worker has it)."""
    return _claim(con, run_id, prompt_id, level, worker,
                  "SELECT 1 FROM eval_answers WHERE run_id=? AND prompt_id=? AND level=?", (run_id, prompt_id, level))


def claim_judging(con: sqlite3.Connection, run_id: int, prompt_id: str, judge: str, passes: int, worker: Worker) -> str:
    """Claim judging one prompt with ``judge`` (same answers as :func:`claim_answer`)."""
    return _claim(con, run_id, prompt_id, f"judge:{judge}", worker,
                  "SELECT 1 WHERE (SELECT COUNT(DISTINCT pass_no) FROM eval_judgments WHERE run_id=? AND prompt_id=? "
                  "AND judge=?) >= ?", (run_id, prompt_id, judge, passes))


def release_claim(con: sqlite3.Connection, run_id: int, prompt_id: str, item: str, worker: Worker) -> None:
    con.execute("DELETE FROM eval_claims WHERE run_id=? AND prompt_id=? AND item=? AND owner=?",
                (run_id, prompt_id, item, worker.owner))
    con.commit()


def release_claims(con: sqlite3.Connection, worker: Worker) -> int:
    """Drop every claim of ``worker`` (at the end of its run); returns how many."""
    cur = con.execute("DELETE FROM eval_claims WHERE owner=?", (worker.owner,))
    con.commit()
    return int(cur.rowcount)


def claims_of_others(con: sqlite3.Connection, run_id: int, worker: Worker) -> int:
    """Answers and judgings of this run that other live workers are on now."""
    rows = con.execute("SELECT owner, host, pid, pid_started, claimed_at FROM eval_claims WHERE run_id=? AND owner!=?",
                       (run_id, worker.owner)).fetchall()
    return sum(1 for r in rows if claim_alive(r["owner"], r["host"], r["pid"], r["pid_started"], r["claimed_at"]))


# ---------------------------------------------------------------- pending queue (answers the database would not take)

QUEUE = "eval_answers"


def queue_answer(run_key: str, prompt_id: str, level: str, rec: Mapping[str, Any]) -> str:
    """Keep an answer the database would not take in the pending queue; returns the queue file.
    ``OSError`` when the queue cannot be written either."""
    item = {"run_key": run_key, "prompt_id": prompt_id, "level": level,
            "rec": {**dict(rec), "created_at": rec.get("created_at") or time.time()}}
    return str(store.queue_append(QUEUE, item))


def is_queued(run_key: str, prompt_id: str, level: str) -> bool:
    return any(q.get("run_key") == run_key and q.get("prompt_id") == prompt_id and q.get("level") == level
               for q in store.queue_items(QUEUE))


def queued_answers(run_key: str | None = None) -> int:
    """How many answers wait in the pending queue (of one run, or all)."""
    return sum(1 for q in store.queue_items(QUEUE) if run_key is None or q.get("run_key") == run_key)


def replay_queued_answers(con: sqlite3.Connection) -> int:
    """Add the queued answers whose run exists to the database (each at most once); returns how many
    were placed. Raises ``sqlite3.Error`` when the database still cannot be written (they stay queued)."""
    failure: list[BaseException] = []

    def apply(items: list[dict]) -> list[dict]:
        left = []
        try:
            _begin(con)
            for q in items:
                run_id = run_id_for_key(con, q.get("run_key", ""))
                if run_id is None:
                    left.append(q)
                    continue
                con.execute(_ANSWER_SQL, _answer_args(run_id, q["prompt_id"], q["level"], q.get("rec") or {}))
                con.execute("DELETE FROM eval_claims WHERE run_id=? AND prompt_id=? AND item=?",
                            (run_id, q["prompt_id"], q["level"]))
            con.commit()
        except sqlite3.Error as exc:
            con.rollback()
            failure.append(exc)
            return items
        return left

    placed = store.queue_drain(QUEUE, apply)
    if failure:
        raise failure[0]
    return placed


def stored_judgments(con: sqlite3.Connection, run_id: int, judge: str | None = None) -> set[tuple[str, str, int]]:
    """``(prompt_id, judge, pass_no)`` of verdicts already stored."""
    q = "SELECT prompt_id, judge, pass_no FROM eval_judgments WHERE run_id=?"
    args: tuple = (run_id,)
    if judge:
        q += " AND judge=?"
        args += (judge,)
    return {(r[0], r[1], int(r[2])) for r in con.execute(q, args)}


def insert_verdict(con: sqlite3.Connection, run_id: int, prompt_id: str, v: Verdict, visitor: str = "",
                   merged: bool = True) -> bool:
    """Store one verdict (committed); False when that judge/pass already judged this prompt.

    ``visitor``/``merged``: who gave a person's verdict, and whether it counts in the shared tables yet
    (class mode keeps a visitor's votes theirs until the operator merges them)."""
    cur = con.execute(
        "INSERT OR IGNORE INTO eval_judgments (run_id, prompt_id, judge, pass_no, winner, valid, shown_order, raw,"
        " reason, details, seconds, energy_j, energy_method, visitor, merged, created_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (run_id, prompt_id, v.judge, v.pass_no, v.winner, 1 if v.valid else 0, json.dumps(v.order), v.raw or "",
         v.reason or "", json.dumps(v.details), v.seconds, v.energy_j, v.energy_method or "n/a", visitor or "",
         1 if merged else 0, time.time()),
    )
    con.commit()
    return cur.rowcount == 1


def merge_votes(con: sqlite3.Connection, visitor: str | None = None) -> int:
    """Mark people's votes kept per visitor (class mode, ``merged = 0``) as merged into the shared tables —
    every visitor's, or one ``visitor``'s; returns how many were merged."""
    q = "UPDATE eval_judgments SET merged = 1 WHERE merged = 0"
    args: tuple = ()
    if visitor:
        q += " AND visitor = ?"
        args = (visitor,)
    n = con.execute(q, args).rowcount
    con.commit()
    return int(n)


def update_flip_rates(con: sqlite3.Connection, run_id: int, judge: str | None = None) -> dict[tuple[str, str], tuple[int, int]]:
    """Recount and store, per judge and task of a run, the prompts with two valid passes (``pairs``) and
    those whose two passes picked different winners (``flips``); returns ``{(judge, task): (flips, pairs)}``."""
    q = ("SELECT j1.judge, p.category, j1.winner, j2.winner FROM eval_judgments j1 JOIN eval_judgments j2 "
         "ON j1.run_id = j2.run_id AND j1.prompt_id = j2.prompt_id AND j1.judge = j2.judge AND j2.pass_no = 2 "
         "JOIN eval_prompts p ON p.run_id = j1.run_id AND p.prompt_id = j1.prompt_id "
         "WHERE j1.run_id = ? AND j1.pass_no = 1 AND j1.valid = 1 AND j2.valid = 1")
    args: tuple = (run_id,)
    if judge:
        q += " AND j1.judge = ?"
        args += (judge,)
    out: dict[tuple[str, str], list[int]] = {}
    for j, task, w1, w2 in con.execute(q, args):
        c = out.setdefault((str(j), str(task)), [0, 0])
        c[0] += int(w1 != w2)
        c[1] += 1
    now = time.time()
    for (j, task), (flips, pairs) in out.items():
        con.execute("INSERT INTO eval_flip_rates (run_id, judge, task, pairs, flips, updated_at) VALUES (?,?,?,?,?,?) "
                    "ON CONFLICT(run_id, judge, task) DO UPDATE SET pairs = excluded.pairs, flips = excluded.flips, "
                    "updated_at = excluded.updated_at", (run_id, j, task, pairs, flips, now))
    con.commit()
    return {k: (v[0], v[1]) for k, v in out.items()}


def flip_rates(con: sqlite3.Connection, run_ids: Iterable[int] | None = None) -> list[dict]:
    """Stored flip rates: ``run_id, judge, task, pairs, flips, rate`` (rate = flips / pairs, None when 0 pairs)."""
    q = "SELECT run_id, judge, task, pairs, flips FROM eval_flip_rates"
    args: list = []
    if run_ids is not None:
        ids = list(run_ids)
        if not ids:
            return []
        q += f" WHERE run_id IN ({','.join('?' * len(ids))})"
        args = ids
    return [{"run_id": r[0], "judge": r[1], "task": r[2], "pairs": r[3], "flips": r[4],
             "rate": (r[4] / r[3]) if r[3] else None} for r in con.execute(q + " ORDER BY run_id, judge, task", args)]


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
    for table in ("eval_claims", "eval_flip_rates", "eval_judgments", "eval_answers", "eval_prompts"):
        con.execute(f"DELETE FROM {table} WHERE run_id=?", (run_id,))
    con.execute("DELETE FROM eval_runs WHERE id=?", (run_id,))
    con.commit()
    return int(n)
