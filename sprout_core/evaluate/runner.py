"""Evaluation runs: answer every sampled prompt under every level, measure, store, judge.

:func:`run_evaluation` is resumable: it stores each answer (tokens, seconds, energy J with its
method label) the moment it is generated, skips what is stored, and judges each prompt once all
its levels are answered. Killing it loses at most the answer in flight. :class:`EvaluationJob`
runs it in a background thread for the app (progress, ETA, cancel) — the thread never calls
streamlit.
"""
from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Sequence

from sprout_core.backends import meter_for
from sprout_core.directives import DirectiveSet, load_directive_set
from sprout_core.energy import NullMeter
from sprout_core.errors import GenerationError
from sprout_core.evaluate import db
from sprout_core.evaluate.judges import (
    JudgeSpec, LocalChat, OpenAIChat, Verdict, judge_llm, judge_reference, load_judge_prompt,
)
from sprout_core.evaluate.prompts import PromptItem, load_prompt_set, sample_representative, sample_stratified
from sprout_core.generation import GenerationParams
from sprout_core.metered import default_settings, metered_generate

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

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


def sample_prompts(prompt_set: str, n: int, seed: int, sampling: str = "stratified") -> list[PromptItem]:
    """The run's prompts: ``n`` from the named set or file, stratified by category or representative."""
    ps = load_prompt_set(prompt_set)
    if not ps.items:
        raise ValueError(f"prompt set {prompt_set!r} has no usable prompts" +
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
            meter = NullMeter(lm.info.device, reason=f"no meter could be opened ({exc})")
    if settings is None:
        settings, _ = default_settings()

    def answer(prompt: str, level: str) -> dict:
        o = metered_generate(lm, prompt, dset.get(level), params, meter, settings, save=False, origin="evaluation",
                             label="an evaluation run")
        if o.result.error:  # e.g. the server went away: stop the run (answers so far are stored; it resumes)
            raise GenerationError(f"The {level} answer failed, so the run stops here (it resumes where it stopped): "
                                  f"{o.result.error}")
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
    return LocalChat(lm)


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


def run_evaluation(
    cfg: db.RunConfig,
    prompts: Sequence[PromptItem],
    answer_fn: AnswerFn,
    judge: JudgeSpec | None = None,
    judge_chat: ChatFn | None = None,
    progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    similarity=None,
) -> Progress:
    """Answer, store and judge; resumable. Returns the final :class:`Progress`.

    Order: prompt by prompt, every level, then that prompt's verdict, so results land as they come.
    ``cancel`` stops after the answer in flight (which is stored).
    """
    con = db.connect()
    try:
        run_id = db.get_or_create_run(con, cfg, prompts)
        have = db.stored_answers(con, run_id)
        judged = db.stored_judgments(con, run_id, judge.name if judge else None)
        levels = list(cfg.levels)
        total = len(prompts) * len(levels)
        st = Progress(run_id=run_id, total=total, done=sum(1 for p in prompts for lv in levels if (p.id, lv) in have))
        st.skipped = st.done
        st.judged = len({pid for pid, _, _ in judged})
        t0 = time.perf_counter()
        new = 0

        def tick():
            st.elapsed_s = time.perf_counter() - t0
            st.eta_s = (st.elapsed_s / new) * (st.total - st.done) if new else None
            if progress:
                progress(st)

        tick()
        for item in prompts:
            for lv in levels:
                if cancel is not None and cancel.is_set():
                    st.cancelled = True
                    tick()
                    return st
                if (item.id, lv) in have:
                    continue
                st.current = f"{item.id} · {lv}"
                tick()
                rec = answer_fn(item.prompt, lv)
                db.insert_answer(con, run_id, item.id, lv, rec)
                have[(item.id, lv)] = rec
                st.done += 1
                new += 1
                tick()
            if judge is not None and judge.kind != "human" and all((item.id, lv) in have for lv in levels):
                passes = 2 if (judge.kind == "llm" and judge.second_pass) else 1
                if any((item.id, judge.name, k) not in judged for k in range(1, passes + 1)):
                    st.current = f"{item.id} · judging ({judge.name})"
                    tick()
                    verdicts = judge_prompt(item, {lv: have[(item.id, lv)]["text"] for lv in levels}, judge, cfg.seed,
                                            judge_chat, similarity)
                    for v in verdicts:
                        if db.insert_verdict(con, run_id, item.id, v):
                            judged.add((item.id, v.judge, v.pass_no))
                            st.judge_seconds.append(v.seconds)
                            if not v.valid:
                                st.invalid += 1
                    st.judged += 1
                    tick()
        db.finish_run(con, run_id)
        st.finished = True
        st.current = ""
        tick()
        return st
    finally:
        con.close()


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
        except Exception as exc:  # noqa: BLE001 - shown on the page; stored answers are kept
            p = self.progress
            p.error = f"{type(exc).__name__}: {exc}"
            p.current = ""
            self._set(p)
            traceback.print_exc()

