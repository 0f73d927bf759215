"""Aggregation of verdicts: raw win shares q per level (and task) with 95 % intervals, agreement.

q_i = share of prompts on which level i won, among valid verdicts (invalid verdicts are excluded
and counted); the formula and its interval live in :mod:`sprout_core.evaluate.shares` (the one
quality estimate, which also gives the length-controlled shares). Normalised quality = q_i / q_L0 (the one baseline rule,
:func:`sprout_core.evaluate.shares.relative_to_baseline`). Agreement of
two judges on the same prompts: % agreement and Cohen's kappa.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np


@dataclass
class WinShares:
    """Win shares of one task (or all tasks) under one judge.

    ``share[level]``: fraction of valid verdicts won by the level (0–1); ``ci[level]``: 95 % (delta method)
    interval (low, high) of that fraction; ``normalised[level]``: share ÷ the first level's (L0's) share
    (:func:`~sprout_core.evaluate.shares.relative_to_baseline`, the app's one baseline rule).
    ``n_valid``/``n_invalid``: verdicts counted / excluded.
    """

    task: str
    judge: str
    levels: list[str]
    n_valid: int
    n_invalid: int
    wins: dict[str, int]
    share: dict[str, float | None]
    ci: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    normalised: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "task": self.task, "judge": self.judge, "levels": self.levels, "n_valid": self.n_valid,
            "n_invalid": self.n_invalid, "wins": self.wins, "share": self.share,
            "ci95": {k: (list(v) if v else None) for k, v in self.ci.items()}, "normalised": self.normalised,
        }


def win_shares(winners: Sequence[str | None], levels: Sequence[str], task: str = "all", judge: str = "") -> WinShares:
    """Raw win shares of ``levels`` from a list of winners (``None`` = invalid), with 95 % intervals.

    The share and its interval come from :mod:`sprout_core.evaluate.shares` (the one formula: credits
    :func:`~sprout_core.evaluate.shares.raw_credits`, mean and delta-method interval
    :func:`~sprout_core.evaluate.shares.mean_share`). A winner outside ``levels`` keeps its mass (the
    shares then sum to less than 1). With no valid verdict every share is ``None`` (n/a).
    """
    from sprout_core.evaluate.shares import interval_pct, mean_share, raw_credits, relative_to_baseline

    levels = list(levels)
    valid = [w for w in winners if w is not None]
    n_invalid = len(winners) - len(valid)
    counts = Counter(valid)
    wins = {lv: int(counts.get(lv, 0)) for lv in levels}
    n = len(valid)
    if n == 0:
        none = {lv: None for lv in levels}
        return WinShares(task, judge, levels, 0, n_invalid, wins, dict(none), dict(none), dict(none))
    y = np.nan_to_num(raw_credits(valid, levels))  # a winner outside ``levels``: a row of zeros
    mean, se = mean_share(y)
    share = {lv: float(mean[j]) for j, lv in enumerate(levels)}
    ci = {lv: tuple(x / 100.0 for x in interval_pct(mean[j], se[j])) for j, lv in enumerate(levels)}
    return WinShares(task, judge, levels, n, n_invalid, wins, share, ci, relative_to_baseline(share, levels))


def win_shares_by_task(rows: Iterable[tuple[str, str | None]], levels: Sequence[str], judge: str = "",
                       include_all: bool = True) -> dict[str, WinShares]:
    """Per-task win shares from ``(task, winner)`` rows; key ``"all"`` pools every task."""
    by_task: dict[str, list[str | None]] = defaultdict(list)
    pooled: list[str | None] = []
    for task, winner in rows:
        by_task[task].append(winner)
        pooled.append(winner)
    out = {t: win_shares(ws, levels, t, judge) for t, ws in sorted(by_task.items())}
    if include_all:
        out["all"] = win_shares(pooled, levels, "all", judge)
    return out


@dataclass
class Agreement:
    """Agreement of judges A and B on the prompts both judged validly.

    ``percent``: share of those prompts with the same winner, in % (``None`` when none).
    ``kappa``: Cohen's kappa (``None`` when undefined: no prompts, or chance agreement is 1).
    """

    judge_a: str
    judge_b: str
    n: int
    agree: int
    percent: float | None
    kappa: float | None

    def to_dict(self) -> dict:
        return {"judge_a": self.judge_a, "judge_b": self.judge_b, "n": self.n, "agree": self.agree,
                "percent": self.percent, "kappa": self.kappa}


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two equal-length label lists; ``None`` when empty or chance agreement is 1."""
    if len(a) != len(b):
        raise ValueError("label lists differ in length")
    n = len(a)
    if n == 0:
        return None
    po = sum(1 for x, y in zip(a, b) if x == y) / n
    ca, cb = Counter(a), Counter(b)
    pe = sum(ca[k] * cb.get(k, 0) for k in ca) / (n * n)
    if pe >= 1.0:
        return None
    return (po - pe) / (1 - pe)


def agreement(a: Mapping[Hashable, str | None], b: Mapping[Hashable, str | None], judge_a: str = "A",
              judge_b: str = "B") -> Agreement:
    """Agreement of two judges' winners keyed by prompt; keys missing or invalid in either are skipped."""
    keys = [k for k in a if k in b and a[k] is not None and b[k] is not None]
    la = [a[k] for k in keys]
    lb = [b[k] for k in keys]
    same = sum(1 for x, y in zip(la, lb) if x == y)
    pct = 100.0 * same / len(keys) if keys else None
    return Agreement(judge_a, judge_b, len(keys), same, pct, cohen_kappa(la, lb) if keys else None)


def agreement_matrix(verdicts: Mapping[str, Mapping[Hashable, str | None]]) -> dict[tuple[str, str], Agreement]:
    """Pairwise :func:`agreement` for every pair of judges (including each with itself)."""
    names = list(verdicts)
    return {(x, y): agreement(verdicts[x], verdicts[y], x, y) for x in names for y in names}
