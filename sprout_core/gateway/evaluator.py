"""The gateway's offline evaluator: when the schedule says the grid is clean, answer a sample of prompts at
every level through the upstream, have the judge pick the best answer in both orders, and hand the
verdicts to the planner (the next decisions use them).

* **Prompts**: a sample of recent requests (kept in memory only with ``--store-prompts``) or the operator's
  prompt set (``--eval-prompts``: one prompt per line, or JSONL with ``prompt`` and optional ``task``), at most
  ``--n-eval``, drawn with a seed per hour.
* **Answers** go through the gateway's own upstream path, so each is metered (or estimated) like any request
  and written to the store with origin ``gateway-evaluator``: the evaluator's energy and carbon are charged.
* **Judge**: ``upstream`` (the served model judges, through the same path, its energy charged the same way —
  mechanical for a small model) or ``api:MODEL`` (an OpenAI-compatible judge at ``$SPROUT_JUDGE_BASE_URL``;
  its energy is n/a, not included). Both orders (:func:`sprout_core.evaluate.judges.judge_llm` with the second
  pass rotated).
* **Shares**: through the project's one quality estimate
  (:func:`sprout_core.evaluate.shares.quality_estimate`): both passes of a prompt averaged (a disagreeing pair
  splits the credit), identical answers split as a tie, length- and position-controlled per task (the order shown
  is recorded); when the controlled fit gives no share (too few verdicts) the raw shares, and the run says which.
  Tasks: the prompt set's ``task`` where it names one of the profile's tasks; unlabelled prompts are spread over
  the profile's tasks by the hour's task mix.
"""
from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from sprout_core.errors import InputError
from sprout_core.gateway.intensity import hour_start_iso
from sprout_core.settings import Settings

_log = logging.getLogger("sprout.gateway.evaluator")

ORIGIN = "gateway-evaluator"


def read_prompt_set(path: Path) -> list[tuple[str, str | None]]:
    """``(prompt, task)`` pairs from a text file (one prompt per line) or JSONL (``prompt``, ``task``)."""
    out: list[tuple[str, str | None]] = []
    for k, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("{"):
            try:
                obj = json.loads(s)
            except ValueError as exc:
                raise InputError(f"{path}, line {k}: not JSON ({exc})") from None
            p = obj.get("prompt") if isinstance(obj, dict) else None
            if not isinstance(p, str) or not p.strip():
                raise InputError(f"{path}, line {k}: a JSON line needs a non-empty 'prompt'")
            t = obj.get("task")
            out.append((p, t if isinstance(t, str) else None))
        else:
            out.append((s, None))
    if not out:
        raise InputError(f"{path}: no prompts")
    return out


UNLABELLED = "(unlabelled)"


def verdict_rows(pid: int, task: str | None, verdicts, answers: dict[str, str], levels: tuple[str, ...],
                 judge: str) -> list[dict]:
    """One prompt's passes as rows of :func:`~sprout_core.evaluate.shares.quality_estimate`'s verdict table."""
    from sprout_core.evaluate.shares import identity_groups

    groups = identity_groups([[answers.get(lv) for lv in levels]])[0]
    out = []
    for v in verdicts:
        row = {"task": task or UNLABELLED, "prompt_id": pid, "judge": judge, "winner": v.winner if v.valid else None,
               "valid": bool(v.valid), "order": ",".join(v.order)}
        for k, lv in enumerate(levels):
            row[f"words_{lv}"] = float(len((answers.get(lv) or "").split()))
            row[f"group_{lv}"] = int(groups[k])
        out.append(row)
    return out


def estimate_q(rows: list[dict], tasks: tuple[str, ...], levels: tuple[str, ...], weights: np.ndarray,
               judge: str) -> tuple[np.ndarray, np.ndarray, str]:
    """``(q_task [T, L], n_task [T], which)`` from the verdict rows via the one quality estimate: controlled
    shares, or raw where the controlled fit gives none; unlabelled prompts spread over the tasks by ``weights``."""
    import pandas as pd

    from sprout_core.evaluate.shares import quality_estimate

    table = pd.DataFrame(rows)
    which = "controlled (length and position)"
    est = quality_estimate(table, judge, control=True, levels=list(levels))
    names = list(est.tasks)
    fr = est.fractions(names, control=True)
    if np.isnan(fr).any():
        which = "raw (the controlled fit gave no share for this sample)"
        fr = est.fractions(names, control=False)
    L = len(levels)
    wins, n = np.zeros((len(tasks), L)), np.zeros(len(tasks))
    for name, q in zip(names, fr):
        cnt = float(est.tasks[name].n)
        if cnt <= 0 or np.isnan(q).any():
            continue
        if name in tasks:
            k = tasks.index(name)
            wins[k] += q * cnt
            n[k] += cnt
        else:
            wins += (weights * cnt)[:, None] * q[None, :]
            n += weights * cnt
    q_task = np.where(n[:, None] > 0, wins / np.maximum(n, 1e-300)[:, None], 1.0 / L)
    return q_task, n, which


def live_evaluator(cfg, complete):
    """The evaluator hook for :func:`sprout_core.gateway.app.create_app` (returns a coroutine per run);
    ``complete(state, body, level, origin=…, directive_free=…)`` is the app's metered upstream path."""
    fixed = read_prompt_set(cfg.eval_prompts) if cfg.eval_prompts is not None else None
    judge = cfg.judge

    async def run(state, t: int, hour: int) -> None:
        from sprout_core.evaluate.judges import judge_llm

        started = hour_start_iso(state.clock())
        pool = fixed if fixed is not None else list(state.recent)
        if not pool:
            state.evaluator_last = {"due_at_hour": started, "status": "skipped: no prompts yet (the recent-request "
                                    "sample is empty)"}
            return
        rng = np.random.default_rng([int(cfg.seed), int(hour), 7])
        pick = rng.choice(len(pool), size=min(cfg.n_eval, len(pool)), replace=False)
        sample = [pool[int(i)] for i in pick]
        state.evaluator_last = {"due_at_hour": started, "status": f"running on {len(sample)} prompts"}
        loop = asyncio.get_running_loop()
        chat, judge_note = _judge_chat(complete, state, judge, loop)
        levels = state.levels
        rows: list[dict] = []
        valid = invalid = 0
        try:
            for pid, (prompt, task) in enumerate(sample):
                answers = {}
                for lv in levels:
                    ans, _ = await _complete(complete, state, [{"role": "user", "content": prompt}], lv)
                    answers[lv] = "".join(ans.text)
                verdicts = await asyncio.to_thread(judge_llm, prompt, answers, chat, judge or "judge", int(hour), prompt,
                                                   True)
                if not any(v.valid for v in verdicts):
                    invalid += 1
                    continue
                valid += 1
                label = task if task in state.profile.tasks else None
                rows.extend(verdict_rows(pid, label, verdicts, answers, levels, judge or "judge"))
        except Exception as exc:  # noqa: BLE001 - a failed run keeps the previous q and says why
            _log.warning("a failed run keeps the previous q and says why: %s", exc)
            state.evaluator_last = {"due_at_hour": started, "status": f"failed: {type(exc).__name__}: {exc}"}
            return
        if not rows:
            state.evaluator_last = {"due_at_hour": started, "status": f"no valid verdicts ({invalid} invalid): q unchanged",
                                    "judge": judge, "judge_energy": judge_note}
            return
        try:
            q, n, which = estimate_q(rows, tuple(state.profile.tasks), levels, state.planner.weights, judge or "judge")
            state.planner.add_verdicts(q, n, t)
        except Exception as exc:  # noqa: BLE001 - the estimate failed: q unchanged, and the run says why
            _log.warning("the estimate failed: q unchanged, and the run says why: %s", exc)
            state.evaluator_last = {"due_at_hour": started, "status": f"failed: {type(exc).__name__}: {exc}"}
            return
        state.evaluator_last = {"due_at_hour": started, "status": "done", "prompts": len(sample),
                                "valid": valid, "invalid": invalid, "judge": judge, "judge_energy": judge_note,
                                "shares": f"{which}; both orders averaged, identical answers split as ties",
                                "energy": f"charged: every answer is a store row with origin {ORIGIN}"}

    return run


def _judge_chat(complete, state, judge: str | None, loop):
    if judge and judge.startswith("api:"):
        from sprout_core.evaluate.judges import OpenAIChat

        base = Settings.from_env().judge_base_url
        if not base:
            raise InputError("--judge api:MODEL needs SPROUT_JUDGE_BASE_URL")
        return OpenAIChat(base, judge[4:]), "n/a (a judge elsewhere: its energy is not included)"

    def chat(messages: list[dict[str, str]]) -> str:  # the upstream judges, through the metered path
        fut = asyncio.run_coroutine_threadsafe(_complete(complete, state, messages, None, max_tokens=16), loop)
        ans, _ = fut.result(timeout=state.cfg.timeout_s * 2)
        if ans.error:
            raise RuntimeError(ans.error)
        return "".join(ans.text)

    return chat, f"charged: the upstream judged, each judgement a store row with origin {ORIGIN}"


async def _complete(complete, state, messages: list[dict], level: str | None,
                    max_tokens: int | None = None) -> tuple[Any, dict]:
    """One non-streamed answer through the gateway's upstream path, metered and recorded (origin
    ``gateway-evaluator``); ``level`` ``None`` = no directive (a judge call)."""
    body: dict[str, Any] = {"messages": messages, "temperature": 0}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return await complete(state, body, level or "L0", origin=ORIGIN, directive_free=level is None)
