"""The Sprout directive optimizer: a small LP (PuLP) and its exact, vectorised twin.

For one hour with carbon intensity CI (g/kWh), choose shares ``x_i ≥ 0`` (Σ x_i = 1) of requests served
with directive level ``i`` to

    minimise   Σ_i x_i · c_i,      c_i = e_i · CI + k_emb · t_i        (g per request)
    subject to Σ_i q_i x_i ≥ θ · q_0

with ``e_i`` the mean energy per request (kWh), ``t_i`` the mean time per request (s), ``k_emb`` the
embodied carbon per device-second (g/s), ``q_i`` the share of judged prompts whose best answer came from
level ``i`` and ``q_0`` that of level 0 (the undirected baseline). θ comes either from a slider (fixed
form) or from the carbon-aware ξ form ``θ = 1 − ξ · (CI − CI_min) / (CI_max − CI_min)``.

:func:`solve_lp` solves one hour with PuLP (CBC); :func:`solve_exact` solves many hours at once. With one
equality and one inequality the optimum is a vertex with at most two non-zero levels, so the exact
solver enumerates every single level and every pair mixed to meet the quality floor exactly, and keeps
the cheapest feasible candidate (ties: higher quality, then lower level index).
"""
from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

#: Numerical tolerance for feasibility and "binding" decisions.
TOL = 1e-9


def theta_from_xi(ci: np.ndarray | float, ci_min: float, ci_max: float, xi: float) -> np.ndarray | float:
    """The carbon-aware quality floor θ = 1 − ξ·(CI − CI_min)/(CI_max − CI_min) (dimensionless).

    ``ci``, ``ci_min``, ``ci_max`` in g/kWh. The position is clipped to [0, 1] so a CI outside the
    year's range (a slider value) gives at most ξ of tolerance. A flat year (max == min) gives θ = 1.
    """
    span = float(ci_max) - float(ci_min)
    ci_arr = np.asarray(ci, dtype=float)
    pos = np.zeros_like(ci_arr) if span <= 0 else np.clip((ci_arr - ci_min) / span, 0.0, 1.0)
    out = 1.0 - float(xi) * pos
    return float(out) if np.ndim(out) == 0 else out


def cost_per_request(e_kwh: np.ndarray, t_s: np.ndarray, ci: np.ndarray | float, k_emb_g_per_s: float) -> np.ndarray:
    """Carbon per request per level, g: ``e_kwh · CI + k_emb · t_s`` (broadcasts over leading axes).

    ``ci`` may be a scalar or shape ``[H]`` (then the result is ``[H, L]``).
    """
    e = np.asarray(e_kwh, dtype=float)
    t = np.asarray(t_s, dtype=float)
    ci_a = np.asarray(ci, dtype=float)
    if ci_a.ndim == 1 and e.ndim >= 1:
        ci_a = ci_a[:, None]
    return e * ci_a + float(k_emb_g_per_s) * t


@dataclass(frozen=True)
class Decision:
    """One hour's optimizer decision.

    ``x``: share per level (sums to 1); ``carbon_g``: expected g CO₂eq per request (operational +
    embodied); ``operational_g``/``embodied_g``: its parts (g/request); ``quality``: normalised quality
    Σ q_i x_i / q_0 (fraction; 1.0 = as good as always-L0); ``theta``: the floor that applied (fraction of
    q_0); ``binding``: ``"quality"`` when the quality floor is active, ``"none"`` when the cheapest level
    already meets it (only Σx = 1 binds); ``status``: ``"optimal"`` or ``"infeasible"``; ``max_theta``:
    the largest floor any mix reaches (max_i q_i / q_0); ``message``: a plain-words note.
    """

    levels: tuple[str, ...]
    x: np.ndarray
    carbon_g: float
    operational_g: float
    embodied_g: float
    quality: float
    theta: float
    binding: str
    status: str
    max_theta: float
    solver: str
    message: str = ""
    ci: float = float("nan")
    costs_g: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def x_dict(self) -> dict[str, float]:
        return {lv: float(v) for lv, v in zip(self.levels, self.x)}


def _check(q: np.ndarray, c: np.ndarray) -> None:
    if q.shape[-1] != c.shape[-1]:
        raise ValueError(f"q has {q.shape[-1]} levels but costs have {c.shape[-1]}")
    if q.shape[-1] < 1:
        raise ValueError("need at least one level")
    if not np.all(np.isfinite(q)) or not np.all(np.isfinite(c)):
        raise ValueError("q and costs must be finite numbers (is a level missing from the profile?)")
    if np.any(q < -TOL):
        raise ValueError("q (win shares) must be ≥ 0")


def infeasible_message(theta: float, max_theta: float, best_level: str) -> str:
    return (f"No mix reaches a quality floor of θ = {theta:.3f} × q₀: the best any mix can do is "
            f"{max_theta:.3f} × q₀ (all requests at {best_level}). Lower θ to at most {max_theta:.3f}.")


def solve_lp(costs_g: Sequence[float], q: Sequence[float], theta: float, levels: Sequence[str] | None = None,
             split: tuple[np.ndarray, np.ndarray] | None = None, ci: float = float("nan")) -> Decision:
    """Solve one hour's LP with PuLP (CBC).

    ``costs_g``: g/request per level; ``q``: win share per level (level 0 is the baseline q₀);
    ``theta``: floor as a fraction of q₀. ``split``: optional ``(operational_g, embodied_g)`` per level to
    report the two parts. Infeasible settings return ``status="infeasible"`` with ``x`` all NaN and a
    message naming the largest reachable θ.
    """
    import pulp

    c = np.asarray(costs_g, dtype=float)
    qa = np.asarray(q, dtype=float)
    _check(qa, c)
    L = len(c)
    lv = tuple(levels) if levels is not None else tuple(f"L{i}" for i in range(L))
    q0 = float(qa[0])
    max_theta = float(qa.max() / q0) if q0 > 0 else float("inf")
    with warnings.catch_warnings():  # PuLP 3.x announces 4.0 API changes; the calls below work in both
        warnings.simplefilter("ignore", DeprecationWarning)
        prob = pulp.LpProblem("sprout", pulp.LpMinimize)
        if hasattr(prob, "add_variable"):
            xs = [prob.add_variable(f"x{i}", lowBound=0) for i in range(L)]
        else:
            xs = [pulp.LpVariable(f"x{i}", lowBound=0) for i in range(L)]
        prob += pulp.lpSum(float(c[i]) * xs[i] for i in range(L))
        prob += pulp.lpSum(xs) == 1, "simplex"
        prob += pulp.lpSum(float(qa[i]) * xs[i] for i in range(L)) >= float(theta) * q0, "quality"
        status = pulp.LpStatus[prob.solve(pulp.PULP_CBC_CMD(msg=False))]
    if status != "Optimal":
        best = lv[int(np.argmax(qa))]
        return Decision(lv, np.full(L, np.nan), float("nan"), float("nan"), float("nan"), float("nan"), float(theta),
                        "quality", "infeasible", max_theta, "pulp", infeasible_message(theta, max_theta, best), ci, c)
    x = np.array([max(0.0, float(v.value() or 0.0)) for v in xs])
    x = x / x.sum()
    return _decision(lv, x, c, qa, float(theta), max_theta, "pulp", split, ci)


def _decision(lv, x, c, qa, theta, max_theta, solver, split, ci) -> Decision:
    q0 = float(qa[0])
    qual = float(qa @ x / q0) if q0 > 0 else float("nan")
    slack = float(qa @ x - theta * q0)
    binding = "quality" if abs(slack) <= 1e-7 * max(1.0, abs(q0)) and _cheapest_violates(c, qa, theta) else "none"
    if split is not None:
        op, emb = float(np.asarray(split[0]) @ x), float(np.asarray(split[1]) @ x)
    else:
        op, emb = float(c @ x), float("nan")
    msg = _explain(lv, x, c, qa, theta, binding)
    return Decision(lv, x, float(c @ x), op, emb, qual, theta, binding, "optimal", max_theta, solver, msg, ci, c)


def _cheapest_violates(c: np.ndarray, qa: np.ndarray, theta: float) -> bool:
    """True when the unconstrained optimum (cheapest level, best quality among ties) misses the floor."""
    cheapest = np.flatnonzero(c <= c.min() + TOL)
    return bool(qa[cheapest].max() < theta * qa[0] - TOL)


def _explain(lv, x, c, qa, theta, binding) -> str:
    order = np.argsort(-x)
    parts = [f"{x[i]:.0%} at {lv[i]}" for i in order if x[i] > 1e-6]
    if binding == "none":
        return (f"The cheapest level, {lv[int(np.argmax(x))]}, already keeps quality at or above "
                f"{theta:.0%} of always-{lv[0]}, so every request gets it.")
    return (f"Serve {' and '.join(parts)}: the quality floor ({theta:.0%} of always-{lv[0]}) binds, so the "
            f"optimizer mixes the cheapest levels that together just meet it.")


def solve(costs_g: Sequence[float], q: Sequence[float], theta: float, levels: Sequence[str] | None = None,
          split: tuple[np.ndarray, np.ndarray] | None = None, ci: float = float("nan"), solver: str = "exact") -> Decision:
    """One hour's decision with the chosen solver (``"exact"`` or ``"pulp"``); same contract as :func:`solve_lp`."""
    if solver == "pulp":
        return solve_lp(costs_g, q, theta, levels, split, ci)
    c = np.asarray(costs_g, dtype=float)
    qa = np.asarray(q, dtype=float)
    _check(qa, c)
    lv = tuple(levels) if levels is not None else tuple(f"L{i}" for i in range(len(c)))
    q0 = float(qa[0])
    max_theta = float(qa.max() / q0) if q0 > 0 else float("inf")
    x, feas = solve_exact(c[None, :], qa[None, :], np.array([theta * q0]))
    if not feas[0]:
        return Decision(lv, np.full(len(c), np.nan), float("nan"), float("nan"), float("nan"), float("nan"), float(theta),
                        "quality", "infeasible", max_theta, "exact",
                        infeasible_message(theta, max_theta, lv[int(np.argmax(qa))]), ci, c)
    return _decision(lv, x[0], c, qa, float(theta), max_theta, "exact", split, ci)


def solve_exact(costs_g: np.ndarray, q: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact LP optimum for many hours at once.

    ``costs_g``: ``[H, L]`` g/request; ``q``: ``[H, L]`` or ``[L]`` win shares; ``floor``: ``[H]`` the
    absolute quality floor (θ·q₀, same units as q). Returns ``(x [H, L], feasible [H])``; infeasible rows
    are NaN. Candidates: each single level ``i`` with ``q_i ≥ floor``, and each pair ``i, j`` with
    ``q_i > floor > q_j`` mixed as ``x_i = (floor − q_j)/(q_i − q_j)``. The cheapest feasible candidate wins
    (ties → higher quality → listed first).
    """
    c = np.atleast_2d(np.asarray(costs_g, dtype=float))
    H, L = c.shape
    qa = np.asarray(q, dtype=float)
    qa = np.broadcast_to(qa, (H, L)) if qa.ndim == 1 else qa
    b = np.broadcast_to(np.asarray(floor, dtype=float), (H,))
    cand_x: list[np.ndarray] = []
    cand_cost: list[np.ndarray] = []
    cand_q: list[np.ndarray] = []
    cand_ok: list[np.ndarray] = []
    eye = np.eye(L)
    for i in range(L):
        cand_x.append(np.broadcast_to(eye[i], (H, L)))
        cand_cost.append(c[:, i])
        cand_q.append(qa[:, i])
        cand_ok.append(qa[:, i] >= b - TOL)
    for i, j in itertools.combinations(range(L), 2):
        qi, qj = qa[:, i], qa[:, j]
        hi_is_i = qi >= qj
        qh = np.where(hi_is_i, qi, qj)
        ql = np.where(hi_is_i, qj, qi)
        ok = (qh > b + TOL) & (ql < b - TOL)
        with np.errstate(divide="ignore", invalid="ignore"):
            wh = np.where(ok, (b - ql) / np.where(ok, qh - ql, 1.0), 0.0)
        wh = np.clip(wh, 0.0, 1.0)
        xi_ = np.where(hi_is_i, wh, 1.0 - wh)
        x = np.zeros((H, L))
        x[:, i] = xi_
        x[:, j] = 1.0 - xi_
        cand_x.append(x)
        cand_cost.append(xi_ * c[:, i] + (1.0 - xi_) * c[:, j])
        cand_q.append(xi_ * qi + (1.0 - xi_) * qj)
        cand_ok.append(ok)
    X = np.stack(cand_x, axis=1)          # [H, K, L]
    C = np.stack(cand_cost, axis=1)       # [H, K]
    Q = np.stack(cand_q, axis=1)
    OK = np.stack(cand_ok, axis=1)
    C_m = np.where(OK, C, np.inf)
    best_c = C_m.min(axis=1, keepdims=True)
    scale = np.maximum(1.0, np.abs(best_c))
    near = OK & (C_m <= best_c + 1e-12 * scale)
    Q_m = np.where(near, Q, -np.inf)
    k = np.argmax(Q_m, axis=1)            # first index among max-quality ties
    feas = np.isfinite(best_c[:, 0])
    x = X[np.arange(H), k].copy()
    x[~feas] = np.nan
    return x, feas


def solve_hours(costs_g: np.ndarray, q: np.ndarray, theta: np.ndarray, solver: str = "exact") -> tuple[np.ndarray, np.ndarray]:
    """``x [H, L]`` and feasibility for many hours: floor = θ_h · q_{h,0}. ``solver``: exact or pulp (one LP per hour)."""
    c = np.atleast_2d(np.asarray(costs_g, dtype=float))
    H, L = c.shape
    qa = np.asarray(q, dtype=float)
    qa = np.broadcast_to(qa, (H, L)) if qa.ndim == 1 else qa
    th = np.broadcast_to(np.asarray(theta, dtype=float), (H,))
    if solver == "exact":
        return solve_exact(c, qa, th * qa[:, 0])
    if solver != "pulp":
        raise ValueError(f"solver must be 'exact' or 'pulp', not {solver!r}")
    x = np.full((H, L), np.nan)
    feas = np.zeros(H, dtype=bool)
    for h in range(H):
        d = solve_lp(c[h], qa[h], float(th[h]))
        if d.status == "optimal":
            x[h] = d.x
            feas[h] = True
    return x, feas


def frontier(costs_g: Sequence[float], q: Sequence[float], n: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """The carbon–quality frontier: for θ from the cheapest level's quality to the best reachable, the least
    g/request. Returns ``(quality [n] as fraction of q₀, carbon_g [n])``."""
    c = np.asarray(costs_g, dtype=float)
    qa = np.asarray(q, dtype=float)
    q0 = qa[0]
    if not q0 > 0:
        raise ValueError("q₀ = 0 (L0 never won): quality relative to always-L0 is undefined")
    lo = qa[int(np.argmin(c))] / q0
    hi = qa.max() / q0
    thetas = np.linspace(min(lo, hi), hi, n)
    x, feas = solve_exact(np.broadcast_to(c, (n, len(c))), qa, thetas * q0)
    return (x @ qa) / q0, x @ c


def mix_cloud(costs_g: Sequence[float], q: Sequence[float], step: float = 0.05) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every mix on a simplex grid (``step``): ``(X [N, L], quality [N] fraction of q₀, carbon_g [N])``."""
    c = np.asarray(costs_g, dtype=float)
    qa = np.asarray(q, dtype=float)
    L = len(c)
    m = int(round(1 / step))
    pts = [comb for comb in itertools.product(range(m + 1), repeat=L - 1) if sum(comb) <= m]
    X = np.array([[*p, m - sum(p)] for p in pts], dtype=float) / m
    if not qa[0] > 0:
        raise ValueError("q₀ = 0 (L0 never won): quality relative to always-L0 is undefined")
    return X, (X @ qa) / qa[0], X @ c


def draw_levels(x: Sequence[float], n: int, rng: np.random.Generator | int | None = 0) -> np.ndarray:
    """Serving: draw the level index of each of ``n`` requests from the mix ``x`` (seeded, reproducible)."""
    g = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    p = np.clip(np.asarray(x, dtype=float), 0.0, None)
    if not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError("x must be a non-negative mix with a positive sum")
    return g.choice(len(p), size=int(n), p=p / p.sum())


def decide(e_kwh: Sequence[float], t_s: Sequence[float], q: Sequence[float], ci: float, k_emb_g_per_s: float,
           theta: float, levels: Sequence[str], solver: str = "exact") -> Decision:
    """One hour's decision from per-level energy (kWh), time (s) and q at ``ci`` (g/kWh), reporting the
    operational and embodied parts separately."""
    op = np.asarray(e_kwh, dtype=float) * float(ci)
    emb = float(k_emb_g_per_s) * np.asarray(t_s, dtype=float)
    return solve(op + emb, q, float(theta), levels, split=(op, emb), ci=float(ci), solver=solver)
