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

**Class mode** (:mod:`sprout_core.access`): :func:`apply_caps` holds a run to the operator's
:class:`ClassCaps` before it is queued — prompt length (characters) and new tokens per run (the levels'
caps together), so no run holds the first-come queue for minutes — and :class:`VisitorLedger` counts
the new tokens each visitor (:func:`sprout_core.ui.visitor_id`, stable across reloads) generated in the
last hour against a budget, so reloading does not reset the count.
"""
from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator

from sprout_core.errors import InputError
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
    #: what was changed before it ran (e.g. a class-mode cap lowered Max new tokens), for the page to say
    notes: list[str] = field(default_factory=list)
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
            queue: GenerationQueue = GENERATION_LOCK, visitor: str | None = None,
            ledger: "VisitorLedger | None" = None) -> Iterator[RunEvent]:
    """Generate every level of ``run`` in one turn of ``queue`` (in-process backends; a serving engine
    schedules requests itself), yielding :class:`RunEvent` s; returns ``run.outcomes``.

    ``label`` names this run to the callers queued behind it (e.g. "Playground"). Each answer is metered,
    priced with ``settings`` and stored (``run.save``) as it finishes, and appended to ``run.outcomes`` —
    also an answer cut short because the consumer closed this generator. With ``visitor`` and ``ledger``
    (class mode) every answer's new tokens are charged to that visitor, partial answers included."""
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
        if ledger is not None and visitor is not None:
            ledger.charge(visitor, sum(o.result.new_tokens or 0 for o in run.outcomes))
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


# ---------------------------------------------------------------------------------------------- class mode

#: environment variables of the operator's caps (class mode only), with their defaults
CAP_ENV = {"max_prompt_chars": ("SPROUT_CLASS_MAX_PROMPT_CHARS", 4000),
           "max_run_tokens": ("SPROUT_CLASS_MAX_RUN_TOKENS", 768),
           "max_hour_tokens": ("SPROUT_CLASS_MAX_HOUR_TOKENS", 6000)}


class CapError(InputError):
    """A run over a class-mode cap (the message says which, and what fits)."""


@dataclass(frozen=True)
class ClassCaps:
    """The operator's caps in class mode (``0`` turns one off).

    ``max_prompt_chars``: characters of one prompt (default 4,000 ≈ 1,000 tokens: the prompt is read once per
    level, so this bounds the reading time); ``max_run_tokens``: new tokens of one run, all its levels together
    (default 768 = 3 levels × 256), each level's cap is lowered to its share; ``max_hour_tokens``: new tokens
    one visitor may generate in any hour (default 6,000 ≈ 8 full runs)."""

    max_prompt_chars: int = CAP_ENV["max_prompt_chars"][1]
    max_run_tokens: int = CAP_ENV["max_run_tokens"][1]
    max_hour_tokens: int = CAP_ENV["max_hour_tokens"][1]

    @classmethod
    def from_env(cls, env: "os._Environ[str] | dict[str, str] | None" = None) -> "ClassCaps":
        """Caps from ``SPROUT_CLASS_MAX_PROMPT_CHARS``, ``SPROUT_CLASS_MAX_RUN_TOKENS`` and
        ``SPROUT_CLASS_MAX_HOUR_TOKENS`` (whole numbers ≥ 0; :class:`InputError` naming the variable otherwise)."""
        env = os.environ if env is None else env
        values = {}
        for name, (var, default) in CAP_ENV.items():
            raw = (env.get(var) or "").strip()
            try:
                values[name] = int(raw) if raw else default
            except ValueError:
                values[name] = -1
            if values[name] < 0:
                raise InputError(f"{var}={raw!r} is not a whole number ≥ 0 (0 turns the cap off; default {default}).")
        return cls(**values)

    def describe(self) -> str:
        """One sentence for the page: the caps in force."""
        def cap(v: int, what: str) -> str:
            return f"{v:,} {what}" if v else f"no cap on {what}"

        return (f"Class mode: prompts of at most {cap(self.max_prompt_chars, 'characters')}, "
                f"{cap(self.max_run_tokens, 'new tokens per run')} (all levels together), "
                f"{cap(self.max_hour_tokens, 'new tokens per visitor and hour')}.")


class VisitorLedger:
    """New tokens each visitor generated in the last ``window_s`` seconds (a sliding hour), process-wide and
    thread-safe. Keyed by the visitor id, which survives reloads, so a reload does not reset the count."""

    def __init__(self, window_s: float = 3600.0, clock=time.monotonic) -> None:
        self.window_s, self._clock = window_s, clock
        self._lock = threading.Lock()
        self._spent: dict[str, deque[tuple[float, int]]] = {}

    def _trim(self, visitor: str, now: float) -> deque[tuple[float, int]]:
        q = self._spent.setdefault(visitor, deque())
        while q and q[0][0] <= now - self.window_s:
            q.popleft()
        return q

    def charge(self, visitor: str, tokens: int) -> None:
        """Count ``tokens`` new tokens for ``visitor`` now."""
        if tokens > 0:
            with self._lock:
                self._trim(visitor, self._clock()).append((self._clock(), int(tokens)))

    def used(self, visitor: str) -> int:
        """New tokens ``visitor`` generated within the window."""
        with self._lock:
            return sum(t for _, t in self._trim(visitor, self._clock()))

    def free_in_s(self, visitor: str, need: int, budget: int) -> float:
        """Seconds until ``need`` more tokens fit ``budget`` (0 when they fit now)."""
        with self._lock:
            now = self._clock()
            q = self._trim(visitor, now)
            over = sum(t for _, t in q) + need - budget
            if over <= 0:
                return 0.0
            for t0, t in q:  # oldest first: each one frees its tokens when it leaves the window
                over -= t
                if over <= 0:
                    return max(0.0, t0 + self.window_s - now)
            return self.window_s


#: the process's ledger (all sessions of one server)
LEDGER = VisitorLedger()


def apply_caps(run: Run, caps: ClassCaps, visitor: str, ledger: VisitorLedger | None = None) -> tuple[Run, list[str]]:
    """``run`` held to class-mode ``caps`` for ``visitor``: a copy whose levels' token caps fit the run's cap
    together, and the notes that say what was lowered. :class:`CapError` (nothing is queued) for a prompt over
    the length cap, or when the visitor's hourly budget cannot fit even one answer of the run. ``ledger``
    defaults to the process's :data:`LEDGER`."""
    ledger = LEDGER if ledger is None else ledger
    notes: list[str] = []
    if caps.max_prompt_chars and len(run.prompt) > caps.max_prompt_chars:
        raise CapError(f"In class mode a prompt may have at most {caps.max_prompt_chars:,} characters; this one has "
                       f"{len(run.prompt):,}. Shorten it (the text stays in the box) — the cap keeps the queue short "
                       "for everyone.")
    n = max(1, len(run.directives))
    asked = run.params.max_new_tokens
    per = asked
    if caps.max_run_tokens:
        per = min(per, max(1, caps.max_run_tokens // n))
    if caps.max_hour_tokens:
        left = caps.max_hour_tokens - ledger.used(visitor)
        if left < n:
            wait = ledger.free_in_s(visitor, caps.max_run_tokens or asked * n, caps.max_hour_tokens)
            raise CapError(f"In class mode each visitor may generate {caps.max_hour_tokens:,} new tokens an hour; "
                           f"you have used {ledger.used(visitor):,}. Try again in about {max(1, round(wait / 60))} min.")
        if per * n > left:
            per = max(1, left // n)
            notes.append(f"Max new tokens lowered to {per:,} per answer: {left:,} of your {caps.max_hour_tokens:,} "
                         "new tokens this hour are left (class mode).")
    if per < asked and not notes:
        notes.append(f"Max new tokens lowered to {per:,} per answer so the run's {n} levels stay within the class's "
                     f"{caps.max_run_tokens:,} new tokens per run.")
    if per < asked:
        run = dataclasses.replace(run, params=dataclasses.replace(run.params, max_new_tokens=per),
                                  outcomes=[], notes=[*run.notes, *notes], _settled=threading.Event())
    return run, notes
