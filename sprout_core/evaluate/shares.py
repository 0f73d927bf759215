"""The one quality estimate: per task and level, raw and controlled win shares with a 95 % interval.

Every page and command that turns verdicts into win shares calls this module (issue 18 item 1, 21.2).

**Credits.** A verdict gives each level of its prompt a *credit*; a prompt's credits sum to 1.

* *raw*: the winner gets 1. Answers whose texts are identical after normalising whitespace and case
  (:func:`normalise`) are the same answer, so they split the credit as a tie — never decided by the
  position the judge saw them in. A verdict that names several winners (a tie, or two passes of a
  judge that disagree) splits the credit between them.
* *controlled*: AlpacaEval's length-controlled win rate (Dubois et al. 2024, arXiv:2404.04475) fits a
  logistic GLM with the length difference as a covariate and reads the win rate with the length term
  set to zero. With three or more answers per prompt the same idea is a **conditional logit** per task:
  ``P(i | p) = softmax_i(a_i + b·log(words_pi) + c_pos(p,i))`` over the levels answered in prompt ``p``,
  ``a_i`` the level effect (``a_L0 = 0``), ``b`` the length coefficient (log of whitespace words, at least
  1), ``c`` one effect per position shown (first = 0), fitted only where the order shown is stored
  (the project's own judges and people's votes; the paper's GPT-4 verdicts do not store it). Outcomes
  are the raw credits (a fractional-response fit), so ties stay ties. The controlled credit of a verdict
  is ``y_pi − P̂(i|p) + P̂_c(i|p)``, where ``P̂_c`` is the model's prediction at equal length and equal
  position, ``softmax(a)`` over the levels answered; its mean over prompts is the controlled share.

**Intervals.** 95 %, by the delta method on a sandwich (prompt-clustered) covariance: for the
controlled share through ``softmax(a)``; for the raw share from the spread of the per-prompt credits.
Both are symmetric around their point and clipped to [0, 100] %, so they always contain it.

Shares are in % (0–100) and sum to 100 per task over the levels judged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

#: the unit of the length covariate
LENGTH_UNIT = "whitespace words (log, at least 1)"
#: the interval method, in words (captions, JSON consumers)
INTERVAL_METHOD = "95 % delta method, prompt-clustered sandwich covariance"
Z95 = 1.959963984540054
_RIDGE = 1e-3          # L2 penalty per parameter: keeps a level that never wins finite (≈ 0 %)
#: a task with fewer valid prompts is not fitted (its controlled share is its raw one, coefficient n/a):
#: a length effect from a handful of prompts is noise
MIN_FIT_PROMPTS = 30
_WS = re.compile(r"\s+")


def normalise(text: str | None) -> str:
    """A text with runs of whitespace collapsed to one space, stripped, lower-cased (identity test)."""
    return _WS.sub(" ", str(text or "")).strip().lower()


def word_count(text: str | None) -> int:
    """Whitespace-separated words of ``text`` (the length unit of the controlled share)."""
    return len(str(text or "").split())


def identity_groups(texts: Sequence[Sequence[str | None]]) -> np.ndarray:
    """``[n, L]`` ints: for each level the index of the first level whose normalised text is the same.

    ``[0, 1, 1]`` = L1 and L2 answered identically. A missing answer (``None``) is its own group.
    """
    out = np.zeros((len(texts), len(texts[0]) if len(texts) else 0), dtype=np.int64)
    for r, row in enumerate(texts):
        seen: dict[str, int] = {}
        for i, t in enumerate(row):
            if t is None:
                out[r, i] = i
                continue
            out[r, i] = seen.setdefault(normalise(t), i)
    return out


# ----------------------------------------------------------------------------------- raw credits

def _winner_sets(winners: Sequence, levels: Sequence[str]) -> list[list[int] | None]:
    idx = {lv: i for i, lv in enumerate(levels)}
    out: list[list[int] | None] = []
    for w in winners:
        if w is None or (isinstance(w, float) and np.isnan(w)):
            out.append(None)
        elif isinstance(w, str):
            if w == "tie":
                out.append(list(range(len(levels))))
            else:
                out.append([idx[w]] if w in idx else None)
        else:
            ks = [idx[x] for x in w if x in idx]
            out.append(ks or None)
    return out


def raw_credits(winners: Sequence, levels: Sequence[str], groups: np.ndarray | None = None,
                available: np.ndarray | None = None) -> np.ndarray:
    """``[n, L]`` raw credits: one-hot winner, split over identical answers and over named ties.

    ``winners[k]``: a level name, ``"tie"`` (all levels answered), a sequence of level names (a tie
    between those), or ``None`` (invalid: a row of NaN). ``groups``: :func:`identity_groups`.
    ``available``: ``[n, L]`` bool, the levels answered (default all).
    """
    levels = list(levels)
    n, L = len(winners), len(levels)
    avail = np.ones((n, L), bool) if available is None else np.asarray(available, bool)
    y = np.full((n, L), np.nan)
    for r, ws in enumerate(_winner_sets(winners, levels)):
        if ws is None:
            continue
        ws = [k for k in ws if avail[r, k]] or ([k for k in range(L) if avail[r, k]] if len(ws) > 1 else [])
        if not ws:
            continue
        row = np.zeros(L)
        for k in ws:
            members = [k] if groups is None else [j for j in range(L) if avail[r, j] and groups[r, j] == groups[r, k]]
            for j in members:
                row[j] += 1.0 / (len(ws) * len(members))
        y[r] = row
    return y


# ----------------------------------------------------------------------------------- the fit

@dataclass
class LogitFit:
    """A conditional-logit fit of one task's verdicts.

    ``level_effect[i]``: ``a_i`` (``a_0 = 0``); ``length_coef``/``length_coef_se``: ``b`` per unit of
    log(words) and its robust standard error (``None`` when lengths are unknown); ``position_effect[k]``:
    ``c_k`` of the k-th position shown (``c_0 = 0``; empty when the order is unknown) with ``position_se``;
    ``cov``: sandwich covariance of the parameter vector ``[a_1.., b?, c_1..?]``.
    """

    level_effect: np.ndarray
    length_coef: float | None
    length_coef_se: float | None
    position_effect: np.ndarray
    position_se: np.ndarray
    cov: np.ndarray
    n_levels: int
    iterations: int
    converged: bool


def _design(L: int, log_len: np.ndarray | None, pos: np.ndarray | None) -> np.ndarray:
    """``[n, L, K]``: level dummies (L-1), log length (1), position dummies (L-1)."""
    n = (log_len if log_len is not None else pos).shape[0] if (log_len is not None or pos is not None) else 0
    parts = [np.broadcast_to(np.eye(L)[None, :, 1:], (n, L, L - 1))]
    if log_len is not None:
        parts.append(log_len[:, :, None])
    if pos is not None:
        parts.append(np.eye(L)[pos][:, :, 1:])
    return np.concatenate(parts, axis=2).astype(float)


def _probs(X: np.ndarray, theta: np.ndarray, avail: np.ndarray) -> np.ndarray:
    u = X @ theta
    u = np.where(avail, u, -np.inf)
    u = u - u.max(axis=1, keepdims=True)
    e = np.where(avail, np.exp(u), 0.0)
    return e / e.sum(axis=1, keepdims=True)


def fit_logit(y: np.ndarray, lengths: np.ndarray | None = None, order: np.ndarray | None = None,
              available: np.ndarray | None = None, weights: np.ndarray | None = None,
              cluster: np.ndarray | None = None, max_iter: int = 100) -> LogitFit:
    """Fit winner ~ level + log(length) [+ position] by Newton's method (fractional outcomes ``y``).

    ``y``: ``[n, L]`` credits (rows sum to 1); ``lengths``: ``[n, L]`` words (``None`` = not modelled);
    ``order``: ``[n, L]`` position each level was shown at (0 = first; ``None`` = unknown);
    ``weights``: per row (default 1); ``cluster``: per row, the prompt it belongs to (for the sandwich).
    """
    n, L = y.shape
    avail = np.ones((n, L), bool) if available is None else np.asarray(available, bool)
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    log_len = None if lengths is None else np.log(np.maximum(np.nan_to_num(np.asarray(lengths, float), nan=1.0), 1.0))
    pos = None if order is None else np.clip(np.asarray(order, int), 0, L - 1)
    X = _design(L, log_len, pos)
    K = X.shape[2]
    theta = np.zeros(K)
    ridge = _RIDGE * np.eye(K)

    def objective(th):
        P = _probs(X, th, avail)
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.where(y > 0, y * np.log(np.where(P > 0, P, 1.0)), 0.0).sum(axis=1)
        return float((w * ll).sum() - 0.5 * _RIDGE * th @ th)

    obj = objective(theta)
    converged, iterations = False, 0
    for step_no in range(1, max_iter + 1):
        iterations = step_no
        P = _probs(X, theta, avail)
        resid = (y - P) * w[:, None]
        grad = np.einsum("nlk,nl->k", X, resid) - _RIDGE * theta
        xbar = np.einsum("nlk,nl->nk", X, P)
        H = np.einsum("n,nl,nlk,nlj->kj", w, P, X, X) - np.einsum("n,nk,nj->kj", w, xbar, xbar) + ridge
        step = np.linalg.solve(H, grad)
        t = 1.0
        while t > 1e-6:
            cand = theta + t * step
            new = objective(cand)
            if new >= obj - 1e-12:
                break
            t /= 2
        theta, gain, obj = cand, new - obj, new
        if abs(gain) < 1e-10 and np.max(np.abs(t * step)) < 1e-7:
            converged = True
            break
    P = _probs(X, theta, avail)
    xbar = np.einsum("nlk,nl->nk", X, P)
    H = np.einsum("n,nl,nlk,nlj->kj", w, P, X, X) - np.einsum("n,nk,nj->kj", w, xbar, xbar) + ridge
    scores = np.einsum("nlk,nl->nk", X, (y - P) * w[:, None])
    if cluster is not None:
        _, inv = np.unique(np.asarray(cluster), return_inverse=True)
        s = np.zeros((inv.max() + 1, K))
        np.add.at(s, inv, scores)
        scores = s
    Hinv = np.linalg.pinv(H)
    cov = Hinv @ (scores.T @ scores) @ Hinv
    se = np.sqrt(np.maximum(np.diag(cov), 0.0))
    a = np.concatenate([[0.0], theta[: L - 1]])
    k = L - 1
    b = b_se = None
    if log_len is not None:
        b, b_se = float(theta[k]), float(se[k])
        k += 1
    c = np.concatenate([[0.0], theta[k:]]) if pos is not None else np.zeros(0)
    c_se = np.concatenate([[0.0], se[k:]]) if pos is not None else np.zeros(0)
    return LogitFit(a, b, b_se, c, c_se, cov, L, iterations, converged)


def _fit_predictions(fit: LogitFit, lengths, order, avail) -> tuple[np.ndarray, np.ndarray]:
    """``(P̂, P̂_c)`` per row: the fitted probabilities and those at equal length and position."""
    n, L = avail.shape
    log_len = None if fit.length_coef is None else np.log(np.maximum(np.nan_to_num(np.asarray(lengths, float), nan=1.0), 1.0))
    pos = None if fit.position_effect.size == 0 else np.clip(np.asarray(order, int), 0, L - 1)
    theta = list(fit.level_effect[1:])
    if fit.length_coef is not None:
        theta.append(fit.length_coef)
    if pos is not None:
        theta.extend(fit.position_effect[1:])
    X = _design(L, log_len, pos)
    P = _probs(X, np.asarray(theta, float), avail)
    Pc = _probs(np.broadcast_to(np.eye(L)[None], (n, L, L)).astype(float), fit.level_effect, avail)
    return P, Pc


# ----------------------------------------------------------------------------------- the interface

def prompt_credits(winners: Sequence, texts: Sequence[Sequence[str | None]] | None = None,
                   lengths: np.ndarray | None = None, levels: Sequence[str] = ("L0", "L1", "L2"),
                   control: bool = True, *, groups: np.ndarray | None = None, order: np.ndarray | None = None,
                   tasks: Sequence[str] | None = None, prompts: Sequence | None = None,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """``[n, L]`` credits per verdict (rows sum to 1; an invalid verdict is a row of NaN).

    ``texts[k][i]``: level i's answer to verdict k's prompt (``None`` = not answered) — gives both the
    identity groups and the lengths; or give ``lengths`` (``[n, L]`` words, NaN = not answered) and
    ``groups`` (:func:`identity_groups`) directly. ``control``: length- (and, where ``order`` is
    given, position-) controlled credits, fitted per task (``tasks``; default one task);
    ``prompts``: the prompt of each row (two passes of one prompt are one cluster).
    See the module docstring for the model.
    """
    return _credits(winners, texts, lengths, levels, control, groups, order, tasks, prompts, weights)[0]


def _credits(winners, texts, lengths, levels, control, groups, order, tasks, prompts, weights):
    levels = list(levels)
    n, L = len(winners), len(levels)
    if texts is not None:
        groups = identity_groups(texts) if groups is None else groups
        if lengths is None:
            lengths = np.array([[np.nan if t is None else word_count(t) for t in row] for row in texts], float)
    avail = np.ones((n, L), bool) if lengths is None else ~np.isnan(np.asarray(lengths, float))
    y = raw_credits(winners, levels, groups, avail)
    fits: dict[str, LogitFit] = {}
    if not control:
        return y, fits
    tasks_a = np.asarray(["all"] * n if tasks is None else [str(t) for t in tasks], dtype=object)
    out = y.copy()
    ok = ~np.isnan(y).any(axis=1)
    prompts_a = np.asarray(range(n) if prompts is None else prompts, dtype=object)
    for task in dict.fromkeys(tasks_a[ok]):
        m = ok & (tasks_a == task)
        if len(set(prompts_a[m].tolist())) < MIN_FIT_PROMPTS:
            continue
        fit = fit_logit(y[m], None if lengths is None else np.asarray(lengths, float)[m],
                        None if order is None else np.asarray(order)[m], avail[m],
                        None if weights is None else np.asarray(weights, float)[m],
                        None if prompts is None else np.asarray(prompts, dtype=object)[m])
        P, Pc = _fit_predictions(fit, None if lengths is None else np.asarray(lengths, float)[m],
                                 None if order is None else np.asarray(order)[m], avail[m])
        out[m] = y[m] - P + Pc
        fits[str(task)] = fit
    return out, fits


@dataclass
class LevelShare:
    """One level's share in one task, in % (``None`` = n/a: no valid verdict)."""

    raw_pct: float | None
    controlled_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    raw_ci_low_pct: float | None = None
    raw_ci_high_pct: float | None = None

    def to_dict(self) -> dict:
        return {"raw_pct": self.raw_pct, "controlled_pct": self.controlled_pct,
                "ci_low_pct": self.ci_low_pct, "ci_high_pct": self.ci_high_pct}


@dataclass
class TaskShares:
    """One task's estimate: ``n`` valid verdicts (prompts), ``ties`` verdicts whose credit was split
    (identical answers or a named tie), the length and position effects, and per-level shares."""

    task: str
    n: int
    ties: int
    invalid: int
    length_coef: float | None
    length_coef_se: float | None
    position_effect: list[float] | None
    position_se: list[float] | None
    levels: dict[str, LevelShare]

    def share(self, level: str, control: bool = True) -> float | None:
        s = self.levels[level]
        return s.controlled_pct if control else s.raw_pct

    def to_dict(self) -> dict:
        return {"n": self.n, "ties": self.ties, "length_coef": self.length_coef,
                "length_coef_se": self.length_coef_se,
                "levels": {lv: s.to_dict() for lv, s in self.levels.items()}}


@dataclass
class QualityEstimate:
    """Per task (and ``all`` pooled by prompt count) the raw and controlled shares of one judge.

    ``control``: which share the consumer should use (``controlled_pct`` when True, else ``raw_pct``;
    ``ci_*`` are the interval of that one). ``position_known``: the order shown was stored and modelled.
    """

    judge: str
    control: bool
    levels: list[str]
    tasks: dict[str, TaskShares] = field(default_factory=dict)
    position_known: bool = False
    length_unit: str = LENGTH_UNIT
    interval: str = INTERVAL_METHOD

    def shares(self, task: str, control: bool | None = None) -> dict[str, float | None]:
        """``{level: %}`` of ``task`` (the controlled or raw share per ``control``, default the estimate's)."""
        c = self.control if control is None else control
        return {lv: self.tasks[task].share(lv, c) for lv in self.levels}

    def fractions(self, tasks: Sequence[str], control: bool | None = None) -> np.ndarray:
        """``[T, L]`` shares as fractions (rows sum to 1) for ``tasks`` (NaN rows where a task is absent)."""
        out = np.full((len(tasks), len(self.levels)), np.nan)
        for k, t in enumerate(tasks):
            if t in self.tasks:
                s = self.shares(t, control)
                if all(v is not None for v in s.values()):
                    out[k] = np.array([s[lv] for lv in self.levels]) / 100.0
        return out

    def to_dict(self) -> dict:
        return {"judge": self.judge, "length_unit": "whitespace words",
                "tasks": {t: s.to_dict() for t, s in self.tasks.items()}}


def mean_share(y: np.ndarray, weights: np.ndarray | None = None,
               prompts: Sequence | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Share per level (fraction) of credits ``y [n, L]`` (valid rows only) and its standard error.

    ``weights``: per row (default 1; two passes of one prompt weigh ½ each); ``prompts``: the cluster of
    each row (default each row its own): the standard error is the prompt-clustered one.
    """
    y = np.asarray(y, float)
    n, L = y.shape
    w = np.ones(n) if weights is None else np.asarray(weights, float)
    W = w.sum()
    if n == 0 or W <= 0:
        return np.full(L, np.nan), np.full(L, np.nan)
    mean = (w[:, None] * y).sum(0) / W
    if prompts is None:
        inv = np.arange(n)
    else:
        _, inv = np.unique(np.asarray(prompts, dtype=object).astype(str), return_inverse=True)
    dev = np.zeros((inv.max() + 1, L))
    np.add.at(dev, inv, w[:, None] * (y - mean))
    return mean, np.sqrt((dev ** 2).sum(0)) / W


def interval_pct(share: float, se: float) -> tuple[float, float]:
    """The 95 % interval (in %) of a share (fraction) with standard error ``se``, clipped to [0, 100]."""
    return _clip_ci(100.0 * share, 100.0 * Z95 * se)


def _clip_ci(point: float, half: float) -> tuple[float, float]:
    return max(0.0, point - half), min(100.0, point + half)


def _task_shares(task, y, credits, fit, weights, prompts, levels, ties, invalid) -> TaskShares:
    L = len(levels)
    ok = ~np.isnan(y).any(axis=1)
    y, credits, w = y[ok], credits[ok], weights[ok]
    pr = np.asarray(prompts, dtype=object)[ok]
    n_prompts = len(set(pr.tolist()))
    if n_prompts == 0:
        none = {lv: LevelShare(None, None, None, None) for lv in levels}
        return TaskShares(task, 0, 0, invalid, None, None, None, None, none)
    raw, raw_se = mean_share(y, w, pr)
    ctrl = (w[:, None] * credits).sum(0) / w.sum() if fit is not None else raw
    if fit is not None:
        # delta method through P̂_c: d mean_p softmax_p(a) / d a_j (a_0 fixed), then J V_aa Jᵀ
        s = ctrl
        J = (np.diag(s) - np.outer(s, s))[:, 1:]
        Vaa = fit.cov[: L - 1, : L - 1]
        ctrl_se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, Vaa, J), 0.0))
    else:
        ctrl_se = raw_se
    out = {}
    for i, lv in enumerate(levels):
        r, c = 100.0 * raw[i], 100.0 * ctrl[i]
        lo, hi = _clip_ci(c, 100.0 * Z95 * ctrl_se[i])
        rlo, rhi = _clip_ci(r, 100.0 * Z95 * raw_se[i])
        out[lv] = LevelShare(float(r), float(c), float(lo), float(hi), float(rlo), float(rhi))
    pos = list(map(float, fit.position_effect)) if fit is not None and fit.position_effect.size else None
    pos_se = list(map(float, fit.position_se)) if pos is not None else None
    return TaskShares(task, n_prompts, ties, invalid, fit.length_coef if fit else None,
                      fit.length_coef_se if fit else None, pos, pos_se, out)


#: columns of a verdict table (see :func:`quality_estimate`)
VERDICT_TABLE_COLS = ("task", "prompt_id", "judge", "winner")


def quality_estimate(verdict_table: pd.DataFrame, judge: str, control: bool = True,
                     levels: Sequence[str] | None = None) -> QualityEstimate:
    """The one quality estimate of ``judge`` from a long verdict table.

    Columns: ``task``, ``prompt_id``, ``judge``, ``winner`` (a level, ``"tie"``, a tuple of levels, or
    None/``"invalid"``), optional ``valid`` (bool), ``words_<LEVEL>`` (answer length in whitespace words,
    NaN = not answered) and ``group_<LEVEL>`` (:func:`identity_groups`), optional ``order`` (the levels as
    shown, comma-separated, e.g. ``"L2,L0,L1"``; empty = unknown). Several rows of one prompt (two passes
    of a judge) are averaged: a pair that disagrees splits the credit (a tie). ``control=False`` skips
    the fit (paper mode); ``controlled_pct`` then equals ``raw_pct``.
    """
    v = verdict_table[verdict_table["judge"] == judge]
    if levels is None:
        levels = sorted({c[len("words_"):] for c in v.columns if c.startswith("words_")}
                        or {str(x) for x in v["winner"].dropna() if str(x).startswith("L")}, key=lambda s: (len(s), s))
    levels = list(levels)
    est = QualityEstimate(judge=judge, control=control, levels=levels)
    if v.empty:
        return est
    winners = list(v["winner"])
    if "valid" in v.columns:
        winners = [w if bool(ok) else None for w, ok in zip(winners, v["valid"])]
    winners = [None if (w is None or (isinstance(w, float) and np.isnan(w)) or (isinstance(w, str) and w in ("invalid", "")))
               else w for w in winners]
    lengths = None
    if all(f"words_{lv}" in v.columns for lv in levels):
        lengths = v[[f"words_{lv}" for lv in levels]].to_numpy(float)
    groups = v[[f"group_{lv}" for lv in levels]].to_numpy(np.int64) if all(f"group_{lv}" in v.columns for lv in levels) else None
    order = None
    if "order" in v.columns:
        orders = [str(o) if isinstance(o, str) else "" for o in v["order"]]
        if all(set(o.split(",")) >= set(levels) for o in orders if o) and all(orders):
            order = np.array([[o.split(",").index(lv) for lv in levels] for o in orders])
    est.position_known = order is not None
    prompts = [f"{t}\x00{p}" for t, p in zip(v["task"], v["prompt_id"])]
    # each prompt weighs 1, shared by its valid verdicts (two passes: ½ each; an invalid pass drops out)
    valid_pr = pd.Series([p for p, w in zip(prompts, winners) if w is not None])
    counts = pd.Series(prompts).map(valid_pr.value_counts()).fillna(1.0).to_numpy(float)
    weights = 1.0 / counts
    tasks = [str(t) for t in v["task"]]
    credits, fits = _credits(winners, None, lengths, levels, control, groups, order, tasks, prompts, weights)
    y = raw_credits(winners, levels, groups, None if lengths is None else ~np.isnan(lengths))
    # a prompt is a tie when its (pass-averaged) credit was split: identical answers, a named tie, or
    # two passes that disagree
    pr_a = np.asarray(prompts, dtype=object)
    yy = pd.DataFrame(np.where(np.isnan(y), np.nan, y * weights[:, None])).groupby(pr_a).sum(min_count=1)
    tie_prompt = (yy.max(axis=1) < 1.0 - 1e-9).reindex(pr_a).to_numpy()
    tasks_a = np.asarray(tasks, dtype=object)
    invalid_rows = np.isnan(y).any(axis=1)
    for task in sorted(dict.fromkeys(tasks)):
        m = tasks_a == task
        est.tasks[task] = _task_shares(task, y[m], credits[m], fits.get(task), weights[m], np.asarray(prompts, dtype=object)[m],
                                       levels, len(set(pr_a[m & tie_prompt].tolist())), int(invalid_rows[m].sum()))
    return est


def relative_to_baseline(shares: Mapping[str, float | None], levels: Sequence[str]) -> dict[str, float | None]:
    """The one baseline rule: each level's share ÷ the first level's (L0, the always-L0 baseline the floor θ and
    "quality kept" use); ``None`` when the baseline's share is 0 or unknown. (Before issue 21.2 the win-share
    summary divided by the *largest* share instead; the app's quality figures divide by L0's.)"""
    levels = list(levels)
    base = shares.get(levels[0]) if levels else None
    if base is None or not base > 0:
        return {lv: None for lv in levels}
    return {lv: (None if shares.get(lv) is None else shares[lv] / base) for lv in levels}


def pooled_task(est: QualityEstimate, name: str = "all") -> TaskShares:
    """Every task of ``est`` pooled, weighted by its prompts ``n`` (tasks are independent samples: the
    standard errors add in quadrature). Length and position coefficients are per task: ``None`` here."""
    ts = [t for t in est.tasks.values() if t.n > 0]
    N = sum(t.n for t in ts)
    if N == 0:
        none = {lv: LevelShare(None, None, None, None) for lv in est.levels}
        return TaskShares(name, 0, 0, sum(t.invalid for t in est.tasks.values()), None, None, None, None, none)
    out = {}
    for lv in est.levels:
        vals = {}
        for kind in ("raw", "controlled"):
            pt = sum(t.n * getattr(t.levels[lv], f"{kind}_pct") for t in ts) / N
            lo_key, hi_key = ("raw_ci_low_pct", "raw_ci_high_pct") if kind == "raw" else ("ci_low_pct", "ci_high_pct")
            # back out each task's se from its (unclipped where possible) half-width
            var = sum((t.n / N) ** 2 * ((getattr(t.levels[lv], hi_key) - getattr(t.levels[lv], lo_key)) / (2 * Z95)) ** 2
                      for t in ts)
            vals[kind] = (pt, *_clip_ci(pt, Z95 * var ** 0.5))
        out[lv] = LevelShare(vals["raw"][0], vals["controlled"][0], vals["controlled"][1], vals["controlled"][2],
                             vals["raw"][1], vals["raw"][2])
    return TaskShares(name, N, sum(t.ties for t in ts), sum(t.invalid for t in est.tasks.values()), None, None,
                      None, None, out)


def pooled(est: QualityEstimate, weights: Mapping[str, float] | None = None, control: bool | None = None) -> dict[str, float | None]:
    """Shares (%) pooled over tasks, weighted by ``weights`` (default each task's ``n``)."""
    tot: dict[str, float] = {lv: 0.0 for lv in est.levels}
    W = 0.0
    for t, s in est.tasks.items():
        w = float(weights.get(t, 0.0)) if weights is not None else float(s.n)
        sh = est.shares(t, control)
        if w <= 0 or any(x is None for x in sh.values()):
            continue
        W += w
        for lv in est.levels:
            tot[lv] += w * sh[lv]
    return {lv: (tot[lv] / W if W > 0 else None) for lv in est.levels}
