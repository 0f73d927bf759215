"""Evaluation runs under concurrency and faults (issue 10): 0 lost, 0 duplicated, no answer generated twice.

* two processes on the same run share it (claims), also through the real ``evaluate`` command;
* a process killed mid-answer: its claim is taken over by the next run, nothing else is redone;
* a lock taken mid-run is waited for; a lock that outlasts the wait sends the answer in flight to the
  pending queue and the next run adds it instead of generating it again;
* read-only and corrupt databases mid-run: same, in process;
* a database written by an older Sprout is migrated in place and its run resumes.

Each generated answer is logged by the process that generated it (one line per call), so "generated
twice" is counted directly, not inferred.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from sprout_core import store
from sprout_core.errors import QueuedError
from sprout_core.evaluate import db
from sprout_core.evaluate.judges import parse_judge
from sprout_core.evaluate.prompts import PromptItem
from sprout_core.evaluate.runner import run_evaluation

ROOT = Path(__file__).resolve().parent.parent
N_PROMPTS, LEVELS = 8, ("L0", "L1")
TOTAL = N_PROMPTS * len(LEVELS)

WORKER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from sprout_core.errors import SproutError
    from sprout_core.evaluate import db
    from sprout_core.evaluate.judges import parse_judge
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.runner import run_evaluation
    log = open(sys.argv[1], "a", buffering=1)
    delay = float(sys.argv[2])
    prompts = [PromptItem(f"p{{i}}", f"Name colour {{i}}", "words", f"a shade called colour {{i}}") for i in range({n})]
    def answer(p, lv):
        log.write(json.dumps(["answer", p, lv, os.getpid()]) + "\\n")
        time.sleep(delay)
        return {{"text": f"{{lv}} {{p}}", "new_tokens": 2, "total_s": delay, "energy_j": 0.1,
                "energy_method": "estimated:cpu-tdp"}}
    def similarity(texts, ref):
        log.write(json.dumps(["judge", ref, os.getpid()]) + "\\n")
        return [0.5] * len(texts)
    cfg = db.RunConfig(prompt_set="concurrency", n={n}, seed=0, levels={levels!r}, judge="reference", model="slow")
    try:
        st = run_evaluation(cfg, prompts, answer, parse_judge("reference"), similarity=similarity, poll_s=0.2)
    except SproutError as exc:
        print("error:", exc, file=sys.stderr, flush=True)
        sys.exit(2)
    print(json.dumps({{"done": st.done, "generated": st.generated, "skipped": st.skipped, "judged": st.judged,
                      "replayed": st.replayed, "finished": st.finished}}), flush=True)
""")


@pytest.fixture
def worker(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(root=str(ROOT), n=N_PROMPTS, levels=LEVELS))
    log = tmp_path / "calls.jsonl"

    def start(delay: float = 0.15, **env) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(script), str(log), str(delay)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ, **env))

    def calls(kind: str = "answer") -> list:
        if not log.exists():
            return []
        return [json.loads(x) for x in log.read_text().splitlines() if x.startswith(f'["{kind}"')]

    start.calls = calls
    return start


def stored_answers() -> Counter:
    with closing(store.connect()) as c:
        return Counter((r[0], r[1]) for r in c.execute("SELECT prompt_id, level FROM eval_answers"))


def stored_verdicts() -> Counter:
    with closing(store.connect()) as c:
        return Counter(r[0] for r in c.execute("SELECT prompt_id FROM eval_judgments"))


def wait_for_calls(worker, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while len(worker.calls()) < n:
        assert time.time() < deadline, f"only {len(worker.calls())} answers started"
        time.sleep(0.05)


def test_two_processes_share_one_run(worker):
    a, b = worker(delay=0.25), worker(delay=0.25)
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    calls = Counter((c[1], c[2]) for c in worker.calls())
    assert len(calls) == TOTAL and max(calls.values()) == 1, "an answer was generated twice"
    print("two processes:", [o["generated"] for o in outs], "answers generated of", TOTAL)
    assert sum(o["generated"] for o in outs) == TOTAL
    assert min(o["generated"] for o in outs) > 0, "the work was not shared"
    assert all(o["done"] == TOTAL and o["finished"] for o in outs)
    assert len(stored_answers()) == TOTAL and max(stored_answers().values()) == 1
    judged = Counter(c[1] for c in worker.calls("judge"))
    assert len(judged) == N_PROMPTS and max(judged.values()) == 1, "a prompt was judged twice"
    assert len(stored_verdicts()) == N_PROMPTS and max(stored_verdicts().values()) == 1
    with closing(store.connect()) as c:
        assert c.execute("SELECT COUNT(*) FROM eval_claims").fetchone()[0] == 0  # nothing left claimed


def test_killed_process_is_taken_over_by_two_others(worker):
    a = worker(delay=0.3)
    wait_for_calls(worker, 5)
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    stored_before = sum(stored_answers().values())
    in_flight = len(worker.calls()) - stored_before
    assert in_flight == 1  # the answer being generated when it died
    b, c = worker(delay=0.1), worker(delay=0.1)
    outs = [json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1]) for p in (b, c)]
    assert b.returncode == 0 and c.returncode == 0
    assert sum(o["generated"] for o in outs) == TOTAL - stored_before  # the dead claim was taken over, once
    assert len(stored_answers()) == TOTAL and max(stored_answers().values()) == 1
    calls = Counter((x[1], x[2]) for x in worker.calls())
    assert sum(calls.values()) == TOTAL + in_flight  # only the answer killed in flight was generated again


def test_lock_taken_mid_run_is_waited_for(worker):
    a = worker(delay=0.15)
    wait_for_calls(worker, 4)
    blocker = sqlite3.connect(str(store.default_path()), timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")
    time.sleep(3.0)  # the worker's next write waits (busy timeout, then its own retries)
    blocker.rollback()
    blocker.close()
    out, err = a.communicate(timeout=120)
    assert a.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["finished"] and res["done"] == TOTAL and res["generated"] == TOTAL
    assert len(worker.calls()) == TOTAL  # nothing generated twice
    assert len(stored_answers()) == TOTAL and max(stored_answers().values()) == 1


def test_lock_that_outlasts_the_wait_queues_the_answer_in_flight(worker):
    a = worker(delay=0.3, SPROUT_DB_LOCK_WAIT_S="1")
    wait_for_calls(worker, 3)
    blocker = sqlite3.connect(str(store.default_path()), timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        out, err = a.communicate(timeout=120)
    finally:
        blocker.rollback()
        blocker.close()
    assert a.returncode == 2, (out, err)
    assert "Traceback" not in err
    assert "locked" in err and "pending queue" in err and "not generated again" in err
    first = len(worker.calls())
    stored = sum(stored_answers().values())
    assert db.queued_answers() == 1 and stored == first - 1  # the answer in flight is queued, not lost
    b = worker(delay=0.05)
    out, err = b.communicate(timeout=120)
    assert b.returncode == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["replayed"] == 1 and res["generated"] == TOTAL - first
    assert len(worker.calls()) == TOTAL  # no answer generated twice
    assert len(stored_answers()) == TOTAL and max(stored_answers().values()) == 1 and db.queued_answers() == 0


def test_two_evaluate_commands_at_once(tmp_path, tiny_llama2_dir):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"hello number {i}", "category": "c"}) + "\n"
                               for i in range(6)))
    cmd = [sys.executable, "-m", "sprout_core", "evaluate", "--model", str(tiny_llama2_dir), "--prompts", str(prompts),
           "--n", "6", "--levels", "L0,L1,L2", "--judge", "none", "--max-new-tokens", "3", "--json"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    summaries = [json.loads(out) for out, _ in outs]
    print("two evaluate commands:", [s["generated_answers"] for s in summaries], "answers generated of 18")
    assert sum(s["generated_answers"] for s in summaries) == 18  # every answer generated exactly once, in total
    assert all(s["answers"] == 18 for s in summaries)
    assert len(stored_answers()) == 18 and max(stored_answers().values()) == 1


PROMPTS = [PromptItem(f"r{i}", f"prompt {i}", "c", None) for i in range(3)]


def _counting(calls):
    def answer(p, lv):
        calls.append((p, lv))
        return {"text": f"{lv}:{p}", "new_tokens": 1}
    return answer


@pytest.mark.parametrize("failure,words", [
    ("attempt to write a readonly database", "cannot be opened for writing"),
    ("database disk image is malformed", "not a readable SQLite database"),
    ("database is locked", "locked by another program"),
])
def test_unwritable_database_mid_run_keeps_the_answer_in_flight(monkeypatch, failure, words):
    calls: list = []
    real = db.insert_answer
    state = {"n": 0}

    def flaky(con, *a, **kw):
        state["n"] += 1
        if state["n"] >= 3:
            raise sqlite3.OperationalError(failure)
        return real(con, *a, **kw)

    monkeypatch.setattr(db, "insert_answer", flaky)
    cfg = db.RunConfig(prompt_set="faults", n=3, seed=0, levels=("L0", "L1"), judge="none", model="m")
    with pytest.raises(QueuedError) as info:
        run_evaluation(cfg, PROMPTS, _counting(calls), None, lock_wait_s=0.3)
    assert words in str(info.value) and "pending queue" in str(info.value)
    assert len(calls) == 3 and sum(stored_answers().values()) == 2 and db.queued_answers() == 1
    monkeypatch.setattr(db, "insert_answer", real)
    st = run_evaluation(cfg, PROMPTS, _counting(calls), None)
    assert st.finished and st.replayed == 1 and st.generated == 3
    assert len(calls) == 6 and len(set(calls)) == 6  # no answer generated twice
    assert len(stored_answers()) == 6 and db.queued_answers() == 0


def test_queue_unwritable_says_exactly_what_was_lost(monkeypatch):
    calls: list = []
    monkeypatch.setattr(db, "insert_answer", lambda *a, **k: (_ for _ in ()).throw(sqlite3.OperationalError("disk I/O error")))
    monkeypatch.setattr(store, "queue_append", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    cfg = db.RunConfig(prompt_set="lost", n=3, seed=0, levels=("L0",), judge="none", model="m")
    with pytest.raises(store.StoreError) as info:
        run_evaluation(cfg, PROMPTS, _counting(calls), None, lock_wait_s=0)
    msg = str(info.value)
    assert not isinstance(info.value, QueuedError)
    assert "prompt r0 at level L0 could NOT be saved" in msg and "generated again on the next run" in msg


def test_over_long_prompt_is_an_error_row_and_the_run_finishes(tiny_lm):
    from sprout_core.evaluate.runner import make_answer_fn

    prompts = [PromptItem("ok1", "hello world", "c", None), PromptItem("long", "the quick brown fox " * 120, "c", None),
               PromptItem("ok2", "capital of france", "c", None)]
    cfg = db.RunConfig(prompt_set="long", n=3, seed=0, levels=("L0", "L1"), judge="reference", model=tiny_lm.info.name,
                       directive_set="paper", max_new_tokens=2)
    fn = make_answer_fn(tiny_lm, "paper", 2)
    st = run_evaluation(cfg, prompts, fn, parse_judge("reference"), similarity=lambda t, r: [0.0] * len(t))
    assert st.finished and st.done == 6 and st.failed == 2 and st.unjudgeable == 1 and st.judged == 2
    with closing(store.connect()) as c:
        errs = db.answer_errors(c, st.run_id)
    assert [(e["prompt_id"], e["level"]) for e in errs] == [("long", "L0"), ("long", "L1")]
    assert "reads at most 256 tokens" in errs[0]["error"]
    again = run_evaluation(cfg, prompts, fn, parse_judge("reference"), similarity=lambda t, r: [0.0] * len(t))
    assert again.finished and again.generated == 0  # resumes to the end instead of failing again
    with closing(store.connect()) as c:
        assert db.clear_errors(c, st.run_id) == 2
    retry = run_evaluation(cfg, prompts, fn, parse_judge("reference"), similarity=lambda t, r: [0.0] * len(t))
    assert retry.generated == 2 and retry.failed == 2


def test_edited_prompt_file_is_a_new_run(tmp_path):
    from sprout_core.evaluate.runner import sample_prompts

    f = tmp_path / "mine.jsonl"
    f.write_text('{"id": "a", "prompt": "What is 2+2?", "reference": "4"}\n')
    cfg = db.RunConfig(prompt_set=str(f), n=1, seed=0, levels=("L0",), judge="none", model="m")
    calls: list = []
    one = run_evaluation(cfg, sample_prompts(str(f), 1, 0), _counting(calls), None)
    f.write_text('{"id": "a", "prompt": "What is 3+3?", "reference": "6"}\n')  # same path, same id, new content
    two = run_evaluation(cfg, sample_prompts(str(f), 1, 0), _counting(calls), None)
    assert two.run_id != one.run_id and calls == [("What is 2+2?", "L0"), ("What is 3+3?", "L0")]
    three = run_evaluation(cfg, sample_prompts(str(f), 1, 0), _counting(calls), None)
    assert three.run_id == two.run_id and three.generated == 0


def test_uploads_are_keyed_on_content(tmp_path):
    from sprout_core.evaluate.prompts import PromptItem as P
    from sprout_core.evaluate.prompts import save_upload

    a = save_upload("../../evil name.jsonl", [P("1", "first", "c", None)])
    b = save_upload("../../evil name.jsonl", [P("1", "changed", "c", None)])
    assert a != b and a.exists() and b.exists() and a.read_text() != b.read_text()
    assert a.parent.name == "uploads" and a.name.startswith("evil_name-")
    assert save_upload("../../evil name.jsonl", [P("1", "first", "c", None)]) == a


OLD_SCHEMA = """
CREATE TABLE eval_runs (id INTEGER PRIMARY KEY AUTOINCREMENT, run_key TEXT NOT NULL UNIQUE, label TEXT NOT NULL,
  prompt_set TEXT NOT NULL, n INTEGER NOT NULL, seed INTEGER NOT NULL, sampling TEXT NOT NULL DEFAULT 'stratified',
  levels TEXT NOT NULL, judge TEXT NOT NULL, model TEXT NOT NULL, directive_set TEXT NOT NULL DEFAULT '',
  params TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, finished_at REAL);
CREATE TABLE eval_prompts (run_id INTEGER NOT NULL, position INTEGER NOT NULL, prompt_id TEXT NOT NULL,
  prompt TEXT NOT NULL, category TEXT NOT NULL, reference TEXT, UNIQUE (run_id, prompt_id));
CREATE TABLE eval_answers (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, prompt_id TEXT NOT NULL,
  level TEXT NOT NULL, directive TEXT NOT NULL DEFAULT '', text TEXT NOT NULL, prompt_tokens INTEGER, new_tokens INTEGER,
  ttft_s REAL, total_s REAL, finish_reason TEXT, energy_j REAL, energy_method TEXT NOT NULL DEFAULT 'n/a',
  energy_uncertainty_j REAL, model TEXT NOT NULL DEFAULT '', device TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
  UNIQUE (run_id, prompt_id, level));
CREATE TABLE eval_judgments (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL, prompt_id TEXT NOT NULL,
  judge TEXT NOT NULL, pass_no INTEGER NOT NULL DEFAULT 1, winner TEXT, valid INTEGER NOT NULL, shown_order TEXT NOT NULL,
  raw TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', details TEXT NOT NULL DEFAULT '{}', seconds REAL,
  created_at REAL NOT NULL, UNIQUE (run_id, prompt_id, judge, pass_no));
CREATE TABLE requests (id INTEGER PRIMARY KEY AUTOINCREMENT, ts_utc TEXT NOT NULL, run_id TEXT, origin TEXT, model TEXT,
  device TEXT, level TEXT, directive TEXT, task TEXT, prompt TEXT, answer TEXT, prompt_tokens INTEGER, new_tokens INTEGER,
  ttft_s REAL, total_s REAL, finish_reason TEXT, error TEXT, energy_j REAL, energy_method TEXT NOT NULL DEFAULT 'n/a',
  energy_source TEXT, energy_uncertainty_j REAL, energy_flags TEXT, power_w_mean REAL, zone TEXT, ci_g_per_kwh REAL,
  ci_label TEXT, pue REAL, carbon_operational_g REAL, carbon_embodied_g REAL, carbon_total_g REAL, embodied_model TEXT);
CREATE TABLE schema_versions (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
INSERT INTO schema_versions VALUES ('requests', 1);
"""


def test_database_of_an_older_sprout_is_migrated_and_its_run_resumes():
    cfg = db.RunConfig(prompt_set="old", n=3, seed=0, levels=("L0", "L1"), judge="none", model="m")
    path = store.default_path()
    con = sqlite3.connect(str(path))
    con.executescript(OLD_SCHEMA)
    con.execute("INSERT INTO eval_runs (run_key, label, prompt_set, n, seed, levels, judge, model, created_at) "
                "VALUES (?, 'old run', 'old', 3, 0, 'L0,L1', 'none', 'm', 0)", (cfg.key(),))
    for i, p in enumerate(PROMPTS):
        con.execute("INSERT INTO eval_prompts VALUES (1, ?, ?, ?, ?, ?)", (i, p.id, p.prompt, p.category, p.reference))
    con.execute("INSERT INTO eval_answers (run_id, prompt_id, level, text, created_at) VALUES (1, 'r0', 'L0', 'old', 0)")
    con.execute("INSERT INTO requests (ts_utc, model, prompt) VALUES ('2025-01-01T00:00:00', 'old', 'kept')")
    con.commit()
    con.close()
    calls: list = []
    st = run_evaluation(cfg, PROMPTS, _counting(calls), None)
    assert st.run_id == 1 and st.skipped == 1 and st.generated == 5 and ("prompt 0", "L0") not in calls
    with closing(store.connect()) as c:
        assert store.schema_version(c, "requests") == len(store.REQUESTS_MIGRATIONS)
        assert store.schema_version(c, "evaluation") == len(store.EVALUATION_MIGRATIONS)
        assert c.execute("SELECT run_key FROM eval_runs").fetchone()[0] == cfg.run_key(PROMPTS)
        assert [r[0] for r in c.execute("SELECT prompt FROM requests")] == ["kept"]


def test_two_app_sessions_in_one_process_share_a_run():
    """Two Evaluations sessions of one server start the same run: their jobs (threads) share it."""
    import threading

    from sprout_core.evaluate.runner import EvaluationJob

    calls: list = []
    lock = threading.Lock()

    def answer(p, lv):
        with lock:
            calls.append((p, lv))
        time.sleep(0.05)
        return {"text": f"{lv}:{p}", "new_tokens": 1}

    prompts = [PromptItem(f"t{i}", f"thread prompt {i}", "c", None) for i in range(6)]
    cfg = db.RunConfig(prompt_set="threads", n=6, seed=0, levels=("L0", "L1"), judge="none", model="m")
    jobs = [EvaluationJob(cfg, prompts, lambda: (answer, None), None).start() for _ in range(2)]
    for j in jobs:
        j.thread.join(60)
    assert all(j.progress.finished and j.progress.error is None for j in jobs), [j.progress for j in jobs]
    assert len(calls) == 12 and len(set(calls)) == 12  # every answer generated once
    assert sum(j.progress.generated for j in jobs) == 12 and min(j.progress.generated for j in jobs) > 0
    assert len(stored_answers()) == 12
