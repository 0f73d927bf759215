"""The Sprout directive optimizer: a small LP (PuLP) and its exact, vectorised twin.

For one hour with carbon intensity CI (g/kWh), choose shares ``x_i ≥ 0`` (Σ x_i = 1) of requests served
with directive level ``i`` to

    minimise   Σ_i x_i · c_i,      c_i = e_i · CI · PUE + k_emb · t_i        (g per request)
    subject to Σ_i q_i x_i ≥ θ · q_0

with ``e_i`` the mean energy per request (kWh), ``PUE`` the data centre's power usage effectiveness (≥ 1, default
1.0, scales the operational part only), ``t_i`` the mean time per request (s), ``k_emb`` the
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
from dataclasses import dataclass, field, replace
from statistics import NormalDist
from typing import Sequence

import numpy as np

from sprout_core.carbon import grams_per_request
from sprout_core.errors import InputError

#: Numerical tolerance for feasibility and "binding" decisions.
TOL = 1e-9


def theta_from_xi(ci: np.ndarray | float, ci_min: float, ci_max: float, xi: float) -> np.ndarray | float:
    """The carbon-aware quality floor θ = 1 − ξ·(CI − CI_min)/(CI_max − CI_min) (dimensionless).

    ``ci``, ``ci_min``, ``ci_max`` in g/kWh. The position is clipped to [0, 1] so a CI outside the
    year's range (a slider value) gives at most ξ of tolerance. A flat year (max == min) gives θ = 1.
    """
    if not (np.isfinite(xi) and 0.0 <= float(xi) <= 1.0):
        raise InputError(f"ξ must be a number between 0 and 1, got {xi!r}")
    span = float(ci_max) - float(ci_min)
    ci_arr = np.asarray(ci, dtype=float)
    if not np.all(np.isfinite(ci_arr)):
        raise InputError("carbon intensity must be a finite number (g/kWh)")
    pos = np.zeros_like(ci_arr) if span <= 0 else np.clip((ci_arr - ci_min) / span, 0.0, 1.0)
    out = 1.0 - float(xi) * pos
    return float(out) if np.ndim(out) == 0 else out


def cost_per_request(e_kwh: np.ndarray, t_s: np.ndarray, ci: np.ndarray | float, k_emb_g_per_s: float,
                     pue: float = 1.0) -> np.ndarray:
    """Carbon per request per level, g: ``e_kwh · CI · PUE + k_emb · t_s`` (broadcasts over leading axes) —
    :func:`sprout_core.carbon.grams_per_request` with the optimizer's axes.

    ``ci`` may be a scalar or shape ``[H]`` (then the result is ``[H, L]``). ``pue`` (≥ 1, default 1.0)
    scales the operational part only. Floating inputs keep their precision (float32 stays float32);
    anything else becomes float64.
    """
    def _f(a):
        a = np.asarray(a)
        return a if a.dtype.kind == "f" else a.astype(float)

    e, t, ci_a = _f(e_kwh), _f(t_s), _f(ci)
    if ci_a.ndim == 1 and e.ndim >= 1:
        ci_a = ci_a[:, None]
    return grams_per_request(e, t, ci_a, float(pue), np.asarray(k_emb_g_per_s, dtype=e.dtype))


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
    confidence: float = 0.5
    quality_sd: float = float("nan")
    quality_low: float = float("nan")
    quality_high: float = float("nan")

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


def infeasible_message(theta: float, max_theta: float, best_level: str, confidence: float = 0.5) -> str:
    if confidence > 0.5:
        return (f"No mix keeps a quality floor of θ = {theta:.3f} × q₀ with {confidence:.0%} confidence: the most "
                f"any mix can promise at that confidence is {max_theta:.3f} × q₀. Lower θ to at most "
                f"{max_theta:.3f}, or the confidence.")
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


def _decision(lv, x, c, qa, theta, max_theta, solver, split, ci, z: float = 0.0, cov: np.ndarray | None = None) -> Decision:
    q0 = float(qa[0])
    qual = float(qa @ x / q0) if q0 > 0 else float("nan")
    if cov is not None and z > 0:
        m, sd = promise_margin(x, qa, cov, theta)
        slack = float(m - z * sd)
        cheapest = np.eye(len(c))[int(np.argmin(c))]
        m0, sd0 = promise_margin(cheapest, qa, cov, theta)
        violates = float(m0 - z * sd0) < -TOL
    else:
        slack = float(qa @ x - theta * q0)
        violates = _cheapest_violates(c, qa, theta)
    binding = "quality" if abs(slack) <= 1e-7 * max(1.0, abs(q0)) and violates else "none"
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
          split: tuple[np.ndarray, np.ndarray] | None = None, ci: float = float("nan"), solver: str = "exact",
          cov: np.ndarray | None = None, confidence: float = 0.5) -> Decision:
    """One hour's decision with the chosen solver (``"exact"`` or ``"pulp"``); same contract as :func:`solve_lp`.

    With ``cov`` (the covariance of realised − estimated win shares, ``[L, L]``) and ``confidence`` c > 0.5
    the floor becomes the promise *realised quality ≥ θ with probability c* (:func:`solve_chance_exact`;
    ``"pulp"`` solves it by cutting planes, :func:`solve_chance_lp`), and the decision reports the realised
    quality's spread and the bound it keeps (:func:`quality_interval`)."""
    z = z_value(confidence)
    if solver not in ("exact", "pulp"):
        raise InputError(f"solver must be 'exact' or 'pulp', not {solver!r}")
    c = np.asarray(costs_g, dtype=float)
    qa = np.asarray(q, dtype=float)
    _check(qa, c)
    lv = tuple(levels) if levels is not None else tuple(f"L{i}" for i in range(len(c)))
    if not np.isfinite(theta):
        raise InputError(f"θ must be a finite number, got {theta!r}")
    if theta <= 0:
        raise InputError(f"θ must be > 0 (a fraction of always-{lv[0]} quality), got {theta:g}")
    if cov is None or z == 0.0:
        d = solve_lp(c, qa, theta, lv, split, ci) if solver == "pulp" else _solve_plain(c, qa, theta, lv, split, ci)
        if cov is not None and d.status == "optimal":
            Q, sd, lo, hi = quality_interval(d.x, qa, cov, 0.5)
            d = replace(d, confidence=0.5, quality_sd=sd, quality_low=lo, quality_high=hi)
        return d
    cv = np.asarray(cov, dtype=float)
    q0 = float(qa[0])
    if solver == "pulp":
        x, status = solve_chance_lp(c, qa, cv, float(theta), z)
        feas = status == "optimal"
        solver_name = "pulp (cutting planes)"
    else:
        xs, fs = solve_chance_exact(c[None], qa[None], cv[None], np.array([float(theta)]), z)
        x, feas = xs[0], bool(fs[0])
        solver_name = "exact (chance)"
    if not feas:
        mt = max_theta_at(qa, cv, z)
        return Decision(lv, np.full(len(c), np.nan), float("nan"), float("nan"), float("nan"), float("nan"),
                        float(theta), "quality", "infeasible", mt, solver_name,
                        infeasible_message(theta, mt, lv[int(np.argmax(qa))], confidence), ci, c, confidence)
    d = _decision(lv, x, c, qa, float(theta), float(qa.max() / q0) if q0 > 0 else float("inf"), solver_name,
                  split, ci, z=z, cov=cv)
    Q, sd, lo, hi = quality_interval(x, qa, cv, confidence)
    return replace(d, confidence=float(confidence), quality_sd=sd, quality_low=lo, quality_high=hi)


def _solve_plain(c, qa, theta, lv, split, ci) -> Decision:
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
           theta: float, levels: Sequence[str], solver: str = "exact", cov: np.ndarray | None = None,
           confidence: float = 0.5, pue: float = 1.0) -> Decision:
    """One hour's decision from per-level energy (kWh), time (s) and q at ``ci`` (g/kWh) and ``pue`` (scales
    the operational part), reporting the operational and embodied parts separately (see :func:`solve` for
    ``cov`` and ``confidence``)."""
    if not np.isfinite(ci) or ci < 0:
        raise InputError(f"carbon intensity must be a finite number ≥ 0 g/kWh, got {ci!r}")
    e, t = np.asarray(e_kwh, dtype=float), np.asarray(t_s, dtype=float)
    op = grams_per_request(e, t, float(ci), float(pue), 0.0)
    emb = grams_per_request(e, t, 0.0, 1.0, float(k_emb_g_per_s))
    return solve(op + emb, q, float(theta), levels, split=(op, emb), ci=float(ci), solver=solver, cov=cov,
                 confidence=confidence)


# ---------------------------------------------------------------------------------- the calibrated promise
#
# The plug-in LP above meets the floor with zero slack on an *estimate* of q. The realised quality of an
# hour is Σ_i x_i q_i / q_0 over the hour's actual requests, and both the estimate (a sample of judged
# prompts) and the hour's requests (another sample) are random. With a = x − θ·e_0 the promise
# "realised quality ≥ θ" is exactly the linear event aᵀq ≥ 0 (for q_0 > 0). If q − q̂ is approximately
# normal with covariance Σ (estimation + realisation, see sprout_core.quality), then
#
#     P(aᵀq ≥ 0) ≥ c   ⇔   μᵀa − z_c·√(aᵀΣa) ≥ 0,      z_c = Φ⁻¹(c),  μ = q̂
#
# a second-order-cone constraint: convex for c ≥ 0.5, and c = 0.5 (z = 0) is the plug-in LP. The solvers
# below minimise cᵀx over the simplex under it — exactly (every face of the simplex in closed form,
# vectorised over hours) and, as the single-hour reference, with PuLP by cutting planes.

def z_value(confidence: float) -> float:
    """``z = Φ⁻¹(c)`` for a confidence ``c`` in [0.5, 1) (0 at 0.5: the plug-in LP)."""
    c = float(confidence)
    if not (np.isfinite(c) and 0.5 <= c < 1.0):
        raise InputError(f"confidence must be a number in [0.5, 1) (0.5 = plug-in estimate), got {confidence!r}")
    return 0.0 if c == 0.5 else float(NormalDist().inv_cdf(c))


def promise_margin(x: np.ndarray, mu: np.ndarray, cov: np.ndarray, theta: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(μᵀa, √(aᵀΣa))`` with ``a = x − θ·e_0``, for ``x, mu [..., L]``, ``cov [..., L, L]``: the expected
    slack of the quality constraint (win-share units) and its standard deviation."""
    x = np.asarray(x, dtype=float)
    a = x.copy()
    a[..., 0] = a[..., 0] - np.asarray(theta, dtype=float)
    m = np.einsum("...l,...l->...", np.asarray(mu, dtype=float), a)
    v = np.einsum("...l,...lk,...k->...", a, np.asarray(cov, dtype=float), a)
    return m, np.sqrt(np.maximum(v, 0.0))


def _faces(L: int) -> list[tuple[int, ...]]:
    return [f for k in range(2, L + 1) for f in itertools.combinations(range(L), k)]


def _null_basis(k: int) -> np.ndarray:
    """Orthonormal basis ``[k, k−1]`` of the vectors summing to 0."""
    q, _ = np.linalg.qr(np.eye(k) - 1.0 / k)
    return q[:, : k - 1]


def solve_chance_exact(costs_g: np.ndarray, mu: np.ndarray, cov: np.ndarray, theta: np.ndarray,
                       z: float) -> tuple[np.ndarray, np.ndarray]:
    """Least-cost mixes whose quality meets ``θ`` with probability ``Φ(z)``, for many hours at once.

    minimise ``cᵀx`` over the simplex subject to ``μᵀa ≥ z·√(aᵀΣa)``, ``a = x − θ·e_0``.

    ``costs_g``/``mu``: ``[H, L]`` (``mu`` may be ``[L]``); ``cov``: ``[H, L, L]`` or ``[L, L]``; ``theta``:
    ``[H]`` or scalar; ``z ≥ 0``. Returns ``(x [H, L], feasible [H])`` (NaN rows where no mix is feasible).

    The feasible set is convex, so the optimum lies in the relative interior of one face of the simplex
    (a vertex, an edge, …) and there it is either a vertex or a point where the cost's level set touches
    the constraint's boundary. On a face spanned by ``k`` levels write ``x = p + N·w`` (``N`` an orthonormal
    basis of the face's plane); the boundary ``(μᵀa)² = z²·aᵀΣa`` is the quadric ``wᵀAw + 2gᵀw + κ = 0``
    and the touching points of ``γᵀw`` (``γ = Nᵀc``) are ``w = −A⁻¹g ± τ·A⁻¹γ`` with
    ``τ² = (gᵀA⁻¹g − κ)/(γᵀA⁻¹γ)``; on an edge both roots of the quadratic are taken. Every vertex, edge
    root and face touching point is checked (inside the face, on the right nappe ``μᵀa ≥ 0``, constraint
    met) and the cheapest feasible one wins (ties → higher expected quality → fewer, lower levels).
    Always-L0 is feasible whenever ``θ ≤ 1`` (its realised quality is 1 by definition).
    """
    c = np.atleast_2d(np.asarray(costs_g, dtype=float))
    H, L = c.shape
    mu_a = np.asarray(mu, dtype=float)
    mu_a = np.broadcast_to(mu_a, (H, L)) if mu_a.ndim == 1 else mu_a
    cv = np.asarray(cov, dtype=float)
    cv = np.broadcast_to(cv, (H, L, L)) if cv.ndim == 2 else cv
    th = np.broadcast_to(np.asarray(theta, dtype=float), (H,))
    z = float(z)
    if z < 0:
        raise InputError(f"z must be ≥ 0 (confidence ≥ 0.5), got {z}")
    if z == 0.0:
        return solve_exact(c, mu_a, th * mu_a[:, 0])
    ridge = 1e-14 * np.eye(L)
    cv = cv + ridge
    tol = 1e-10

    cand_x: list[np.ndarray] = []

    eye = np.eye(L)
    for i in range(L):
        cand_x.append(np.broadcast_to(eye[i], (H, L)))
    for face in _faces(L):
        k = len(face)
        f = list(face)
        N = _null_basis(k)                                  # [k, k-1]
        a0 = np.zeros((H, L))
        a0[:, f] = 1.0 / k
        a0[:, 0] -= th
        m = np.einsum("hl,hl->h", mu_a, a0)                 # μᵀa0
        b = mu_a[:, f] @ N                                  # [H, k-1]
        cva0 = np.einsum("hlk,hk->hl", cv, a0)              # Σ a0
        s0 = np.einsum("hl,hl->h", a0, cva0)
        s = cva0[:, f] @ N                                  # Nᵀ(Σa0)_F
        S = np.einsum("ji,hjk,kl->hil", N, cv[:, f][:, :, f], N)
        A = z * z * S - b[:, :, None] * b[:, None, :]
        g = z * z * s - m[:, None] * b
        kap = z * z * s0 - m * m
        gam = c[:, f] @ N
        if k == 2:
            A1, g1 = A[:, 0, 0], g[:, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                disc = g1 * g1 - A1 * kap
                sq = np.sqrt(np.where(disc >= 0, disc, np.nan))
                lin = np.abs(A1) <= 1e-15 * np.maximum(1.0, np.abs(g1))
                r1 = np.where(lin, -kap / (2.0 * g1), (-g1 + sq) / A1)
                r2 = np.where(lin, np.nan, (-g1 - sq) / A1)
            ws = [r1[:, None], r2[:, None]]
        else:
            try:
                Ainv = np.linalg.inv(A)
            except np.linalg.LinAlgError:
                Ainv = np.linalg.pinv(A)
            u = np.einsum("hij,hj->hi", Ainv, gam)
            w0 = -np.einsum("hij,hj->hi", Ainv, g)
            r = -np.einsum("hi,hi->h", g, w0) - kap
            den = np.einsum("hi,hi->h", gam, u)
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = r / den
                tau = np.sqrt(np.where(ratio >= 0, ratio, np.nan))
            ws = [w0 + tau[:, None] * u, w0 - tau[:, None] * u]
        for w in ws:
            x = np.zeros((H, L))
            x[:, f] = 1.0 / k + w @ N.T
            cand_x.append(x)

    X = np.stack(cand_x, axis=1)                            # [H, K, L]
    finite = np.isfinite(X).all(axis=2)
    Xc = np.where(finite[..., None], X, 0.0)
    inside = finite & (Xc >= -1e-9).all(axis=2)
    Xc = np.clip(Xc, 0.0, None)
    Xc = Xc / np.maximum(Xc.sum(axis=2, keepdims=True), 1e-300)
    m_, sd = promise_margin(Xc, mu_a[:, None, :], cv[:, None, :, :], th[:, None])
    scale = np.maximum(1.0, np.abs(mu_a).max(axis=1))[:, None]
    ok = inside & (m_ >= -tol * scale) & (m_ - z * sd >= -1e-9 * scale)
    ok[:, 0] |= th <= 1.0 + 1e-12                          # always-L0 keeps quality 1 ≥ θ
    C = np.where(ok, np.einsum("hkl,hl->hk", Xc, c), np.inf)
    best = C.min(axis=1, keepdims=True)
    near = ok & (C <= best + 1e-12 * np.maximum(1.0, np.abs(best)))
    Qm = np.where(near, np.einsum("hkl,hl->hk", Xc, mu_a), -np.inf)
    kbest = np.argmax(Qm, axis=1)
    feas = np.isfinite(best[:, 0])
    x = Xc[np.arange(H), kbest].copy()
    x[~feas] = np.nan
    return x, feas


def solve_chance_lp(costs_g: Sequence[float], mu: Sequence[float], cov: np.ndarray, theta: float, z: float,
                    tol: float = 1e-7, max_cuts: int = 300) -> tuple[np.ndarray, str]:
    """Single-hour reference for :func:`solve_chance_exact` with PuLP (CBC), by cutting planes.

    ``√(aᵀΣa) = max_{‖v‖=1} vᵀRa`` (``Σ = RᵀR``), so the cone constraint is the intersection of the
    linear constraints ``μᵀa − z·vᵀRa ≥ 0`` over unit ``v``. Starting from ``v = 0`` (the plug-in LP) each
    round adds the cut of the most violated ``v = Ra/‖Ra‖`` until the violation is below ``tol``
    (Kelley's method; the LP optimum of an outer approximation converges to the cone optimum from
    below in cost). Returns ``(x, status)`` with status ``"optimal"``, ``"infeasible"`` or ``"not converged"``.
    """
    import pulp

    c = np.asarray(costs_g, dtype=float)
    m = np.asarray(mu, dtype=float)
    L = len(c)
    S = np.asarray(cov, dtype=float) + 1e-14 * np.eye(L)
    R = np.linalg.cholesky(S).T                       # Σ = RᵀR
    e0 = np.eye(L)[0]
    cuts: list[np.ndarray] = [np.zeros(L)]
    x = np.full(L, np.nan)
    if theta <= 1.0 and z >= 0:
        pass  # always-L0 is feasible; the LP below finds a cheaper mix when there is one
    for _ in range(max_cuts):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            prob = pulp.LpProblem("sprout_chance", pulp.LpMinimize)
            xs = [pulp.LpVariable(f"x{i}", lowBound=0) for i in range(L)]
            prob += pulp.lpSum(float(c[i]) * xs[i] for i in range(L))
            prob += pulp.lpSum(xs) == 1
            for j, v in enumerate(cuts):
                w = m - z * (R.T @ v)                    # (μ − z·Rᵀv)ᵀa ≥ 0,  a = x − θe0
                prob += pulp.lpSum(float(w[i]) * xs[i] for i in range(L)) >= float(theta * w[0]), f"cut{j}"
            status = pulp.LpStatus[prob.solve(pulp.PULP_CBC_CMD(msg=False))]
        if status != "Optimal":
            if theta <= 1.0:
                return e0.copy(), "optimal"
            return np.full(L, np.nan), "infeasible"
        x = np.array([max(0.0, float(v.value() or 0.0)) for v in xs])
        x = x / x.sum()
        a = x - theta * e0
        Ra = R @ a
        nrm = float(np.linalg.norm(Ra))
        if z * nrm - float(m @ a) <= tol or nrm == 0.0:
            return x, "optimal"
        cuts.append(Ra / nrm)
    return x, "not converged"


def max_theta_at(mu: np.ndarray, cov: np.ndarray, z: float, lo: float = 0.0, hi: float | None = None,
                 iters: int = 50) -> float:
    """The largest floor θ any mix meets with probability ``Φ(z)`` (bisection on feasibility; ≥ 1 when
    another level can beat L0, since always-L0 meets every θ ≤ 1)."""
    mu = np.asarray(mu, dtype=float)
    if not mu[0] > 0:
        return float("nan")
    hi = float(mu.max() / mu[0]) if hi is None else float(hi)
    costs = np.zeros((1, len(mu)))
    if hi <= 1.0:
        return 1.0

    def feasible(t: float) -> bool:
        return bool(solve_chance_exact(costs, mu[None], np.asarray(cov)[None], np.array([t]), z)[1][0])

    lo = 1.0
    if feasible(hi):
        return hi
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if feasible(mid) else (lo, mid)
    return lo


def quality_interval(x: np.ndarray, mu: np.ndarray, cov: np.ndarray, confidence: float) -> tuple[float, float, float, float]:
    """The realised quality of mix ``x`` (fractions of always-L0 quality): ``(Q, sd, low, high)``.

    ``Q = μᵀx/μ₀`` is the expected quality, ``sd`` its spread (delta method); ``low`` is the floor the mix
    keeps with probability ``confidence`` under the same normal model as the promise (the largest ``t``
    with ``μᵀa − z·√(aᵀΣa) ≥ 0`` for ``a = x − t·e₀`` — so a decision promising θ has ``low ≥ θ``), and
    ``high`` the matching upper bound (realised quality stays below it with that probability). NaN when
    ``μ₀ = 0``."""
    x = np.asarray(x, dtype=float)
    mu = np.asarray(mu, dtype=float)
    cv = np.asarray(cov, dtype=float)
    nan = float("nan")
    if not mu[0] > 0 or not np.isfinite(x).all():
        return nan, nan, nan, nan
    Q = float(mu @ x / mu[0])
    d = (x - Q * np.eye(len(x))[0]) / mu[0]
    sd = float(np.sqrt(max(0.0, d @ cv @ d)))
    z = z_value(confidence)

    def g(t: float, sign: float) -> float:
        m, s_ = promise_margin(x, mu, cv, t)
        return float(m + sign * z * s_)

    def root(sign: float) -> float:
        lo, hi = Q - 10 * sd - 1.0, Q + 10 * sd + 1.0      # g decreases in t: positive at lo, negative at hi
        for _ in range(80):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if g(mid, sign) > 0 else (lo, mid)
        return 0.5 * (lo + hi)

    if z == 0.0:
        return Q, sd, Q, Q
    return Q, sd, root(-1.0), root(+1.0)
