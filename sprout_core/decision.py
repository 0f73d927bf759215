"""One hour's decision for a profile: what the Optimizer page and ``python -m sprout_core optimize`` show.

The profile gives per-task energy, time and win shares (with the number of verdicts behind them); the
task mix weighs them; the hour's requests (``requests_per_hour``) set how much its realised quality can
scatter. With ``confidence`` c > 0.5 the decision keeps the floor with probability c
(:func:`sprout_core.optimizer.solve`) and reports the quality's interval.
"""
from __future__ import annotations

import numpy as np

from sprout_core import optimizer as opt
from sprout_core import quality as qmod
from sprout_core.errors import InputError
from sprout_core.profiles import Profile
from sprout_core.workload import DEFAULT_REQUESTS_PER_HOUR


def default_requests_per_hour(profile: Profile) -> float:
    """Requests per hour when the user gives none: the task-mix trace's mean hourly job count, else 1,000."""
    if profile.task_trace is not None and len(profile.task_trace):
        return float(np.mean(profile.task_trace)) * len(profile.tasks)
    return DEFAULT_REQUESTS_PER_HOUR


def hour_decision(profile: Profile, ci: float, theta: float, weights: np.ndarray | None = None,
                  confidence: float = 0.5, requests_per_hour: float | None = None, solver: str = "exact",
                  pue: float = 1.0) -> opt.Decision:
    """The decision for one hour at carbon intensity ``ci`` (g/kWh), ``pue`` (scales the operational part)
    and floor ``theta`` (fraction of always-L0 quality), under task ``weights`` (default: equal)."""
    w = profile.default_weights() if weights is None else np.asarray(weights, dtype=float)
    n = default_requests_per_hour(profile) if requests_per_hour is None else float(requests_per_hour)
    if not (np.isfinite(n) and n > 0):
        raise InputError(f"requests per hour must be a number > 0, got {requests_per_hour!r}")
    e, t, q = profile.under_mix(w)
    _, cov = qmod.promise_inputs(profile.q, profile.n_judged, w, n)
    return opt.decide(e, t, q, float(ci), profile.k_emb, float(theta), profile.levels, solver=solver, cov=cov,
                      confidence=confidence, pue=pue)
