"""A run: one prompt under several directive levels, generated in one turn of the model (no streamlit).

The run loop below the widgets. A :class:`Run` flows down once — prompt, levels, generation settings —
into :func:`execute`, which takes **one** turn in the fair queue
(:data:`sprout_core.generation.GENERATION_LOCK`) for all its levels, so visitors are served run by run
(first come, first served: the whole of the first run, then the next), and yields :class:`RunEvent` s
for whoever shows progress: ``waiting`` (runs ahead), ``start`` (a level begins), ``chunk`` (text and
energy so far), ``answer`` (a level's :class:`~sprout_core.metered.MeteredOutcome`, whose
:attr:`~sprout_core.metered.MeteredOutcome.record` is the stored :class:`~sprout_core.record.AnswerRecord`).
The records come back up once: ``run.outcomes`` / :attr:`Run.records`, and the generator's return value.

::

    run = Run(store.new_run_id(), prompt, ["L0", "L1"], params=params, directives=dset.select(["L0", "L1"]))
    for ev in execute(run, lm, meter, settings, label="Playground"):
        if ev.kind == WAITING:
            print(waiting_line(ev.ahead))
        elif ev.kind == CHUNK:
            print(ev.chunk.text, end="")
    run.records        # one AnswerRecord per level, in order

A consumer that stops early (Stop, reload, Ctrl-C, SIGTERM) closes the generator: the answer in flight is
recorded as aborted with the energy used until then, the queue turn is released, and ``run.phase`` stays
``running`` until the page marks it ``stopped`` or ``cut`` (:meth:`Run.end`).

Class mode (:mod:`sprout_core.access`) caps what one run may ask: :func:`check_caps`.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from sprout_core.generation import GENERATION_LOCK, GenerationQueue, needs_lock
from sprout_core.metered import CarbonSettings, LiveChunk, MeteredOutcome, metered_stream
from sprout_core.record import AnswerRecord

QUEUED, RUNNING, DONE, STOPPED, CUT = "queued", "running", "done", "stopped", "cut"

#: :class:`RunEvent` kinds
WAITING, START, CHUNK, ANSWER = "waiting", "start", "chunk", "answer"


@dataclass
class Run:
    """One run: ``levels`` (in order) of ``prompt``; ``outcomes`` the answers so far (same order).

    ``params`` is the ``GenerationParams`` and ``directives`` the ``Directive`` of each level (same order
    as ``levels``); ``origin`` / ``task`` / ``placement`` / ``save`` / ``db_path`` say how its answers are
    asked and stored. ``phase`` moves ``queued → running → done`` — or ``stopped`` (Stop) / ``cut``
    (the page was left, reloaded or rerun mid-answer)."""

    run_id: str
    prompt: str
    levels: list[str]
    task: str | None = None
    phase: str = QUEUED
    outcomes: list[MeteredOutcome] = field(default_factory=list)
    params: Any = None
    directives: list = field(default_factory=list)
    origin: str = "playground"
    placement: str | None = None
    save: bool = True
    db_path: Any = None
    _settled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)

    def settle(self) -> None:
        """Called when generation has stopped for good (normally or cut) and every outcome is recorded."""
        self._settled.set()

    def wait_settled(self, timeout_s: float = 30.0) -> bool:
        """Wait until an interrupted generation has recorded its partial answer (False on timeout)."""
        return self._settled.wait(timeout_s)

    @property
    def finished(self) -> bool:
        return self.phase in (DONE, STOPPED, CUT)

    @property
    def cancelled(self) -> bool:
        """True when the run did not get through every level (Stop, reload, page change)."""
        return self.phase in (STOPPED, CUT)

    @property
    def records(self) -> list[AnswerRecord]:
        """The answers' records, in level order."""
        return [o.record for o in self.outcomes]

    def outcome(self, level: str) -> MeteredOutcome | None:
        return next((o for o in self.outcomes if o.result.level == level), None)

    def status_of(self, level: str) -> str:
        """``complete`` / ``error`` / ``aborted`` (partial answer) / ``not run``."""
        o = self.outcome(level)
        if o is None:
            return "not run"
        if o.aborted:
            return "aborted"
        return "error" if o.result.error else "complete"

    def end(self, phase: str) -> None:
        """Mark the run finished as ``done``, ``stopped`` or ``cut``."""
        self.phase = phase

    def summary(self) -> str:
        """One sentence on how the run ended (for the banner above its answers)."""
        if self.phase == DONE:
            return f"Run finished: {len(self.outcomes)} answer(s)."
        why = ("you pressed Stop" if self.phase == STOPPED else
               "the run was stopped from the toolbar, or the page was left or reloaded mid-answer")
        parts = []
        done = [lv for lv in self.levels if self.status_of(lv) == "complete"]
        cut = [lv for lv in self.levels if self.status_of(lv) == "aborted"]
        never = [lv for lv in self.levels if self.status_of(lv) == "not run"]
        if done:
            parts.append(f"complete: {', '.join(done)}")
        if cut:
            parts.append(f"cut short: {', '.join(cut)} (partial answer, stored in the History as aborted with the "
                         "energy measured until then)")
        if never:
            parts.append(f"not run: {', '.join(never)}")
        return f"This run was cancelled ({why}) — " + "; ".join(parts or ["nothing was generated"]) + "."


@dataclass(frozen=True)
class RunEvent:
    """One step of a run, for whoever shows progress.

    ``kind``: ``waiting`` (``ahead`` turns — runs or other callers' answers — are before this run;
    ``holder`` names who has the model), ``start`` (level ``level``, ``k`` of ``n``, 1-based, begins;
    ``prompt_tokens`` the model will read, ``None`` where a backend cannot tell), ``chunk`` (``chunk``
    arrived; ``text`` is the answer so far), ``answer`` (``outcome`` is the level's answer, stored)."""

    kind: str
    k: int = 0
    n: int = 0
    level: str = ""
    ahead: int = 0
    holder: str = ""
    directive: Any = None
    chunk: LiveChunk | None = None
    text: str = ""
    prompt_tokens: int | None = None
    outcome: MeteredOutcome | None = None


def execute(run: Run, lm, meter, settings: CarbonSettings, *, label: str = "",
            queue: GenerationQueue = GENERATION_LOCK) -> Iterator[RunEvent]:
    """Generate every level of ``run`` in one turn of ``queue`` (in-process backends; a serving engine
    schedules requests itself), yielding :class:`RunEvent` s; returns ``run.outcomes``.

    ``label`` names this run to the callers queued behind it (e.g. "Playground"). Each answer is metered,
    priced with ``settings`` and stored (``run.save``) as it finishes, and appended to ``run.outcomes`` —
    also an answer cut short because the consumer closed this generator."""
    n = len(run.directives)
    run.phase = RUNNING
    held = False
    try:
        if needs_lock(lm):
            waiting = queue.take(label or run.origin)
            try:
                for ahead in waiting:
                    yield RunEvent(WAITING, n=n, ahead=ahead, holder=queue.status().holder)
            finally:
                waiting.close()  # the consumer stopped waiting: this run leaves the queue
            held = True
        for k, d in enumerate(run.directives, start=1):
            yield from _level(run, k, n, d, lm, meter, settings, label)
        run.end(DONE)
        return run.outcomes
    finally:
        if held:
            queue.release()
        run.settle()


def _level(run: Run, k: int, n: int, d, lm, meter, settings: CarbonSettings, label: str) -> Iterator[RunEvent]:
    ms = metered_stream(lm, run.prompt, d, run.params, meter, settings, save=run.save, run_id=run.run_id,
                        origin=run.origin, task=run.task, placement=run.placement, db_path=run.db_path, label=label)
    yield RunEvent(START, k, n, d.level, directive=d, prompt_tokens=ms.prompt_tokens)
    text = ""
    stream = iter(ms)
    try:
        for chunk in stream:
            text += chunk.text
            yield RunEvent(CHUNK, k, n, d.level, directive=d, chunk=chunk, text=text, prompt_tokens=ms.prompt_tokens)
    finally:  # also when the consumer stopped mid-answer: the partial answer is recorded
        stream.close()
        if ms.outcome is not None and ms.outcome not in run.outcomes:
            run.outcomes.append(ms.outcome)
    if ms.outcome is not None:
        yield RunEvent(ANSWER, k, n, d.level, directive=d, text=ms.outcome.result.text, outcome=ms.outcome,
                       prompt_tokens=ms.prompt_tokens)
