"""Evaluation runs: answer every sampled prompt under every level, measure, store, judge.

:func:`run_evaluation` is resumable: it stores each answer (tokens, seconds, energy J with its
method label) the moment it is generated, skips what is stored, and judges each prompt once all
its levels are answered. Killing it loses at most the answer in flight.

It never gets stuck and never duplicates work:

* a prompt that cannot be answered (longer than the model's context, …) becomes an *error row* and
  the run goes on; the summary lists the failures (``evaluate --retry-errors`` tries them again);
* two processes (or app sessions) on the same run share the work: each answer and each judging is
  claimed atomically first (:func:`sprout_core.evaluate.db.claim_answer`), so none is generated twice;
  a process that finds the rest claimed by others waits for them and takes over the claims of any that
  died;
* a locked database is waited for (up to :data:`LOCK_WAIT_S`); if it stays unusable the answer in flight
  goes to the pending queue and the run stops with a message saying so: the next run adds it instead of
  generating it again.

:class:`EvaluationJob` runs it in a background thread for the app (progress, ETA, cancel) — the
thread never calls streamlit.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from sprout_core import store, validate
from sprout_core.backends import meter_for
from sprout_core.directives import DirectiveSet, load_directive_set
from sprout_core.energy import NullMeter
from sprout_core.errors import (
    DataFileError,
    GenerationError,
    InputError,
    QueuedError,
    SproutError,
    StoreError,
    internal_error_message,
)
from sprout_core.evaluate import db
from sprout_core.evaluate.judges import (
    JudgeSpec,
    LocalChat,
    MeteredChat,
    OpenAIChat,
    Verdict,
    judge_llm,
    judge_reference,
    load_judge_prompt,
)
from sprout_core.evaluate.prompts import PromptItem, load_prompt_set, sample_representative, sample_stratified
from sprout_core.generation import GenerationParams
from sprout_core.metered import default_settings, metered_generate
from sprout_core.record import AnswerRecord
from sprout_core.settings import Settings

_log = logging.getLogger("sprout.evaluate.runner")

#: answer_fn(prompt_text, level) -> the answer's flat record (:meth:`sprout_core.metered.MeteredOutcome.to_row`:
#: text, prompt_tokens, new_tokens, ttft_s, total_s, finish_reason, directive, energy_j (J or None),
#: energy_method, energy_uncertainty_j, carbon_total_g (g CO₂e or None), ci_g_per_kwh, model, device …)
AnswerFn = Callable[[str, str], dict]
ChatFn = Callable[[list[dict[str, str]]], str]


@dataclass
class Progress:
    """Where a run stands. ``done``/``total``: answers stored / needed; ``eta_s``: seconds left at the
    pace of this session's answers (``None`` before the first); ``judged``: prompts with a verdict."""

    run_id: int | None = None
    done: int = 0
    total: int = 0
    skipped: int = 0
    judged: int = 0
    invalid: int = 0
    elapsed_s: float = 0.0
    eta_s: float | None = None
    current: str = ""
    finished: bool = False
    cancelled: bool = False
    error: str | None = None
    judge_seconds: list[float] = field(default_factory=list)
    #: judging energy per prompt (J, both passes; ``None`` = n/a) and the methods that measured it
    judge_energy_j: list[float | None] = field(default_factory=list)
    judge_energy_methods: set[str] = field(default_factory=set)
    #: answers this call generated (its share when other processes work on the same run)
    generated: int = 0
    #: error rows among the stored answers (prompts that could not be answered)
    failed: int = 0
    #: prompts not judged because one of their answers is an error row
    unjudgeable: int = 0
    #: answers added from the pending queue (written there when the database was locked)
    replayed: int = 0
    #: answers or judgings other processes were working on when last looked
    others: int = 0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def sample_prompts(prompt_set: str, n: int, seed: int, sampling: str = "stratified") -> list[PromptItem]:
    """The run's prompts: ``n`` from the named set or file, stratified by category or representative."""
    validate.whole("the number of prompts", n, 1)
    validate.choice("sampling", sampling, ("stratified", "representative"))
    ps = load_prompt_set(prompt_set)
    if not ps.items:
        raise DataFileError(f"prompt set {prompt_set!r} has no usable prompts" +
                         (f" ({len(ps.errors)} bad rows, first: row {ps.errors[0].row}: {ps.errors[0].reason})" if ps.errors else ""))
    if sampling == "representative":
        return sample_representative(ps.items, n, seed)
    return sample_stratified(ps.items, n, seed)


def make_answer_fn(lm, directive_set=None, max_new_tokens: int = 256, meter=None, settings=None) -> AnswerFn:
    """An :data:`AnswerFn` over a loaded model: greedy generation under each level's directive through
    :func:`sprout_core.metered.metered_generate` — the same path as the Playground — so every answer has
    its energy (``meter``, default :func:`sprout_core.backends.meter_for`: the model's device, or a server's
    shared meter) and its carbon (``settings``, default :func:`sprout_core.metered.default_settings`:
    ``$SPROUT_ZONE`` or DE, yearly mean). ``lm`` is any generation backend (transformers, llama.cpp, a
    server). Answers go to the evaluation tables only, not to the History.

    ``directive_set``: a :class:`~sprout_core.directives.DirectiveSet` (e.g. with a user's own levels), a
    set name, or None for the model's set."""
    dset = directive_set if isinstance(directive_set, DirectiveSet) else load_directive_set(directive_set or lm.info.directive_set)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    if meter is None:
        try:
            meter = meter_for(lm)
        except Exception as exc:  # noqa: BLE001 - no meter: energy is n/a, never 0
            _log.warning("no meter: energy is n/a, never 0: %s", exc)
            meter = NullMeter(lm.info.device, reason=f"no meter could be opened ({exc})")
    if settings is None:
        settings, _ = default_settings()

    def answer(prompt: str, level: str) -> dict:
        o = metered_generate(lm, prompt, dset.get(level), params, meter, settings, save=False, origin="evaluation",
                             label="an evaluation run")
        if o.result.error:  # e.g. the server went away: stop the run (answers so far are stored; it resumes)
            msg = f"The {level} answer failed, so the run stops here (it resumes where it stopped): {o.result.error}"
            if o.result.partial:  # the message says the partial answer is kept: the caller stores it first
                raise PartialAnswerError(msg, o.to_row())
            raise GenerationError(msg)
        return o.to_row()

    return answer


def make_judge_chat(spec: JudgeSpec, lm=None) -> ChatFn | None:
    """The chat function of an LLM judge: the given/embedded/local model, or the API endpoint."""
    if spec.kind != "llm":
        return None
    if spec.backend == "api":
        return OpenAIChat(spec.base_url, spec.model, spec.api_key_env)
    wanted = spec.model or "embedded"
    same = lm is not None and getattr(lm, "backend", "transformers") == "transformers" and (
        (wanted == "embedded" and getattr(lm.info, "kind", "") == "embedded")
        or (wanted != "embedded" and str(Path(wanted).expanduser().resolve()) == str(Path(lm.info.path).resolve())))
    if not same:
        from sprout_core.models import load_model

        lm = load_model(wanted)
    try:
        meter = meter_for(lm)
    except Exception as exc:  # noqa: BLE001 - no meter: the judging energy is n/a, never 0
        _log.warning("no meter: the judging energy is n/a, never 0: %s", exc)
        meter = NullMeter(getattr(lm.info, "device", "cpu"), reason=f"no meter could be opened ({exc})")
    return MeteredChat(LocalChat(lm), meter)  # each pass's judging energy is kept on its verdict


def judge_prompt(item: PromptItem, answers: dict[str, str], spec: JudgeSpec, seed: int, chat: ChatFn | None,
                 similarity=None) -> list[Verdict]:
    """Verdicts of ``spec`` on one prompt's answers (level → text)."""
    if spec.kind == "reference":
        return [judge_reference(answers, item.reference, similarity=similarity, name=spec.name)]
    if spec.kind == "llm":
        assert chat is not None
        return judge_llm(item.prompt, answers, chat, spec.name, seed=seed, key=item.id, second_pass=spec.second_pass,
                         prompt=load_judge_prompt(spec.prompt_file))
    return []  # human verdicts come from people, not from a run


#: seconds a write waits for a locked database before the answer in flight goes to the pending queue
LOCK_WAIT_S = 60.0


def _lock_wait_s() -> float:
    wait = Settings.from_env().db_lock_wait_s
    return LOCK_WAIT_S if wait is None else wait


def _is_lock(exc: BaseException) -> bool:
    m = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in m or "busy" in m)


def _db(fn, *args, wait_s: float, on_wait: Callable[[], None] | None = None):
    """``fn(*args)`` on the database, retried while it is locked for up to ``wait_s`` seconds; other
    SQLite failures (and a lock that outlasts the wait) become a :class:`StoreError` with a message."""
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            return fn(*args)
        except sqlite3.Error as exc:
            if _is_lock(exc) and time.monotonic() < deadline:
                if on_wait:
                    on_wait()
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 2.0)
                continue
            raise store._wrap(exc, store.default_path(), "write") from exc


class PartialAnswerError(GenerationError):
    """An answer cut mid-way (a server stopped, stalled or misbehaved): ``row`` holds the partial answer,
    which :func:`run_evaluation` stores before the run stops, as the message promises."""

    def __init__(self, message: str, row: dict) -> None:
        super().__init__(message)
        self.row = row


def _failed_answer(exc: BaseException, level: str) -> dict:
    """The error row of an answer that could not be generated (the one answer record, energy unknown)."""
    return AnswerRecord(level=level, finish_reason="error", error=str(exc), new_tokens=None, total_s=None,
                        origin="evaluation").as_row()


def run_evaluation(
    cfg: db.RunConfig,
    prompts: Sequence[PromptItem],
    answer_fn: AnswerFn,
    judge: JudgeSpec | None = None,
    judge_chat: ChatFn | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    similarity=None,
    *,
    lock_wait_s: float | None = None,
    poll_s: float = 1.0,
) -> Progress:
    """Answer, store and judge; resumable, shareable between processes. Returns the final :class:`Progress`.

    Order: prompt by prompt, every level, then that prompt's verdict, so results land as they come.
    ``cancel`` stops after the answer in flight (which is stored). ``lock_wait_s``: how long a write
    waits for a locked database (default :data:`LOCK_WAIT_S`, or ``SPROUT_DB_LOCK_WAIT_S``) before the
    answer goes to the pending queue and :class:`~sprout_core.errors.QueuedError` ends the run.
    Raises :class:`~sprout_core.errors.StoreError` when the database cannot be used at all (nothing lost).
    """
    wait_s = _lock_wait_s() if lock_wait_s is None else lock_wait_s
    levels = list(cfg.levels)
    total = len(prompts) * len(levels)
    st = Progress(total=total)
    t0 = time.perf_counter()
    new = 0

    def tick():
        st.elapsed_s = time.perf_counter() - t0
        st.eta_s = (st.elapsed_s / new) * (st.total - st.done) if new else None
        if progress:
            progress(st)

    def waiting():
        st.current = "waiting for the database (locked by another program)"
        tick()

    worker = db.Worker.start()
    con = db.connect()
    run_id = None
    try:
        run_id = _db(db.get_or_create_run, con, cfg, prompts, wait_s=wait_s, on_wait=waiting)
        run_key = cfg.run_key(prompts)
        st.run_id = run_id
        st.replayed = _db(db.replay_queued_answers, con, wait_s=wait_s, on_wait=waiting)
        have = _db(db.stored_answers, con, run_id, wait_s=wait_s)
        st.done = sum(1 for p in prompts for lv in levels if (p.id, lv) in have)
        st.skipped = st.done
        passes = 2 if (judge is not None and judge.kind == "llm" and judge.second_pass) else 1
        judging = judge is not None and judge.kind != "human"
        unjudgeable: set[str] = set()

        def count():
            st.done = sum(1 for p in prompts for lv in levels if (p.id, lv) in have)
            st.failed = sum(1 for p in prompts for lv in levels if (have.get((p.id, lv)) or {}).get("error"))
            st.judged = len({pid for pid, _, _ in _db(db.stored_judgments, con, run_id, judge.name, wait_s=wait_s)}) \
                if judging else 0

        def maybe_judge(item: PromptItem) -> None:
            if not judging or not all((item.id, lv) in have for lv in levels):
                return
            if any(have[(item.id, lv)].get("error") for lv in levels):
                unjudgeable.add(item.id)
                st.unjudgeable = len(unjudgeable)
                return
            state = _db(db.claim_judging, con, run_id, item.id, judge.name, passes, worker, wait_s=wait_s, on_wait=waiting)
            if state not in ("mine", "taken-over"):
                return  # judged already, or another process is judging it
            st.current = f"{item.id} · judging ({judge.name})"
            tick()
            try:
                verdicts = judge_prompt(item, {lv: have[(item.id, lv)]["text"] for lv in levels}, judge, cfg.seed,
                                        judge_chat, similarity)
                stored = [v for v in verdicts if _db(db.insert_verdict, con, run_id, item.id, v, wait_s=wait_s,
                                                     on_wait=waiting)]
                if stored:  # both passes are charged: time and energy per prompt are their sums
                    st.judge_seconds.append(sum(v.seconds for v in stored))
                    st.judge_energy_j.append(None if any(v.energy_j is None for v in stored)
                                             else sum(v.energy_j for v in stored))
                    st.judge_energy_methods.update(v.energy_method for v in stored)
                    st.invalid += sum(1 for v in stored if not v.valid)
                if passes == 2:
                    _db(db.update_flip_rates, con, run_id, judge.name, wait_s=wait_s, on_wait=waiting)
            finally:
                _release(con, run_id, item.id, f"judge:{judge.name}", worker)
            st.judged += 1
            tick()

        tick()
        while True:
            st.replayed += _db(db.replay_queued_answers, con, wait_s=wait_s, on_wait=waiting)
            have = _db(db.stored_answers, con, run_id, wait_s=wait_s)
            count()
            pending = [(p, lv) for p in prompts for lv in levels if (p.id, lv) not in have]
            if not pending:
                break
            progressed, busy = False, 0
            for item, lv in pending:
                if cancel is not None and cancel.is_set():
                    st.cancelled = True
                    st.current = ""
                    tick()
                    return st
                state = _db(db.claim_answer, con, run_id, item.id, lv, worker, wait_s=wait_s, on_wait=waiting)
                if state == "busy":
                    busy += 1
                    continue
                if state == "done" or (state == "taken-over" and db.is_queued(run_key, item.id, lv)):
                    _db(db.replay_queued_answers, con, wait_s=wait_s)
                    progressed = True
                    continue
                st.current = f"{item.id} · {lv}"
                tick()
                try:
                    rec = answer_fn(item.prompt, lv)
                except InputError as exc:  # this prompt cannot be answered (e.g. longer than the context): go on
                    rec = _failed_answer(exc, lv)
                except PartialAnswerError as exc:  # keep the partial answer (the message says so), then stop
                    _store_answer(con, run_id, run_key, item.id, lv, exc.row, wait_s, waiting)
                    st.generated += 1
                    st.done += 1
                    st.failed += 1
                    tick()
                    raise
                except BaseException:
                    _release(con, run_id, item.id, lv, worker)
                    raise
                st.generated += 1
                _store_answer(con, run_id, run_key, item.id, lv, rec, wait_s, waiting)
                have[(item.id, lv)] = rec
                st.done += 1
                st.failed += bool(rec.get("error"))
                new += 1
                progressed = True
                tick()
                maybe_judge(item)
            if not progressed and busy:
                st.others = busy
                st.current = f"waiting for {busy} answer(s) another process is generating"
                tick()
                _sleep(poll_s, cancel)
        # prompts answered earlier, or by another process, that are not judged yet
        have = _db(db.stored_answers, con, run_id, wait_s=wait_s)
        for item in prompts:
            if cancel is not None and cancel.is_set():
                st.cancelled = True
                break
            maybe_judge(item)
        if judging:
            while not st.cancelled:
                others = _db(db.claims_of_others, con, run_id, worker, wait_s=wait_s)
                if not others:
                    break
                st.others = others
                st.current = f"waiting for another process to finish judging ({others})"
                tick()
                _sleep(poll_s, cancel)
                st.cancelled = bool(cancel is not None and cancel.is_set())
        count()
        st.others = 0
        if st.cancelled:
            st.current = ""
            tick()
            return st
        _db(db.finish_run, con, run_id, wait_s=wait_s)
        st.finished = True
        st.current = ""
        tick()
        return st
    finally:
        worker.stop()
        try:
            db.release_claims(con, worker)
        except sqlite3.Error:
            pass  # the claims die with this worker: claim_alive() sees it stopped (or its process gone)
        con.close()


def _sleep(seconds: float, cancel: threading.Event | None) -> None:
    if cancel is not None:
        cancel.wait(seconds)
    else:
        time.sleep(seconds)


def _release(con, run_id: int, prompt_id: str, item: str, worker: db.Worker) -> None:
    """Give a claim back (best effort: a claim whose worker stopped is taken over anyway)."""
    try:
        db.release_claim(con, run_id, prompt_id, item, worker)
    except sqlite3.Error:
        pass


def _store_answer(con, run_id: int, run_key: str, prompt_id: str, level: str, rec: dict, wait_s: float,
                  on_wait: Callable[[], None]) -> None:
    """Store the answer just generated; if the database will not take it, keep it in the pending queue
    and stop the run with a message that says where it is (or exactly what was lost)."""
    try:
        _db(db.insert_answer, con, run_id, prompt_id, level, rec, wait_s=wait_s, on_wait=on_wait)
    except StoreError as err:
        try:
            where = db.queue_answer(run_key, prompt_id, level, rec)
        except OSError as qexc:
            raise StoreError(f"{err} The answer to prompt {prompt_id} at level {level} could NOT be saved (the pending "
                             f"queue could not be written either: {qexc}); it will be generated again on the next run. "
                             "Every answer stored before it is kept.") from err
        raise QueuedError(f"{err} The answer in flight (prompt {prompt_id}, level {level}) was kept in the pending "
                          f"queue ({where}); run the same command again to resume: it is added then, not generated "
                          "again. Every answer stored before it is kept.", where) from err


def judge_existing_run(run_id: int, judge: JudgeSpec, judge_chat: ChatFn | None = None, seed: int = 0,
                       progress: Callable[[int, int], None] | None = None, similarity=None) -> int:
    """Add ``judge``'s verdicts to a stored run (skipping prompts it already judged); returns how many added."""
    con = db.connect()
    try:
        prompts, answers, _ = db.run_tables(con, [run_id])
        levels = con.execute("SELECT levels FROM eval_runs WHERE id=?", (run_id,)).fetchone()[0].split(",")
        judged = db.stored_judgments(con, run_id, judge.name)
        by = {(a["prompt_id"], a["level"]): a["text"] for a in answers}
        added = 0
        for i, p in enumerate(prompts):
            if (p["prompt_id"], judge.name, 1) in judged or not all((p["prompt_id"], lv) in by for lv in levels):
                continue
            item = PromptItem(p["prompt_id"], p["prompt"], p["category"], p["reference"])
            for v in judge_prompt(item, {lv: by[(p["prompt_id"], lv)] for lv in levels}, judge, seed, judge_chat, similarity):
                added += int(db.insert_verdict(con, run_id, item.id, v))
            if progress:
                progress(i + 1, len(prompts))
        if judge.kind == "llm" and judge.second_pass:
            db.update_flip_rates(con, run_id, judge.name)
        return added
    finally:
        con.close()


class EvaluationJob:
    """A run in a background thread for the app: read :attr:`progress`; :meth:`cancel` to stop.

    ``setup()`` (in the thread) returns ``(answer_fn, judge_chat)`` — loading the model there keeps the
    page responsive. Exceptions end the job with ``progress.error`` set; stored answers stay stored.
    """

    def __init__(self, cfg: db.RunConfig, prompts: Sequence[PromptItem], setup: Callable[[], tuple[AnswerFn, ChatFn | None]],
                 judge: JudgeSpec | None):
        self.cfg = cfg
        self.prompts = list(prompts)
        self.judge = judge
        self._setup = setup
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress = Progress(total=len(self.prompts) * len(cfg.levels), current="starting")
        self.thread = threading.Thread(target=self._run, name="sprout-evaluation", daemon=True)

    def start(self) -> "EvaluationJob":
        self.thread.start()
        return self

    def _set(self, p: Progress) -> None:
        with self._lock:
            self._progress = Progress(**{k: (list(v) if isinstance(v, list) else v) for k, v in p.__dict__.items()})

    @property
    def progress(self) -> Progress:
        with self._lock:
            return self._progress

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def cancel(self) -> None:
        self._cancel.set()

    def _run(self) -> None:
        try:
            self._set(Progress(total=self._progress.total, current="loading the model"))
            answer_fn, chat = self._setup()
            run_evaluation(self.cfg, self.prompts, answer_fn, self.judge, chat, progress=self._set, cancel=self._cancel)
        except SproutError as exc:  # a message a person can act on; stored answers are kept
            self._fail(exc.user_message())
        except Exception as exc:  # noqa: BLE001 - a bug: the page shows type and message, the console the stack
            _log.warning("a bug: the page shows type and message, the console the stack: %s", exc)
            traceback.print_exc()
            self._fail(internal_error_message(exc))

    def _fail(self, message: str) -> None:
        p = self.progress
        p.error = message
        p.current = ""
        self._set(p)

