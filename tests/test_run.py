"""The run loop below the widgets (21.7) and the fair queue by run (19.4), with a fake in-process model."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from sprout_core import store
from sprout_core.carbon import override_intensity
from sprout_core.directives import Directive
from sprout_core.energy.base import NullMeter
from sprout_core.generation import GenerationParams, GenerationQueue, GenerationResult, StreamChunk
from sprout_core.metered import CarbonSettings
from sprout_core.run import ANSWER, CHUNK, DONE, RUNNING, START, WAITING, Run, execute
from sprout_core.views.playground import waiting_line

SETTINGS = CarbonSettings(override_intensity(300.0))
LEVELS = [Directive("L0", ""), Directive("L1", "Answer briefly."), Directive("L2", "Answer in one word.")]


class FakeStream:
    def __init__(self, lm, prompt, directive):
        self.lm, self.prompt, self.directive = lm, prompt, directive
        self.result, self.on_tokens, self.prompt_tokens = None, None, 5

    def __iter__(self):
        t0 = time.monotonic()
        self.lm.log.append(("start", self.prompt, self.directive.level, t0))
        self.result = GenerationResult(level=self.directive.level, directive=self.directive.text, prompt=self.prompt,
                                       model="fake", device="cpu", backend="fake")
        try:
            for i in range(self.lm.tokens):
                time.sleep(self.lm.delay_s)
                self.result.text += "w "
                self.result.new_tokens = i + 1
                yield StreamChunk("w ", i + 1, time.monotonic() - t0, 5)
            self.result.total_s = time.monotonic() - t0
        finally:
            self.lm.log.append(("end", self.prompt, self.directive.level, time.monotonic()))


class FakeLM:
    """An in-process backend (``needs_lock``) that streams ``tokens`` words, ``delay_s`` apart, and logs when
    each answer starts and ends."""

    backend, needs_lock = "fake", True

    def __init__(self, tokens=4, delay_s=0.01):
        self.tokens, self.delay_s, self.log = tokens, delay_s, []
        self.info = SimpleNamespace(name="fake", device="cpu", directive_set="default", placement="system",
                                    context_len=2048, dtype="n/a", path="fake")

    def open_stream(self, prompt, directive, params, placement=None):
        return FakeStream(self, prompt, directive)


def _run(prompt, **kw):
    return Run(store.new_run_id(), prompt, [d.level for d in LEVELS], params=GenerationParams(max_new_tokens=8),
               directives=list(LEVELS), **kw)


def test_execute_yields_progress_and_returns_the_records():
    lm, run = FakeLM(), _run("one")
    events = list(execute(run, lm, NullMeter(), SETTINGS, queue=GenerationQueue()))
    kinds = [e.kind for e in events]
    assert kinds.count(START) == 3 and kinds.count(ANSWER) == 3 and kinds.count(CHUNK) == 3 * lm.tokens
    assert WAITING not in kinds and run.phase == DONE and run.wait_settled(0)
    assert [r.level for r in run.records] == ["L0", "L1", "L2"] and all(r.status == "complete" for r in run.records)
    stored = store.read_answers({"run_id": run.run_id})
    assert sorted(stored, key=lambda r: r.level) == run.records  # written once, read back as the same records
    last = [e for e in events if e.kind == CHUNK][-1]
    assert last.text == "w " * lm.tokens and last.k == 3 and last.n == 3


def test_stopping_mid_run_records_the_partial_answer_and_frees_the_model():
    lm, run, q = FakeLM(tokens=20), _run("stop me"), GenerationQueue()
    events = execute(run, lm, NullMeter(), SETTINGS, queue=q)
    for ev in events:
        if ev.kind == CHUNK and ev.level == "L1" and ev.chunk.new_tokens == 3:
            break
    events.close()  # what the page does on Stop / reload
    assert run.phase == RUNNING and run.wait_settled(0)  # the page marks it stopped or cut
    assert [run.status_of(lv) for lv in run.levels] == ["complete", "aborted", "not run"]
    assert not q.status().busy
    (aborted,) = [r for r in store.read_answers({"run_id": run.run_id}) if r.level == "L1"]
    assert aborted.status == "aborted" and aborted.partial and aborted.new_tokens == 3


@pytest.mark.parametrize("first_delay", [0.0, 0.05])
def test_two_concurrent_runs_are_served_run_by_run(first_delay):
    """The second visitor's levels all start after the first visitor's last level ends (not alternating by
    level), and the second is told it waits for 1 run."""
    lm, q = FakeLM(tokens=5, delay_s=0.01), GenerationQueue(poll_s=0.02)
    runs = {"A": _run("A"), "B": _run("B")}
    waits: dict[str, list[int]] = {"A": [], "B": []}
    a_started = threading.Event()

    def visitor(name):
        for ev in execute(runs[name], lm, NullMeter(), SETTINGS, label=name, queue=q):
            if ev.kind == WAITING:
                waits[name].append(ev.ahead)
            if ev.kind == START:
                a_started.set()

    ta = threading.Thread(target=visitor, args=("A",))
    ta.start()
    assert a_started.wait(10)
    time.sleep(first_delay)
    tb = threading.Thread(target=visitor, args=("B",))
    tb.start()
    ta.join(30)
    tb.join(30)
    a_end = max(t for kind, p, _lv, t in lm.log if kind == "end" and p == "A")
    b_starts = [t for kind, p, _lv, t in lm.log if kind == "start" and p == "B"]
    assert len(b_starts) == 3 and min(b_starts) >= a_end
    assert runs["A"].phase == runs["B"].phase == DONE
    assert waits["A"] == [] and waits["B"] and set(waits["B"]) == {1}


def test_a_single_answer_caller_waits_for_the_whole_run():
    """The CLI or an evaluation (one turn per answer) queued behind a run is served after all its levels."""
    from sprout_core.metered import metered_generate

    lm, q = FakeLM(tokens=5, delay_s=0.01), GenerationQueue(poll_s=0.02)
    run = _run("R")
    started = threading.Event()

    def visitor():
        for ev in execute(run, lm, NullMeter(), SETTINGS, queue=q):
            if ev.kind == START:
                started.set()

    t = threading.Thread(target=visitor)
    t.start()
    assert started.wait(10)
    import sprout_core.metered as metered_mod

    orig = metered_mod.generation_lock
    metered_mod.generation_lock = lambda lm_, label="", on_wait=None: q.turn(label, on_wait)
    try:
        metered_generate(lm, "single", LEVELS[0], GenerationParams(max_new_tokens=4), NullMeter(), SETTINGS, save=False)
    finally:
        metered_mod.generation_lock = orig
    t.join(30)
    run_end = max(tt for kind, p, _lv, tt in lm.log if kind == "end" and p == "R")
    single_start = next(tt for kind, p, _lv, tt in lm.log if kind == "start" and p == "single")
    assert single_start >= run_end


def test_waiting_line_counts_runs_with_the_right_plural():
    assert waiting_line(1) == "Queued: waiting for 1 run ahead of yours…"
    assert waiting_line(2) == "Queued: waiting for 2 runs ahead of yours…"
    assert "busy with the lesson" in waiting_line(1, "the lesson")


_CLI = """
import sys
import tests.test_run as T
from sprout_core import cli
from sprout_core.commands import generate as G
from sprout_core.energy.base import NullMeter

lm = T.FakeLM(tokens=100_000, delay_s=0.01)
G.open_backend = lambda choice: lm
G.meter_for = lambda lm, **kw: NullMeter()
sys.exit(cli.main(["generate", "--prompt", "keep me", "--levels", "L0,L1", "--ci", "300"]))
"""


@pytest.mark.parametrize("sig,rc", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_generate_keeps_the_answer_in_flight(sig, rc, _isolated_state):
    """SIGTERM (e.g. a service manager stopping the job) keeps the answer in flight like Ctrl-C: stored as
    aborted with what was generated, the levels not started are not stored, and the exit says so."""
    import os
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    p = subprocess.Popen([sys.executable, "-c", _CLI], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=os.environ | {"PYTHONPATH": str(root)})
    seen = b""
    try:
        while seen.count(b"w ") < 5:  # the L0 answer is streaming
            piece = p.stdout.read1(4096)
            assert piece, p.stderr.read().decode()
            seen += piece
        p.send_signal(getattr(signal, sig))
        _out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == rc, err.decode()
    assert "kept" in err.decode() and "Traceback" not in err.decode()
    (rec,) = store.read_answers()
    assert rec.level == "L0" and rec.status == "aborted" and rec.partial and rec.origin == "cli"
    assert rec.new_tokens >= 5 and rec.text.startswith("w w w w w")


# ---------------------------------------------------------------------------------------------- class-mode caps
from sprout_core.run import CapError, ClassCaps, VisitorLedger, apply_caps  # noqa: E402 - imported where the class-mode caps tests begin


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _asked(max_new, prompt="short", levels=3):
    return Run("r", prompt, [d.level for d in LEVELS[:levels]], params=GenerationParams(max_new_tokens=max_new),
               directives=list(LEVELS[:levels]))


def test_caps_from_env_defaults_and_bad_values():
    assert ClassCaps.from_env({}) == ClassCaps(4000, 768, 6000)
    assert ClassCaps.from_env({"SPROUT_CLASS_MAX_RUN_TOKENS": "0"}).max_run_tokens == 0
    with pytest.raises(Exception, match="SPROUT_CLASS_MAX_PROMPT_CHARS"):
        ClassCaps.from_env({"SPROUT_CLASS_MAX_PROMPT_CHARS": "-3"})
    assert "768 new tokens per run" in ClassCaps().describe()


def test_prompt_over_the_cap_is_refused_before_it_is_queued():
    with pytest.raises(CapError, match="at most 100 characters; this one has 101"):
        apply_caps(_asked(64, "x" * 101), ClassCaps(100, 0, 0), "v", VisitorLedger())


def test_tokens_per_run_lower_each_level_to_its_share():
    run, notes = apply_caps(_asked(2048), ClassCaps(0, 768, 0), "v", VisitorLedger())
    assert run.params.max_new_tokens == 256 and "256 per answer" in notes[0] and run.notes == notes
    same, none = apply_caps(_asked(100), ClassCaps(0, 768, 0), "v", VisitorLedger())
    assert same.params.max_new_tokens == 100 and none == []


def test_hourly_budget_counts_per_visitor_and_frees_after_an_hour():
    clock = Clock()
    ledger = VisitorLedger(clock=clock)
    caps = ClassCaps(0, 768, 1000)
    ledger.charge("a", 700)
    run, notes = apply_caps(_asked(256), caps, "a", ledger)
    assert run.params.max_new_tokens == 100 and "300 of your 1,000" in notes[0]
    assert apply_caps(_asked(256), caps, "b", ledger)[0].params.max_new_tokens == 256  # another visitor: untouched
    ledger.charge("a", 299)
    with pytest.raises(CapError, match="1,000 new tokens an hour; you have used 999. Try again in about 60 min"):
        apply_caps(_asked(256), caps, "a", ledger)
    clock.t += 3601
    assert ledger.used("a") == 0 and apply_caps(_asked(256), caps, "a", ledger)[0].params.max_new_tokens == 256


def test_execute_charges_the_visitor_for_what_was_generated():
    ledger, lm = VisitorLedger(), FakeLM(tokens=4)
    list(execute(_run("charged"), lm, NullMeter(), SETTINGS, queue=GenerationQueue(), visitor="v", ledger=ledger))
    assert ledger.used("v") == 3 * 4 and ledger.used("other") == 0


def test_playground_in_class_mode_applies_the_caps_across_a_reload(monkeypatch, tiny_llama2_dir):
    """AppTest: a prompt over the cap is refused with a message; tokens per run lower Max new tokens; a reload
    (a new session at the same address) keeps the visitor's hourly count."""
    from streamlit.testing.v1 import AppTest

    from sprout_core import run as run_mod

    monkeypatch.setenv("SPROUT_MODEL", str(tiny_llama2_dir))
    monkeypatch.setenv("SPROUT_MODELS", str(tiny_llama2_dir))  # class mode loads only the operator's models
    monkeypatch.setenv("SPROUT_SHARED", "1")
    monkeypatch.setenv("SPROUT_CLASS_MAX_PROMPT_CHARS", "40")
    monkeypatch.setenv("SPROUT_CLASS_MAX_RUN_TOKENS", "6")
    monkeypatch.setenv("SPROUT_CLASS_MAX_HOUR_TOKENS", "9")
    monkeypatch.setattr(run_mod, "LEDGER", VisitorLedger())
    page = str(Path(__file__).resolve().parent.parent / "pages" / "playground.py")

    def ask(at, prompt, max_new=8):
        at.text_area(key="pg.prompt").input(prompt)
        at.number_input(key="pg.max_new").set_value(max_new)
        at.multiselect(key="pg.levels").set_value(["L0", "L1"])
        at.button(key="pg.run").click().run()
        assert not at.exception, at.exception
        return at

    at = AppTest.from_file(page, default_timeout=120).run()
    assert any("Class mode: prompts of at most 40 characters" in c.value for c in at.caption)
    ask(at, "x" * 41)
    assert any("at most 40 characters; this one has 41" in w.value for w in at.warning)
    ask(at, "what is the capital of france")
    assert any("lowered to 3 per answer" in i.value for i in at.info)
    run = at.session_state["pg.results"]
    assert run.params.max_new_tokens == 3 and run.finished
    vid = at.session_state["sprout.visitor_id"]
    assert run_mod.LEDGER.used(vid) == sum(o.result.new_tokens for o in run.outcomes) > 0
    # a reload: a new session at the same address is the same visitor, with the same count
    reload = AppTest.from_file(page, default_timeout=120)
    reload.query_params["visitor"] = vid
    reload.run()
    assert reload.session_state["sprout.visitor_id"] == vid
    run_mod.LEDGER.charge(vid, 9)
    ask(reload, "what is the capital of france")
    assert any("9 new tokens an hour" in w.value for w in reload.warning), [w.value for w in reload.warning]
