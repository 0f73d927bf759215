"""Runs: stored answers and verdicts, resume without duplicates (also after a kill), human votes, export."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sprout_core import store
from sprout_core.evaluate import db
from sprout_core.evaluate.judges import parse_judge
from sprout_core.evaluate.prompts import PromptItem
from sprout_core.evaluate.results import export_run, own_tables, q_handoff, run_summary, shipped_tables
from sprout_core.evaluate.runner import EvaluationJob, run_evaluation

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = [PromptItem("m1", "What is 2+3?", "math", "5"), PromptItem("m2", "What is 10-4?", "math", "6"),
           PromptItem("f1", "Capital of France?", "factual", "Paris")]
LEVELS = ("L0", "L1", "L2")


def fake_answer(calls):
    texts = {"L0": "Let me explain at length. The result is 5 and also 6, finally {r}.", "L1": "It is {r}.", "L2": "{w}"}
    refs = {p.prompt: p.reference for p in PROMPTS}

    def answer(prompt, level):
        calls.append((prompt, level))
        t = texts[level].format(r=refs[prompt], w="no idea")
        return {"text": t, "prompt_tokens": 10, "new_tokens": len(t.split()), "ttft_s": 0.01, "total_s": 0.1,
                "finish_reason": "eos", "directive": level, "energy_j": 1.5, "energy_method": "estimated:cpu-tdp",
                "model": "fake", "device": "cpu"}
    return answer


def cfg(**kw):
    base = dict(prompt_set="test", n=3, seed=0, levels=LEVELS, judge="reference", model="fake")
    base.update(kw)
    return db.RunConfig(**base)


def sim(texts, ref):
    return [1.0 if ref.lower() in t.lower() else 0.0 for t in texts]


def test_run_stores_judges_and_resumes_without_duplicates():
    calls = []
    judge = parse_judge("reference")
    st = run_evaluation(cfg(), PROMPTS, fake_answer(calls), judge, similarity=sim)
    assert st.finished and st.done == 9 and st.judged == 3 and len(calls) == 9
    again = run_evaluation(cfg(), PROMPTS, fake_answer(calls), judge, similarity=sim)
    assert again.run_id == st.run_id and again.skipped == 9 and len(calls) == 9
    con = db.connect()
    n_ans = con.execute("SELECT COUNT(*) FROM eval_answers").fetchone()[0]
    n_v = con.execute("SELECT COUNT(*) FROM eval_judgments").fetchone()[0]
    con.close()
    assert (n_ans, n_v) == (9, 3)
    s = run_summary(st.run_id)
    # L1 is right and shortest among the right ones on every prompt
    assert s["win_shares"]["reference"]["share"] == {"L0": 0.0, "L1": 1.0, "L2": 0.0}
    assert s["levels"]["L0"]["energy_j_mean"] == 1.5 and s["levels"]["L0"]["energy_method"] == "estimated:cpu-tdp"


def test_cancel_stops_after_answer_in_flight_and_energy_na_kept():
    calls = []
    stop = threading.Event()
    base = fake_answer(calls)

    def answer(p, lv):
        rec = base(p, lv)
        rec["energy_j"], rec["energy_method"] = None, "n/a"
        if len(calls) == 4:
            stop.set()
        return rec

    st = run_evaluation(cfg(model="fake2"), PROMPTS, answer, None, cancel=stop)
    assert st.cancelled and st.done == 4
    t = own_tables([st.run_id])
    assert len(t.answers) == 4 and t.answers["energy_j"].isna().all()
    assert run_summary(st.run_id)["levels"]["L0"]["energy_j_mean"] is None


def test_second_judge_adds_verdicts_to_same_answers():
    calls = []
    st = run_evaluation(cfg(), PROMPTS, fake_answer(calls), parse_judge("reference"), similarity=sim)
    from sprout_core.evaluate.judges import JudgeSpec
    from sprout_core.evaluate.runner import judge_existing_run

    spec = JudgeSpec("fake-llm", "llm", second_pass=True)
    added = judge_existing_run(st.run_id, spec, judge_chat=lambda msgs: "Output (1)", seed=1)
    assert added == 6 and len(calls) == 9
    t = own_tables([st.run_id])
    assert set(t.verdicts["judge"]) == {"reference", "fake-llm"}
    assert judge_existing_run(st.run_id, spec, judge_chat=lambda m: "Output (1)") == 0


def test_background_job_reports_progress_and_errors():
    calls = []
    job = EvaluationJob(cfg(model="bg"), PROMPTS, lambda: (fake_answer(calls), None), parse_judge("reference")).start()
    job.thread.join(180)  # the reference judge loads MiniLM: slow on a loaded machine
    assert not job.running and job.progress.finished and job.progress.done == 9 and job.progress.error is None

    def bad_setup():
        raise RuntimeError("model folder has no config.json")

    job = EvaluationJob(cfg(model="bad"), PROMPTS, bad_setup, None).start()
    job.thread.join(30)
    assert "config.json" in job.progress.error and not job.progress.finished


def test_human_vote_and_handoff():
    con = db.connect()
    run_id, pid = db.record_human_vote(con, "Say hi", {"L0": "Hello there, friend!", "L1": "Hi!"}, "L1", model="fake")
    db.record_human_vote(con, "Say hi", {"L0": "Hello there, friend!", "L1": "Hi!"}, "L0", model="fake")  # same comparison
    with pytest.raises(ValueError):
        db.record_human_vote(con, "x", {"L0": "a"}, "L5")
    con.close()
    t = own_tables([run_id])
    assert list(t.verdicts["winner"]) == ["L1"] and len(t.answers) == 2
    h = q_handoff(t, "human", ["L0", "L1"], "votes")
    assert h.q == {"L0": 0.0, "L1": 1.0} and h.n == 1 and h.model == "fake"
    assert h.counts == {"playground": {"L0": 0, "L1": 1}} and h.per_task is None  # one task: pooled only


def test_export_round_trip(tmp_path):
    st = run_evaluation(cfg(), PROMPTS, fake_answer([]), parse_judge("reference"), similarity=sim)
    paths = export_run(st.run_id, tmp_path / "ev.jsonl", command="python -m sprout_core evaluate ...")
    rows = [json.loads(x) for x in paths[0].read_text().splitlines()]
    assert len(rows) == 3 and set(rows[0]["answers"]) == set(LEVELS) and rows[0]["verdicts"][0]["winner"] == "L1"
    meta = json.loads(paths[1].read_text())
    assert meta["command"].startswith("python -m sprout_core evaluate") and meta["model"] == "fake"
    t = shipped_tables([paths[0]])
    assert len(t.prompts) == 3 and len(t.answers) == 9 and set(t.verdicts["winner"]) == {"L1"}


KILL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from sprout_core.evaluate import db
    from sprout_core.evaluate.prompts import PromptItem
    from sprout_core.evaluate.runner import run_evaluation
    prompts = [PromptItem(f"p{{i}}", f"prompt {{i}}", "c", None) for i in range(8)]
    def answer(p, lv):
        print("start", p, lv, flush=True)
        time.sleep(0.25)
        return {{"text": p + " " + lv, "new_tokens": 2, "total_s": 0.25, "energy_method": "n/a"}}
    cfg = db.RunConfig(prompt_set="kill", n=8, seed=0, levels=("L0", "L1"), judge="none", model="slow")
    st = run_evaluation(cfg, prompts, answer, None)
    print("done", st.done, st.skipped, flush=True)
""")


def test_killed_subprocess_resumes_with_nothing_lost_or_duplicated(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT)))
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    started = 0
    for line in proc.stdout:
        started += line.startswith("start")
        if started == 6:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    con = db.connect()
    stored = con.execute("SELECT COUNT(*) FROM eval_answers").fetchone()[0]
    con.close()
    assert 4 <= stored <= 5  # the sixth answer was in flight: at most it is lost
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"done 16 {stored}" in out.stdout
    assert out.stdout.count("start") == 16 - stored
    con = db.connect()
    rows = con.execute("SELECT prompt_id, level, COUNT(*) FROM eval_answers GROUP BY prompt_id, level").fetchall()
    con.close()
    assert len(rows) == 16 and all(r[2] == 1 for r in rows)


def test_judge_chat_uses_the_run_model_only_when_it_is_the_judge(monkeypatch):
    from types import SimpleNamespace

    from sprout_core import models
    from sprout_core.evaluate.runner import make_judge_chat

    loaded = []
    monkeypatch.setattr(models, "load_model", lambda spec: loaded.append(spec) or SimpleNamespace(info=SimpleNamespace(kind="x", path=spec)))
    emb = SimpleNamespace(info=SimpleNamespace(kind="embedded", path="/cache/smol"))
    llama = SimpleNamespace(info=SimpleNamespace(kind="local", path="/models/llama"))
    assert make_judge_chat(parse_judge("llm"), emb).lm is emb and loaded == []
    assert make_judge_chat(parse_judge("llm"), llama).lm is not llama and loaded == ["embedded"]
    assert make_judge_chat(parse_judge("llm:/models/llama"), llama).lm is llama
    assert make_judge_chat(parse_judge("reference"), emb) is None


def test_delete_run_removes_everything_of_that_run_only():
    a = run_evaluation(cfg(model="a"), PROMPTS, fake_answer([]), parse_judge("reference"), similarity=sim)
    b = run_evaluation(cfg(model="b"), PROMPTS[:1], fake_answer([]), parse_judge("reference"), similarity=sim)
    con = db.connect()
    assert db.delete_run(con, a.run_id) == 9
    left = {r["id"] for r in db.list_runs(con)}
    counts = [con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("eval_prompts", "eval_answers", "eval_judgments")]
    con.close()
    assert left == {b.run_id} and counts == [1, 3, 1]


def test_answer_fn_takes_a_set_with_a_users_own_level(tiny_lm):
    from sprout_core.directives import load_directive_set
    from sprout_core.evaluate.db import RunConfig
    from sprout_core.evaluate.runner import make_answer_fn

    dset = load_directive_set("paper").with_level("L3", "Answer in ten words.")
    fn = make_answer_fn(tiny_lm, dset, max_new_tokens=3)
    out = fn("hello world", "L3")
    assert out["directive"] == "Answer in ten words." and out["new_tokens"] == 3
    base = dict(prompt_set="starter", n=3, seed=0, levels=("L0", "L3"), judge="reference", model="m", directive_set="paper")
    a = RunConfig(**base, directive_texts=tuple(d.text for d in dset.levels))
    b = RunConfig(**base, directive_texts=tuple(d.text for d in dset.with_level("L3", "Answer in five words.").levels))
    plain = RunConfig(**base)
    same_as_set = RunConfig(**base, directive_texts=tuple(d.text for d in load_directive_set("paper").levels))
    assert a.key() != b.key()  # an edited custom level starts a new run
    assert plain.key() == same_as_set.key()  # the CLI and the page agree on an unedited set


def test_answer_fn_goes_through_metered_and_prices_carbon(tiny_lm):
    """The runner's answers are the metered record (energy with its method, and carbon), stored with their carbon."""
    from sprout_core.carbon import override_intensity
    from sprout_core.energy import detect_meter
    from sprout_core.evaluate.runner import make_answer_fn
    from sprout_core.metered import CarbonSettings

    meter = detect_meter("cpu", powercap_root="/nonexistent", per_core_w=10.0)
    fn = make_answer_fn(tiny_lm, "paper", max_new_tokens=3, meter=meter, settings=CarbonSettings(override_intensity(500.0)))
    rec = fn("hello world", "L1")
    assert rec["energy_method"] == "estimated:cpu-tdp" and rec["energy_j"] > 0
    assert rec["ci_g_per_kwh"] == 500 and rec["carbon_total_g"] > rec["energy_j"] / 3.6e6 * 500 * 0.999
    con = db.connect()
    run_id = db.get_or_create_run(con, db.RunConfig("starter", 1, 0, ("L1",), "none", "m"), [])
    assert db.insert_answer(con, run_id, "p1", "L1", rec)
    row = db.stored_answers(con, run_id)[("p1", "L1")]
    con.close()
    assert row["carbon_total_g"] == pytest.approx(rec["carbon_total_g"]) and row["ci_g_per_kwh"] == 500
    assert store.query_requests().empty  # evaluation answers stay out of the History


def test_evaluation_schema_4_migrates_an_old_database_in_place(tmp_path):
    import sqlite3

    from sprout_core import store

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    store.apply_migrations(old, "evaluation", store.EVALUATION_MIGRATIONS[:3])
    old.execute("INSERT INTO eval_runs (run_key, label, prompt_set, n, seed, levels, judge, model, created_at) "
                "VALUES ('k', 'l', 's', 1, 0, 'L0,L1', 'llm', 'm', 0)")
    old.execute("INSERT INTO eval_judgments (run_id, prompt_id, judge, pass_no, winner, valid, shown_order, created_at) "
                "VALUES (1, 'p', 'llm', 1, 'L0', 1, '[\"L0\",\"L1\"]', 0)")
    old.commit()
    old.close()
    con = store.connect(path)
    try:
        assert store.schema_version(con, "evaluation") == len(store.EVALUATION_MIGRATIONS) >= 4
        con.row_factory = sqlite3.Row
        row = dict(con.execute("SELECT * FROM eval_judgments").fetchone())
        assert row["winner"] == "L0" and row["energy_j"] is None and row["energy_method"] == "n/a"
        assert row["visitor"] == "" and row["merged"] == 1
        assert db.flip_rates(con) == []
    finally:
        con.close()
