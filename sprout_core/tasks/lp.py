"""Per-task directive optimizer: one mix of directive levels per (predicted) task.

The pooled Sprout LP serves one mix ``x_i`` to every request. Here each task ``t`` gets its own
mix ``x_{t,i}`` (share of task ``t``'s requests served with level ``i``)::

    minimise   Σ_t w_t Σ_i x_{t,i} · c_{t,i}            c_{t,i} = e_{t,i}·CI + k_emb·t_{t,i}   [g/request]
    subject to Σ_i x_{t,i} = 1                for every task t
               Σ_t w_t Σ_i q_{t,i} x_{t,i} ≥ R   R = the Sprout LP's right-hand side (pooled q_0)
               x ≥ 0

with ``w_t`` the task shares (sum 1), ``e`` in kWh/request, ``CI`` in g/kWh, ``k_emb`` in g/s,
``t`` in s/request and ``q_{t,i}`` the share of task ``t``'s judged prompts whose best answer came
from level ``i``.

Misclassification: the policy can only act on the *predicted* task ``p``. With the classifier's
held-out confusion matrix ``C[t, p]`` (row-stochastic: the probability that a request of true task
``t`` is predicted ``p``), a request of true task ``t`` receives mix ``x_p`` with probability
``C[t, p]``. Expected cost and quality are then linear in ``x_{p,i}`` with aggregated coefficients::

    W_p       = Σ_t w_t C[t,p]                       (share of requests predicted p)
    c̃_{p,i}   = Σ_t w_t C[t,p] c_{t,i} / W_p         (mean true cost of requests predicted p)
    q̃_{p,i}   = Σ_t w_t C[t,p] q_{t,i} / W_p         (mean true quality of requests predicted p)

so :func:`aggregate_through_confusion` turns the problem into the same per-task LP over predicted
tasks, and the quality it promises is what the true tasks deliver (in expectation, when the
deployed classifier behaves like its held-out confusion matrix). With ``C = I`` it is the plain
per-task LP; the pooled LP is the special case where every task must share one mix.

Two solvers:

* :func:`solve_per_task_pulp`: PuLP/CBC, for single decisions and as the reference;
* :func:`solve_per_task_exact`: exact and vectorised over many hours. The problem is the LP
  relaxation of a multiple-choice knapsack with one coupling constraint; its Lagrangian
  ``Σ_t W_t min_i (c_{t,i} − λ q_{t,i})`` changes its minimisers only at the pairwise slopes
  ``λ = Δc/Δq``. The solver evaluates the Lagrangian choice strictly inside every interval between
  consecutive slopes (so there are no ties), finds the first interval whose quality meets ``R``
  and mixes it with the previous interval's choice, which is optimal by LP duality (both
  minimise the Lagrangian at the shared breakpoint and the mix meets ``R`` with equality).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linprog

from sprout_core import quality as qmod
from sprout_core.carbon import grams_per_request, saving_pct
from sprout_core.optimizer import cost_per_request, theta_from_xi

#: Quality slack (absolute, in win-share units) below which the constraint counts as met.
QUALITY_TOL = 1e-12


def cost_g_per_request(energy_kwh: np.ndarray, time_s: np.ndarray, ci_g_per_kwh, k_emb_g_per_s: float,
                       pue: float = 1.0) -> np.ndarray:
    """Carbon per request in g (:func:`sprout_core.optimizer.cost_per_request`, ``pue`` scaling the operational
    part) with the CI axes *leading*: ``ci [...]`` × ``energy [T, L]`` → ``[..., T, L]``."""
    ci = np.asarray(ci_g_per_kwh, dtype=float)
    e = np.asarray(energy_kwh, dtype=float)
    return cost_per_request(e, np.asarray(time_s, dtype=float), ci.reshape(ci.shape + (1,) * max(e.ndim, 1)),
                            k_emb_g_per_s, pue)


def sprout_quality_target(q0, ci_g_per_kwh, ci_min: float, ci_max: float, xi: float = 0.1):
    """The Sprout LP's right-hand side ``θ(CI)·q_0`` (win share), θ from :func:`sprout_core.optimizer.theta_from_xi`."""
    return np.asarray(theta_from_xi(ci_g_per_kwh, ci_min, ci_max, xi)) * np.asarray(q0, dtype=float)


def normalize_confusion(counts: np.ndarray) -> np.ndarray:
    """Row-normalise a confusion matrix ``[true, pred]``; a row without samples becomes the identity row."""
    c = np.asarray(counts, dtype=float)
    rows = c.sum(axis=1, keepdims=True)
    eye = np.eye(c.shape[0], c.shape[1])
    return np.where(rows > 0, c / np.where(rows > 0, rows, 1.0), eye)


def conditional_from_confusion(confusion: np.ndarray, n_levels: int) -> np.ndarray:
    """``P(pred = p | true t, best level i)`` ``[T, L, P]`` when the prediction ignores the best level."""
    C = np.asarray(confusion, dtype=float)
    return np.broadcast_to(C[:, None, :], (C.shape[0], n_levels, C.shape[1])).copy()


def _p_given_t(q: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``P(p | t) = Σ_i q_{t,i} P(p | t, i) / Σ_i q_{t,i}`` ``[..., T, P]``."""
    tot = q.sum(axis=-1)[..., None]
    return np.einsum("...tl,tlp->...tp", q, K) / np.where(tot > 0, tot, 1.0)


def aggregate_through_confusion(weights: np.ndarray, cost: np.ndarray, quality: np.ndarray, confusion: np.ndarray | None):
    """Coefficients of the LP over predicted tasks (see module docstring).

    ``weights`` ``[..., T]`` true-task shares; ``cost`` and ``quality`` ``[..., T, L]`` per true task;
    ``confusion`` either ``C[t, p]`` ``[T, P]`` (row-stochastic; prediction independent of which level
    would win) or ``P(p | t, i)`` ``[T, L, P]`` (prediction may depend on the prompt's best level
    ``i``, as measured on judged held-out prompts); ``None`` = perfect classifier.

    Returns ``(W_p [..., P], cost_p [..., P, L], quality_p [..., P, L])`` with
    ``W_p = Σ_t w_t P(p|t)``, ``cost_p = Σ_t w_t P(p|t) c_t / W_p`` and
    ``quality_p[i] = Σ_t w_t q_{t,i} P(p|t,i) / W_p``, ``P(p|t) = Σ_i q_{t,i} P(p|t,i)``. A predicted
    task no request reaches (``W_p = 0``) gets the mix-weighted mean coefficients and no weight.
    """
    w = np.asarray(weights, dtype=float)
    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float)
    if confusion is None:
        return w, c, q
    K = np.asarray(confusion, dtype=float)
    T, L = c.shape[-2:]
    if K.ndim == 2:
        K = conditional_from_confusion(K, L)
    if K.ndim != 3 or K.shape[:2] != (T, L):
        raise ValueError(f"confusion must be [tasks, predicted] or [tasks, levels, predicted]; got {K.shape} "
                         f"for {T} tasks and {L} levels")
    p_given_t = _p_given_t(q, K)                              # [..., T, P]
    joint = w[..., :, None] * p_given_t                       # [..., T, P]
    Wp = joint.sum(axis=-2)                                   # [..., P]
    num_c = np.einsum("...tp,...tl->...pl", joint, c)
    num_q = np.einsum("...t,...tl,tlp->...pl", w, q, K)
    wsum = w.sum(axis=-1)[..., None, None]
    fallback_c = np.einsum("...t,...tl->...l", w, c)[..., None, :] / wsum
    fallback_q = np.einsum("...t,...tl->...l", w, q)[..., None, :] / wsum
    safe = Wp[..., :, None] > 1e-15
    denom = np.where(safe, Wp[..., :, None], 1.0)
    cp = np.where(safe, num_c / denom, fallback_c)
    qp = np.where(safe, num_q / denom, fallback_q)
    return np.where(safe[..., 0], Wp, 0.0), cp, qp


def delivered_on_true_tasks(x: np.ndarray, weights: np.ndarray, cost: np.ndarray, quality: np.ndarray,
                            confusion: np.ndarray | None):
    """What a per-predicted-task policy ``x`` ``[..., P, L]`` delivers on the true tasks.

    Returns ``(g/request, win share, served [..., T, L])``: expected carbon per request, expected share
    of requests served at their best level, and the level shares each true task receives.
    ``confusion`` as in :func:`aggregate_through_confusion` (``None`` = labels are known).
    """
    x = np.asarray(x, dtype=float)
    w = np.asarray(weights, dtype=float)
    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float)
    T, L = c.shape[-2:]
    if confusion is None:
        K = conditional_from_confusion(np.eye(T), L)
    else:
        K = np.asarray(confusion, dtype=float)
        if K.ndim == 2:
            K = conditional_from_confusion(K, L)
    p_given_t = _p_given_t(q, K)
    served = np.einsum("...tp,...pl->...tl", p_given_t, x)
    carbon = np.einsum("...t,...tl,...tl->...", w, served, c)
    win = np.einsum("...t,...tl,tlp,...pl->...", w, q, K, x)
    return carbon, win, served


@dataclass(frozen=True)
class PerTaskSolution:
    """One per-task decision.

    ``x`` is ``[tasks, levels]`` (rows sum to 1). ``cost_g_per_request`` is the expected carbon of
    one request (g, with the coefficients given to the solver), ``quality`` the expected win share
    Σ_t W_t Σ_i q_{t,i} x_{t,i}, ``target`` the right-hand side R, ``binding`` ``"quality"`` when the
    constraint is active or ``"none"`` when the cheapest mix already meets it, ``status``
    ``"optimal"`` or ``"infeasible"`` (then ``x`` is the highest-quality mix and ``max_quality``
    the largest reachable win share).
    """

    x: np.ndarray
    cost_g_per_request: float
    quality: float
    target: float
    binding: str
    status: str
    max_quality: float


@dataclass(frozen=True)
class PerTaskSweep:
    """Exact solutions for many instances at once (leading shape ``[H]``).

    ``x`` ``[H, tasks, levels]``; ``cost_g_per_request``, ``quality``, ``target``, ``max_quality``
    ``[H]``; ``feasible`` and ``binding`` (True when the quality constraint is active) ``[H]`` bool.
    """

    x: np.ndarray
    cost_g_per_request: np.ndarray
    quality: np.ndarray
    target: np.ndarray
    feasible: np.ndarray
    binding: np.ndarray
    max_quality: np.ndarray

    def at(self, h: int) -> PerTaskSolution:
        """The ``h``-th instance as a :class:`PerTaskSolution`."""
        return PerTaskSolution(
            x=self.x[h],
            cost_g_per_request=float(self.cost_g_per_request[h]),
            quality=float(self.quality[h]),
            target=float(self.target[h]),
            binding="quality" if self.binding[h] else "none",
            status="optimal" if self.feasible[h] else "infeasible",
            max_quality=float(self.max_quality[h]),
        )


def _check(cost: np.ndarray, quality: np.ndarray, weights: np.ndarray) -> None:
    if cost.shape[-2:] != quality.shape[-2:]:
        raise ValueError(f"cost {cost.shape} and quality {quality.shape} must both end in [tasks, levels]")
    if weights.shape[-1] != cost.shape[-2]:
        raise ValueError(f"weights {weights.shape} must end in the number of tasks {cost.shape[-2]}")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise ValueError("task weights must be finite and ≥ 0")
    if not (np.all(np.isfinite(cost)) and np.all(np.isfinite(quality))):
        raise ValueError("cost and quality must be finite")


def solve_per_task_exact(cost, quality, weights, target) -> PerTaskSweep:
    """Exact per-task LP for ``H`` instances at once (see module docstring for the method).

    ``cost`` ``[H, T, L]`` g/request, ``quality`` ``[H, T, L]`` or ``[T, L]`` win shares,
    ``weights`` ``[H, T]`` or ``[T]`` task shares, ``target`` ``[H]`` or scalar R. Unbatched
    inputs (``cost`` ``[T, L]``) give ``H = 1``.
    """
    c = np.asarray(cost, dtype=float)
    if c.ndim == 2:
        c = c[None]
    H, T, L = c.shape
    q = np.broadcast_to(np.asarray(quality, dtype=float), (H, T, L))
    w = np.broadcast_to(np.asarray(weights, dtype=float), (H, T))
    R = np.broadcast_to(np.asarray(target, dtype=float), (H,))
    _check(c, q, w)

    # Pairwise breakpoints λ = Δc/Δq (only positive, finite, for tasks that carry weight).
    ii, jj = np.triu_indices(L, k=1)
    dq = q[..., jj] - q[..., ii]  # [H, T, P]
    dc = c[..., jj] - c[..., ii]
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.where(dq != 0, dc / np.where(dq != 0, dq, 1.0), np.inf)
    lam = np.where((lam > 0) & np.isfinite(lam) & (w[..., None] > 0), lam, np.inf).reshape(H, -1)
    b = np.sort(lam, axis=1)  # [H, K]
    finite = np.isfinite(b)
    top = np.where(finite, b, 0.0).max(axis=1, keepdims=True)
    big = 2.0 * top + 1.0
    b = np.where(finite, b, big)
    lo = np.concatenate([np.zeros((H, 1)), b], axis=1)  # [H, K+1]
    hi = np.concatenate([b, 2.0 * big], axis=1)
    rep = 0.5 * (lo + hi)  # strictly inside each interval (or above every breakpoint)

    # Lagrangian choice per interval and task: argmin_i c − λ q (unique inside an interval).
    score = c[:, None, :, :] - rep[:, :, None, None] * q[:, None, :, :]  # [H, K+1, T, L]
    choice = np.argmin(score, axis=-1)  # [H, K+1, T]
    q_ch = np.take_along_axis(np.broadcast_to(q[:, None], score.shape), choice[..., None], axis=-1)[..., 0]
    c_ch = np.take_along_axis(np.broadcast_to(c[:, None], score.shape), choice[..., None], axis=-1)[..., 0]
    Qk = np.einsum("hkt,ht->hk", q_ch, w)  # nondecreasing in k
    Ck = np.einsum("hkt,ht->hk", c_ch, w)

    max_quality = (w * q.max(axis=-1)).sum(axis=-1)
    meets = Qk >= R[:, None] - QUALITY_TOL
    feasible = meets[:, -1]  # the last interval serves each task its highest-quality level
    kstar = np.where(meets.any(axis=1), np.argmax(meets, axis=1), Qk.shape[1] - 1)
    prev = np.maximum(kstar - 1, 0)
    rows = np.arange(H)
    q_hi, q_lo = Qk[rows, kstar], Qk[rows, prev]
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where((kstar > 0) & (q_hi > q_lo), (R - q_lo) / (q_hi - q_lo), 1.0)
    f = np.where(feasible, np.clip(f, 0.0, 1.0), 1.0)
    onehot = np.eye(L)
    x = (1.0 - f)[:, None, None] * onehot[choice[rows, prev]] + f[:, None, None] * onehot[choice[rows, kstar]]
    cost_opt = (1.0 - f) * Ck[rows, prev] + f * Ck[rows, kstar]
    quality_opt = (1.0 - f) * q_lo + f * q_hi
    binding = feasible & (kstar > 0)
    return PerTaskSweep(
        x=x,
        cost_g_per_request=cost_opt,
        quality=quality_opt,
        target=R.copy(),
        feasible=feasible,
        binding=binding,
        max_quality=max_quality,
    )


def solve_per_task_pulp(cost, quality, weights, target: float, shared_mix: bool = False) -> PerTaskSolution:
    """The per-task LP for one instance with PuLP/CBC (``cost``, ``quality`` ``[T, L]``; ``weights`` ``[T]``).

    ``shared_mix=True`` forces every task to use the same mix (the pooled Sprout LP written over
    tasks), which is handy to compare both on equal terms.
    """
    import pulp

    c = np.asarray(cost, dtype=float)
    q = np.asarray(quality, dtype=float)
    w = np.asarray(weights, dtype=float)
    _check(c, q, w)
    T, L = c.shape
    max_quality = float((w * q.max(axis=1)).sum())
    if max_quality < target - QUALITY_TOL:
        x = np.eye(L)[np.argmax(q - 1e-12 * c, axis=1)]
        if shared_mix:
            pooled = w @ q
            x = np.tile(np.eye(L)[int(np.argmax(pooled))], (T, 1))
        return PerTaskSolution(x, float((w[:, None] * c * x).sum()), float((w[:, None] * q * x).sum()),
                               float(target), "quality", "infeasible", max_quality)
    with warnings.catch_warnings():  # PuLP 3.x announces 4.0 API changes; these calls work in both
        warnings.simplefilter("ignore", DeprecationWarning)
        prob = pulp.LpProblem("sprout_per_task", pulp.LpMinimize)
        if hasattr(prob, "add_variable"):
            xv = [[prob.add_variable(f"x_{t}_{i}", lowBound=0) for i in range(L)] for t in range(T)]
        else:
            xv = [[pulp.LpVariable(f"x_{t}_{i}", lowBound=0) for i in range(L)] for t in range(T)]
        prob += pulp.lpSum(float(w[t] * c[t, i]) * xv[t][i] for t in range(T) for i in range(L))
        for t in range(T):
            prob += pulp.lpSum(xv[t]) == 1
            if shared_mix and t > 0:
                for i in range(L):
                    prob += xv[t][i] == xv[0][i]
        prob += pulp.lpSum(float(w[t] * q[t, i]) * xv[t][i] for t in range(T) for i in range(L)) >= float(target)
        status = prob.solve(pulp.PULP_CBC_CMD(msg=False))
    name = pulp.LpStatus.get(status, str(status)).lower()
    x = np.array([[max(0.0, v.value() or 0.0) for v in row] for row in xv])
    x = x / x.sum(axis=1, keepdims=True)
    quality_val = float((w[:, None] * q * x).sum())
    cheapest = float((w * c.min(axis=1)).sum())
    cost_val = float((w[:, None] * c * x).sum())
    binding = "quality" if abs(quality_val - target) <= 1e-7 and cost_val > cheapest + 1e-12 else "none"
    return PerTaskSolution(x, cost_val, quality_val, float(target), binding,
                           "optimal" if name == "optimal" else name, max_quality)


@dataclass(frozen=True)
class PerTaskDecision:
    """A per-task decision for one hour, accounted on the true tasks.

    ``x`` ``[predicted tasks, levels]`` is what the policy serves per predicted task. Carbon figures
    are expected g/request over the true task mix (operational = energy × CI, embodied = k_emb × time);
    ``quality`` is the expected win share the true tasks deliver, ``quality_pct`` that share over
    the pooled q_0 in %, ``target`` the right-hand side R.
    """

    tasks: tuple[str, ...]
    levels: tuple[str, ...]
    x: np.ndarray
    predicted_share: np.ndarray
    carbon_g_per_request: float
    operational_g_per_request: float
    embodied_g_per_request: float
    quality: float
    quality_pct: float
    target: float
    binding: str
    status: str
    max_quality: float


def decide_per_task(
    tasks: Sequence[str],
    levels: Sequence[str],
    energy_kwh: np.ndarray,
    time_s: np.ndarray,
    quality: np.ndarray,
    weights: np.ndarray,
    ci_g_per_kwh: float,
    k_emb_g_per_s: float,
    target: float,
    confusion: np.ndarray | None = None,
    solver: str = "exact",
    pue: float = 1.0,
) -> PerTaskDecision:
    """Solve the per-task LP for one hour through the confusion matrix and account it on true tasks.

    ``energy_kwh``, ``time_s``, ``quality`` ``[T, L]`` per true task; ``weights`` ``[T]`` true-task
    shares; ``target`` the absolute right-hand side (win share); ``solver`` ``"exact"`` or ``"pulp"``.
    """
    e = np.asarray(energy_kwh, dtype=float)
    tm = np.asarray(time_s, dtype=float)
    q = np.asarray(quality, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    c = cost_g_per_request(e, tm, ci_g_per_kwh, k_emb_g_per_s, pue)
    Wp, cp, qp = aggregate_through_confusion(w, c, q, confusion)
    if solver == "pulp":
        sol = solve_per_task_pulp(cp, qp, Wp, target)
    elif solver == "exact":
        sol = solve_per_task_exact(cp, qp, Wp, target).at(0)
    else:
        raise ValueError(f"unknown solver {solver!r}: use 'exact' or 'pulp'")
    # Account on the true tasks: a request of task t predicted p gets x_p.
    _, qual, served = delivered_on_true_tasks(sol.x, w, c, q, confusion)
    op = float((w[:, None] * served * grams_per_request(e, tm, ci_g_per_kwh, pue, 0.0)).sum())
    emb = float((w[:, None] * served * grams_per_request(e, tm, 0.0, 1.0, k_emb_g_per_s)).sum())
    qual = float(qual)
    q0 = float(w @ q[:, 0])
    return PerTaskDecision(
        tasks=tuple(tasks), levels=tuple(levels), x=sol.x, predicted_share=Wp,
        carbon_g_per_request=op + emb, operational_g_per_request=op, embodied_g_per_request=emb,
        quality=qual, quality_pct=100.0 * qual / q0 if q0 > 0 else float("nan"), target=float(target),
        binding=sol.binding, status=sol.status, max_quality=sol.max_quality,
    )


@dataclass(frozen=True)
class PooledVsPerTask:
    """The pooled mix and the per-task mixes at the same quality target, both in g/request.

    ``saving_*_pct`` are carbon savings versus serving every request L0 (level index 0), in %;
    ``extra_saving_pp`` the per-task saving minus the pooled one, in percentage points.
    """

    pooled_x: np.ndarray
    per_task: PerTaskDecision
    base_g_per_request: float
    pooled_g_per_request: float
    pooled_quality_pct: float
    pooled_status: str
    saving_pooled_pct: float
    saving_per_task_pct: float
    extra_saving_pp: float


def compare_pooled_per_task(
    tasks: Sequence[str],
    levels: Sequence[str],
    energy_kwh: np.ndarray,
    time_s: np.ndarray,
    quality: np.ndarray,
    weights: np.ndarray,
    ci_g_per_kwh: float,
    k_emb_g_per_s: float,
    target: float,
    confusion: np.ndarray | None = None,
    pue: float = 1.0,
) -> PooledVsPerTask:
    """Solve the pooled LP and the per-task LP at one CI and target; savings vs all-L0."""
    e = np.asarray(energy_kwh, dtype=float)
    tm = np.asarray(time_s, dtype=float)
    q = np.asarray(quality, dtype=float)
    w = np.asarray(weights, dtype=float)
    w = w / w.sum()
    c = cost_g_per_request(e, tm, ci_g_per_kwh, k_emb_g_per_s, pue)
    pooled = solve_per_task_exact((w @ c)[None, :], (w @ q)[None, :], np.ones(1), target).at(0)
    per = decide_per_task(tasks, levels, e, tm, q, w, ci_g_per_kwh, k_emb_g_per_s, target, confusion, pue=pue)
    base = float(w @ c[:, 0])
    q0 = float(w @ q[:, 0])
    nan = float("nan")
    s_pool = saving_pct(pooled.cost_g_per_request, base, missing=nan)  # n/a without a baseline cost
    s_task = saving_pct(per.carbon_g_per_request, base, missing=nan)
    return PooledVsPerTask(
        pooled_x=pooled.x[0], per_task=per, base_g_per_request=base,
        pooled_g_per_request=pooled.cost_g_per_request,
        pooled_quality_pct=100.0 * pooled.quality / q0 if q0 > 0 else nan, pooled_status=pooled.status,
        saving_pooled_pct=s_pool, saving_per_task_pct=s_task, extra_saving_pp=s_task - s_pool,
    )


# --------------------------------------------------------------------------- per-task floors
#
# A pooled floor can hide a task that loses much of its quality (e.g. Alpaca, where L0 wins 54% of
# prompts) behind tasks where shorter answers win. A *per-task floor* asks every true task t to keep
# θ of its own always-L0 quality: Σ_i x_{t,i}^served q_{t,i} ≥ θ·q_{t,0}. With a confidence above 0.5
# each task's floor is raised by z·sd_t, sd_t the spread of its realised minus estimated slack at the
# current solution (estimation: the evaluator's verdicts of that task; realisation: the hour's requests
# of that task); rounds of re-solving with damped margins; each hour keeps the cheapest round's mix that keeps its own promise
# (every task's estimated slack ≥ z·sd at that mix), else always-L0 (a mix near always-L0 has a tiny spread,
# so the plain fixed-point iteration can oscillate between a bold and a timid mix).

PER_TASK_ROUNDS = 8
#: rounds of the per-hour HiGHS LPs (SPROUT-TASK), fewer: each round solves one LP per hour
PER_TASK_HIGHS_ROUNDS = 4


def _vertex_lp(cost: np.ndarray, A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``min cᵀx`` s.t. ``Σx = 1, x ≥ 0, A x ≥ b`` for many hours at once by vertex enumeration.

    ``cost [H, L]``, ``A [H, M, L]``, ``b [H, M]``. Every vertex has ``L − 1`` active inequalities among the
    ``M + L`` (rows of A and x_i ≥ 0); each choice is one L×L solve. Small L and M only (L ≤ 4, M ≤ 8).
    Returns ``(x [H, L], feasible [H])``."""
    H, L = cost.shape
    M = A.shape[1]
    G = np.concatenate([A, np.broadcast_to(np.eye(L), (H, L, L))], axis=1)      # [H, M+L, L]
    h_ = np.concatenate([b, np.zeros((H, L))], axis=1)
    best = np.full(H, np.inf)
    xbest = np.full((H, L), np.nan)
    ones = np.ones((H, 1, L))
    for act in itertools.combinations(range(M + L), L - 1):
        S = np.concatenate([ones, G[:, list(act)]], axis=1)
        rhs = np.concatenate([np.ones((H, 1)), h_[:, list(act)]], axis=1)
        det = np.linalg.det(S)
        ok = np.abs(det) > 1e-14
        x = np.full((H, L), np.nan)
        if ok.any():
            x[ok] = np.linalg.solve(S[ok], rhs[ok][..., None])[..., 0]
        feas = ok & (x >= -1e-10).all(axis=1) & ((np.einsum("hml,hl->hm", A, np.nan_to_num(x)) - b) >= -1e-10).all(axis=1)
        cval = np.where(feas, np.einsum("hl,hl->h", cost, np.nan_to_num(x)), np.inf)
        better = cval < best - 1e-15
        best = np.where(better, cval, best)
        xbest[better] = np.clip(x[better], 0.0, None)
    feas = np.isfinite(best)
    xbest[feas] /= xbest[feas].sum(axis=1, keepdims=True)
    return xbest, feas


def _task_margins(x_served: np.ndarray, q_task: np.ndarray, n_task: np.ndarray, weights: np.ndarray, theta: np.ndarray,
                  z: float, volume: np.ndarray, per_request: bool = False, n_pool: np.ndarray | None = None) -> np.ndarray:
    """``z·sd_t`` per hour and task of the slack ``Σ_i x_{t,i} q_{t,i} − θ q_{t,0}`` (win-share units).

    ``volume [H]``: the hour's measured requests (each task gets its share of them); ``per_request``: each
    request draws its level; ``n_pool [T]``: the judged prompts per task the evaluator draws from (the
    finite-population term). See :func:`sprout_core.quality.slack_variance`."""
    if z <= 0:
        return np.zeros(q_task.shape[:-1])
    n_req = np.maximum(volume[:, None] * weights, 1.0)
    var = qmod.slack_variance(x_served, q_task, theta[:, None], n_task, n_req,
                              None if n_pool is None else np.asarray(n_pool, dtype=float)[None, :], per_request)
    return z * np.sqrt(np.maximum(var, 0.0))


def pooled_mix_with_task_floors(cost: np.ndarray, q_task: np.ndarray, n_task: np.ndarray, weights: np.ndarray,
                                theta: np.ndarray, z: float, volume: np.ndarray, per_request: bool = False,
                                n_pool: np.ndarray | None = None) -> np.ndarray:
    """One mix ``x [H, L]`` per hour (SPROUT) in which every task with requests keeps θ of its own
    always-L0 quality with confidence Φ(z) (see above). Infeasible hours serve L0 (quality 1 for all)."""
    H, L = cost.shape
    T = q_task.shape[1]
    active = weights > 0
    best = np.tile(np.eye(L)[0], (H, 1))
    best_c = np.einsum("hl,hl->h", cost, best)
    margin = np.zeros((H, T))
    for r in range(PER_TASK_ROUNDS if z > 0 else 1):
        A = np.where(active[..., None], q_task, 0.0)                      # rows: tasks
        b = np.where(active, theta[:, None] * q_task[..., 0] + margin, -1.0)
        xs, feas = _vertex_lp(cost, A, b)
        x = np.where(feas[:, None], xs, np.eye(L)[0])
        m_x = None
        for lam in BLENDS:   # the LP's mix and its blends with always-L0: the cheapest that keeps its own promise
            xb = lam * x + (1.0 - lam) * np.eye(L)[0]
            served = np.broadcast_to(xb[:, None, :], q_task.shape)
            m_b = _task_margins(served, q_task, n_task, weights, theta, z, volume, per_request, n_pool)
            slack = np.einsum("htl,htl->ht", served, q_task) - theta[:, None] * q_task[..., 0]
            best, best_c = _keep_consistent(xb, np.einsum("hl,hl->h", cost, xb), slack, m_b, active, best, best_c,
                                            z <= 0)
            m_x = m_b if m_x is None else m_x
        margin = _next_margin(r, margin, m_x, feas)
    return best


#: blends ``λ·x + (1 − λ)·e₀`` of each round's LP mix that are checked for a kept promise
BLENDS = (1.0, 0.75, 0.5, 0.3, 0.15)


def _next_margin(r: int, margin: np.ndarray, m_x: np.ndarray, feas: np.ndarray) -> np.ndarray:
    """The next round's margins: the spread at this round's mix, damped after the first round; where the LP
    was infeasible at these margins, half of them (back off toward a mix it can reach)."""
    nxt = m_x if r == 0 else 0.5 * (margin + m_x)
    return np.where(feas[:, None], nxt, 0.5 * margin)


def _keep_consistent(x, c, slack, m_x, active, best, best_c, always: bool):
    """Keep ``x`` where it keeps its own promise (every active task's estimated slack ``[H, T]`` ≥ its margin
    at ``x``) and costs less than the best kept so far (always-L0 to start: its quality is 1 by definition)."""
    ok = always | np.all(~active | (slack >= m_x - 1e-12), axis=1)
    better = ok & (c < best_c - 1e-15)
    sel = better.reshape((-1,) + (1,) * (x.ndim - 1))
    return np.where(sel, x, best), np.where(better, c, best_c)


def per_task_mixes_with_task_floors(cost_task: np.ndarray, weights: np.ndarray, q_task: np.ndarray,
                                    n_task: np.ndarray, theta: np.ndarray, z: float, volume: np.ndarray,
                                    cond: np.ndarray | None, per_request: bool = False,
                                    n_pool: np.ndarray | None = None) -> np.ndarray:
    """One mix per *predicted* task ``x [H, P, L]`` (SPROUT-TASK) minimising expected carbon on the true tasks
    while every true task keeps θ of its own always-L0 quality (with confidence Φ(z)), through the
    prediction behaviour ``cond [T, L, P]`` (``None`` = labels known). One HiGHS LP per hour."""
    H, T, L = cost_task.shape
    K = conditional_from_confusion(np.eye(T), L) if cond is None else np.asarray(cond, dtype=float)
    if K.ndim == 2:
        K = conditional_from_confusion(K, L)
    P = K.shape[2]
    x = np.tile(np.eye(L)[0], (H, P, 1))
    best = x.copy()
    best_c = np.einsum("ht,ht->h", weights, cost_task[..., 0])             # always-L0
    margin = np.zeros((H, T))
    active = weights > 0
    A_eq = np.kron(np.eye(P), np.ones((1, L)))
    pt = np.stack([_p_given_t(q_task[h], K) for h in range(H)])           # [H, T, P]
    for r in range(PER_TASK_HIGHS_ROUNDS if z > 0 else 1):
        feas = np.ones(H, dtype=bool)
        for h in range(H):
            ptl = _p_given_t(q_task[h], K)                                 # [T, P]
            c = np.einsum("t,tp,tl->pl", weights[h], ptl, cost_task[h]).ravel()
            A_q = np.einsum("tl,tlp->tpl", q_task[h], K).reshape(T, P * L)  # delivered wins per true task
            keep = weights[h] > 0
            b_q = theta[h] * q_task[h, :, 0] + margin[h]
            res = linprog(c, A_ub=-A_q[keep], b_ub=-b_q[keep], A_eq=A_eq, b_eq=np.ones(P), bounds=(0, None),
                          method="highs")
            if res.status == 0:
                x[h] = np.clip(res.x.reshape(P, L), 0.0, None)
                x[h] /= x[h].sum(axis=1, keepdims=True)
            else:
                x[h] = np.eye(L)[0]
                feas[h] = False
        m_x = None
        for lam in BLENDS:
            xb = lam * x + (1.0 - lam) * np.eye(L)[0]
            served = np.einsum("htp,hpl->htl", pt, xb)
            c_x = np.einsum("ht,htl,htl->h", weights, served, cost_task)
            m_b = _task_margins(served, q_task, n_task, weights, theta, z, volume, per_request, n_pool)
            # the LP's own delivered wins (misclassification depends on the best level)
            slack = np.einsum("htl,tlp,hpl->ht", q_task, K, xb) - theta[:, None] * q_task[..., 0]
            best, best_c = _keep_consistent(xb, c_x, slack, m_b, active, best, best_c, z <= 0)
            m_x = m_b if m_x is None else m_x
        margin = _next_margin(r, margin, m_x, feas)
    return best
