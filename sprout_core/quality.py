"""Quality estimates and their uncertainty: what the calibrated promise stands on.

Quality here is the *win share* ``q_i``: the share of prompts whose best answer (per a judge) came from
directive level ``i``. The optimizer's floor is relative to always-L0: realised quality of a mix ``x`` is
``Σ_i x_i q_i / q_0`` (a fraction; 1.0 = as good as always-L0).

Two samples stand between an estimate and what an hour delivers:

* **estimation** — the offline evaluator judged ``n_t`` prompts of task ``t``; its per-task shares
  ``q̂_t`` have the multinomial covariance ``V(p_t)/n_t`` with ``V(p) = diag(p) − p·pᵀ``;
* **realisation** — the hour serves ``N`` requests; their pooled win shares scatter around the mix's
  ``p̄ = Σ_t w_t p_t`` with covariance ``V(p̄)/N``.

Re-weighting the evaluator's *per-task* shares to the hour's task mix ``w`` (instead of reusing the
pooled share measured under the mix of the run's hour) keeps the estimate unbiased when the mix drifts:
``μ = Σ_t w_t q̂_t`` with estimation covariance ``Σ_t w_t² V(q̂_t)/n_t`` — a task that was rare when the
evaluator ran but is common now contributes a large variance, as it should.

Two more terms make the promise hold outside its own model (``docs/optimizer.md`` derives them):

* **finite population** — the judged prompts are a finite sample of ``P`` prompts of the users' kind, and
  the users' prompts another; the evaluator's pool and the users' population then differ by
  ``V(p)·(1/P_eval + 1/P_users)`` ≈ ``2·V(p)/P`` per task (:func:`slack_variance`'s ``n_pool``);
* **per-request assignment** — each request draws its level from the mix and is credited only if that
  level is its best: one request's slack ``d = 1[l = w] − θ·1[w = 0]`` has variance
  ``aᵀV(p)a + Σ_i x_i(1 − x_i)p_i`` (``a = x − θ·e₀``), larger than the expected credit's ``aᵀV(p)a``.

All functions are pure numpy and broadcast over leading axes (hours).
"""
from __future__ import annotations

import numpy as np

#: Prior strength (in verdicts) used only inside *variance* terms, pulling a task's shares toward the
#: pooled ones so that a task with very few verdicts (e.g. all of 3 won by L0) does not get zero variance.
VARIANCE_PRIOR_VERDICTS = 1.0


def share_cov(p: np.ndarray) -> np.ndarray:
    """``V(p) = diag(p) − p·pᵀ`` for shares ``p [..., L]`` → ``[..., L, L]`` (covariance of one verdict)."""
    p = np.asarray(p, dtype=float)
    return p[..., :, None] * np.eye(p.shape[-1]) - p[..., :, None] * p[..., None, :]


def estimate_under_mix(q_task: np.ndarray, n_task: np.ndarray, weights: np.ndarray,
                       q_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The win shares expected under a task mix, from per-task estimates, and their estimation covariance.

    ``q_task [..., T, L]``: per-task shares from ``n_task [..., T]`` verdicts; ``weights [..., T]``: the mix
    (sums to 1); ``q_prior [..., L]``: pooled shares used for tasks without verdicts (default: the
    verdict-weighted mean of ``q_task``). Returns ``(μ [..., L], Σ_est [..., L, L])``.

    A task with ``n_t = 0`` contributes its prior mean with the variance of a single verdict.
    """
    q_task = np.asarray(q_task, dtype=float)
    n = np.asarray(n_task, dtype=float)
    w = np.asarray(weights, dtype=float)
    if q_prior is None:
        tot = np.maximum(n.sum(axis=-1, keepdims=True), 1e-300)
        q_prior = np.einsum("...t,...tl->...l", n / tot, q_task)
    q_prior = np.asarray(q_prior, dtype=float)
    has = n > 0
    q_use = np.where(has[..., None], q_task, q_prior[..., None, :])
    mu = np.einsum("...t,...tl->...l", w, q_use)
    k = VARIANCE_PRIOR_VERDICTS
    p_var = (n[..., None] * q_use + k * q_prior[..., None, :]) / (n[..., None] + k)
    per = share_cov(p_var) / np.maximum(n, 1.0)[..., None, None]
    cov = np.einsum("...t,...tlk->...lk", w * w, per)
    return mu, cov


def realisation_cov(mu: np.ndarray, n_requests: np.ndarray | float) -> np.ndarray:
    """Covariance of the pooled win shares among ``n_requests`` requests drawn from shares ``mu [..., L]``."""
    n = np.maximum(np.asarray(n_requests, dtype=float), 1.0)
    return share_cov(mu) / n[..., None, None] if np.ndim(n) else share_cov(mu) / float(n)


def promise_inputs(q_task: np.ndarray, n_task: np.ndarray, weights: np.ndarray, n_requests: np.ndarray | float,
                   q_prior: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(μ, Σ)`` for the chance-constrained optimizer: the estimate under the mix and the covariance of
    (realised − estimated) shares = estimation + realisation."""
    mu, cov_est = estimate_under_mix(q_task, n_task, weights, q_prior)
    return mu, cov_est + realisation_cov(mu, n_requests)


def served_promise(q_task: np.ndarray, n_task: np.ndarray, weights: np.ndarray, n_requests: np.ndarray | float,
                   theta: np.ndarray | float, n_pool: np.ndarray | None = None,
                   per_request: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(μ, Σ)`` of the promise as it is served (replay and gateway alike): :func:`promise_inputs` plus the
    finite population of judged prompts (``2·Σ_t w_t² V_t / P_t``, ``n_pool [..., T]`` = ``P_t``; None = an
    infinite pool) and, when each request draws its level, :func:`assignment_cov` over the hour's requests."""
    mu, cov = promise_inputs(q_task, n_task, weights, n_requests)
    if n_pool is not None:
        pool = np.broadcast_to(np.asarray(n_pool, dtype=float), np.shape(n_task))
        cov = cov + 2.0 * estimate_under_mix(q_task, pool, weights)[1]
    if per_request:
        n = np.maximum(np.asarray(n_requests, dtype=float), 1.0)
        cov = cov + assignment_cov(mu, theta) / (n[..., None, None] if np.ndim(n) else float(n))
    return mu, cov


def normalised_quality(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``Σ_i x_i q_i / q_0`` (fraction of always-L0 quality); NaN (no warning) where ``q_0 = 0``."""
    q = np.asarray(q, dtype=float)
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(q[..., 0] > 0, (q * x).sum(axis=-1) / q[..., 0], np.nan)


def slack_variance(x: np.ndarray, q: np.ndarray, theta: np.ndarray | float, n_est: np.ndarray | float,
                   n_req: np.ndarray | float, n_pool: np.ndarray | float | None = None,
                   per_request: bool = True) -> np.ndarray:
    """Variance of the realised − estimated slack ``Σ_i x_i q_i − θ·q_0`` (win-share units) of serving mix
    ``x [..., L]`` to ``n_req`` requests whose shares ``q [..., L]`` were estimated from ``n_est`` verdicts.

    ``= aᵀV a·(1/n_est + 2/n_pool) + v_req/n_req`` with ``a = x − θ·e₀``, ``V = V(q)``; ``v_req`` is one
    request's variance: ``aᵀV a + Σ_i x_i(1 − x_i) q_i`` when each request draws its level
    (``per_request``), else ``aᵀV a`` (credited the expectation). ``n_pool`` = judged prompts the evaluator
    draws from (None = an infinite pool)."""
    x = np.asarray(x, dtype=float)
    q = np.asarray(q, dtype=float)
    a = x.copy()
    a[..., 0] = a[..., 0] - np.asarray(theta, dtype=float)
    aVa = np.maximum(np.einsum("...l,...lk,...k->...", a, share_cov(q), a), 0.0)
    inv_est = 1.0 / np.maximum(np.asarray(n_est, dtype=float), 1.0)
    if n_pool is not None:
        inv_est = inv_est + 2.0 / np.maximum(np.asarray(n_pool, dtype=float), 1.0)
    v_req = aVa + ((x * (1.0 - x) * q).sum(axis=-1) if per_request else 0.0)
    return aVa * inv_est + v_req / np.maximum(np.asarray(n_req, dtype=float), 1.0)


def assignment_cov(mu: np.ndarray, theta: np.ndarray | float) -> np.ndarray:
    """``[..., L, L]`` ``M`` with ``aᵀM a = Σ_i x_i(1 − x_i) μ_i`` for every mix ``x`` on the simplex
    (``a = x − θ·e₀``, ``θ < 1``): one request's extra variance from drawing its level.

    On the simplex ``Σ x_i μ_i = xᵀ sym(μ1ᵀ) x`` and ``x = B a`` with ``B = I + θ/(1 − θ)·e₀1ᵀ``
    (because ``1ᵀa = 1 − θ``), so ``M = Bᵀ(sym(μ1ᵀ) − diag(μ))B``. Not positive semi-definite off the simplex;
    the exact solver only evaluates it on the simplex."""
    mu = np.asarray(mu, dtype=float)
    L = mu.shape[-1]
    th = np.minimum(np.asarray(theta, dtype=float), 1.0 - 1e-6)
    one = np.ones(L)
    S = 0.5 * (mu[..., :, None] * one + one[:, None] * mu[..., None, :]) - mu[..., :, None] * np.eye(L)
    B = np.broadcast_to(np.eye(L), mu.shape[:-1] + (L, L)).copy()
    B[..., 0, :] = B[..., 0, :] + (th / (1.0 - th))[..., None]
    return np.einsum("...ji,...jk,...kl->...il", B, S, B)
