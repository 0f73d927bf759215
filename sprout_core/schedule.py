"""When the offline evaluator runs: the carbon-aware schedule of the Sprout paper, streaming and vectorised.

The evaluator (generate judged prompts at every level, have a judge pick the best) refreshes the q the
optimizer uses. It should run when the grid is clean, but not too rarely. Rules at hour ``t``
(``t_last`` = the last run; the first hour always runs):

1. ``t − t_last ≥ force_h`` → run (forced);
2. the gap rule: ``t − t_last < min_gap_h`` (``gap_rule="at-least"``, the default) or
   ``t − t_last ≤ min_gap_h`` (``"more-than"``, the authors' code) → no run;
3. else run iff ``CI(t) ≤`` a reference mean (``mean_rule="trailing"``: the mean of the previous
   ``trailing_h`` hours, past only — the default; ``"window"``: the mean of the whole replay window, as in
   the authors' code, which looks ahead) **and** the decay-inflated ``c(τ) = CI(τ)·e^{decay·(τ − t_last)}``
   has just passed a local minimum: ``c(t−1) − c(t−2) ≤ 0`` and ``c(t) − c(t−1) ≥ 0``.

:class:`EvaluatorSchedule` takes one hour at a time (it can only see the past, except the window mean
when that rule is chosen, which must then be given); :func:`evaluator_refreshes` computes the same
decisions for a whole window at once.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from sprout_core.errors import InputError

GAP_RULES = ("at-least", "more-than")
MEAN_RULES = ("trailing", "window")


@dataclass(frozen=True)
class ScheduleParams:
    """When the offline evaluator refreshes q (hours; decay per hour)."""

    force_h: int = 72          #: refresh whenever this many hours have passed since the last run
    min_gap_h: int = 6         #: never refresh within this many hours of the last run (see gap_rule)
    decay_per_h: float = 0.029  #: c(τ) = CI(τ) / exp(−decay · (τ − t_last))
    trailing_h: int = 24       #: hours (past only) in the trailing mean CI(t) is compared with
    gap_rule: str = "at-least"  #: "at-least": gap ≥ min_gap_h allows a run; "more-than": gap > min_gap_h
    mean_rule: str = "trailing"  #: "trailing" (past hours only) or "window" (the whole window's mean)

    def __post_init__(self) -> None:
        if self.gap_rule not in GAP_RULES:
            raise InputError(f"gap_rule must be one of {GAP_RULES}, not {self.gap_rule!r}")
        if self.mean_rule not in MEAN_RULES:
            raise InputError(f"mean_rule must be one of {MEAN_RULES}, not {self.mean_rule!r}")
        for name in ("force_h", "min_gap_h", "trailing_h"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < (1 if name == "force_h" else 0):
                raise InputError(f"{name} must be a whole number of hours ≥ {1 if name == 'force_h' else 0}, got {v!r}")
        if not (np.isfinite(self.decay_per_h) and 0 <= self.decay_per_h <= 10):
            raise InputError(f"decay_per_h must be a number in [0, 10], got {self.decay_per_h!r}")

    @property
    def first_allowed_gap(self) -> int:
        """The smallest gap (hours since the last run) at which a clean hour may trigger a run."""
        return self.min_gap_h + (1 if self.gap_rule == "more-than" else 0)


#: The authors' schedule (``sprout/system/utils.py: OfflineAssessor``): gap > 6 h, the window's mean CI.
PAPER_SCHEDULE = ScheduleParams(gap_rule="more-than", mean_rule="window")


class EvaluatorSchedule:
    """Streaming evaluator schedule: :meth:`step` gets one hour's CI at a time and sees only the past
    (plus ``window_mean`` when ``mean_rule="window"``).

    ``history``: CI values of hours before the first :meth:`step` (for the trailing mean), oldest first.
    """

    def __init__(self, params: ScheduleParams | None = None, history: Iterable[float] = (),
                 window_mean: float | None = None):
        self.p = params or ScheduleParams()
        if self.p.mean_rule == "window" and window_mean is None:
            raise InputError("the window-mean rule needs the window's mean CI (window_mean)")
        self.window_mean = window_mean
        self._k = math.exp(self.p.decay_per_h)  # c(τ)/c(τ−1) = CI(τ)/CI(τ−1) · e^decay
        self._win: deque[float] = deque()       # the last trailing_h CI values (past hours only)
        self._sum = 0.0
        self._prev2 = self._prev1 = None        # CI(t−2), CI(t−1)
        for v in history:
            self._remember(float(v))
        self.t = 0
        self.t_last: int | None = None
        self.runs: list[int] = []
        self.reasons: list[str] = []

    def _remember(self, v: float) -> None:
        if self.p.trailing_h > 0:
            self._win.append(v)
            self._sum += v
            if len(self._win) > self.p.trailing_h:
                self._sum -= self._win.popleft()
        self._prev2, self._prev1 = self._prev1, v

    def _reference_mean(self) -> float | None:
        if self.p.mean_rule == "window":
            return self.window_mean
        return self._sum / len(self._win) if self._win else None

    def step(self, ci_t: float) -> bool:
        """Advance one hour with CI(t) (g/kWh); return True when the evaluator runs at this hour."""
        p, t = self.p, self.t
        ci_t = float(ci_t)
        run, why = False, ""
        if self.t_last is None or t - self.t_last >= p.force_h:
            run, why = True, "forced"
        elif t - self.t_last >= p.first_allowed_gap and self._prev2 is not None:
            ref = self._reference_mean()
            if ref is not None and ci_t <= ref:
                # c(t−1) − c(t−2) ≤ 0 and c(t) − c(t−1) ≥ 0, with c(τ) = CI(τ)·e^{decay·(τ − t_last)};
                # dividing by the positive factor e^{decay·(t−2−t_last)} leaves this exact test:
                k = self._k
                if self._prev1 * k <= self._prev2 and ci_t * k >= self._prev1:
                    run, why = True, "local minimum"
        if run:
            self.t_last = t
            self.runs.append(t)
            self.reasons.append(why)
        self._remember(ci_t)
        self.t += 1
        return run


def evaluator_refreshes(ci: Sequence[float], params: ScheduleParams | None = None,
                        history: Iterable[float] = ()) -> np.ndarray:
    """Refresh mask ``[H]`` for a window — the same decisions as feeding :class:`EvaluatorSchedule` hour by
    hour (with ``window_mean`` = the mean of ``ci`` under the window rule), computed fast.

    Both refresh conditions at hour t use only CI(t−2), CI(t−1), CI(t) and the reference mean, and neither
    depends on ``t_last`` once the common factor e^{decay·(τ − t_last)} is divided out, so they are
    evaluated for all hours at once; a short loop then walks from one run to the next (the first candidate
    at or after the first allowed gap, or the forced hour).
    """
    p = params or ScheduleParams()
    ci = np.asarray(ci, dtype=float)
    H = ci.shape[0]
    mask = np.zeros(H, dtype=bool)
    if H == 0:
        return mask
    hist = np.asarray(list(history), dtype=float)
    full = np.concatenate([hist, ci])
    idx = np.arange(len(hist), len(full))
    if p.mean_rule == "window":
        below = ci <= float(ci.mean())
    elif p.trailing_h > 0:
        cs = np.concatenate([[0.0], np.cumsum(full)])
        lo = np.maximum(0, idx - p.trailing_h)
        cnt = idx - lo
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (cs[idx] - cs[lo]) / np.where(cnt > 0, cnt, 1)
        below = (cnt > 0) & (ci <= mean)
    else:
        below = np.zeros(H, dtype=bool)
    k = math.exp(p.decay_per_h)
    ok2 = idx >= 2
    prev1 = np.where(idx >= 1, full[np.maximum(idx - 1, 0)], np.nan)
    prev2 = np.where(ok2, full[np.maximum(idx - 2, 0)], np.nan)
    with np.errstate(invalid="ignore"):
        local_min = ok2 & (prev1 * k <= prev2) & (ci * k >= prev1)
    cand = np.flatnonzero(below & local_min)
    gap = max(1, int(p.first_allowed_gap))
    t = 0
    while t < H:
        mask[t] = True
        j = int(np.searchsorted(cand, t + gap))
        nxt = int(cand[j]) if j < len(cand) else H + int(p.force_h)
        t = min(nxt, t + max(1, int(p.force_h)))
    return mask
