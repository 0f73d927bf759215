"""Per-request level assignment: which level serves request k of hour h.

One rule, shared by the replay (``simulate``) and the gateway: request k of hour h draws
``u_k`` from ``level_stream(seed, hour)`` (the k-th draw of that stream) and is served at
the level the inverse CDF of the hour's mix picks for ``u_k``. A stateless server drawing
``u_k`` one at a time from the same stream serves request k at the same level as the
replay, so a promise measured by the replay is the promise the gateway keeps.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import InputError as AssignmentError


def level_stream(seed: int, hour: int) -> np.random.Generator:
    """The random stream of one hour: ``np.random.default_rng([seed, hour])``.

    ``seed`` and ``hour`` are non-negative integers (hour of the year, 0–8783)."""
    if int(seed) < 0 or int(hour) < 0:
        raise AssignmentError(f"seed and hour must be ≥ 0 (got seed={seed}, hour={hour}).")
    return np.random.default_rng([int(seed), int(hour)])


def _cumulative(x: np.ndarray) -> np.ndarray:
    """Renormalised cumulative shares along the last axis; the last column is exactly 1."""
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise AssignmentError("level shares must be finite and ≥ 0.")
    total = x.sum(axis=-1, keepdims=True)
    if np.any(total <= 0):
        raise AssignmentError("a level mix has no positive share to draw from.")
    cum = np.cumsum(x / total, axis=-1)
    cum[..., -1] = 1.0
    return cum


def pick_level(x: Sequence[float], u: float) -> int:
    """The first level index whose cumulative share exceeds ``u`` (inverse CDF).

    ``x``: shares per level (any non-negative scale, renormalised); ``u`` in [0, 1).
    A level whose share is zero is never picked (its cumulative share equals the previous
    one, and "exceeds" is strict)."""
    cum = _cumulative(np.asarray(x, dtype=float))
    if not 0.0 <= float(u) < 1.0:
        raise AssignmentError(f"u must lie in [0, 1) (got {u}).")
    return int(np.searchsorted(cum, float(u), side="right"))


def pick_levels(x: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Vectorised :func:`pick_level`: ``x`` is one mix ``[L]`` or one per draw ``[n, L]``;
    ``u`` is ``[n]``. Returns ``int64 [n]``, identical to calling ``pick_level`` per draw."""
    x = np.asarray(x, dtype=float)
    u = np.asarray(u, dtype=float)
    cum = _cumulative(x)
    if cum.ndim == 1:
        return np.searchsorted(cum, u, side="right").astype(np.int64)
    if cum.shape[0] != u.shape[0]:
        raise AssignmentError(f"{cum.shape[0]} mixes for {u.shape[0]} draws.")
    # count of cumulative shares ≤ u = first index whose cumulative share exceeds u
    idx = (cum <= u[:, None]).sum(axis=1)
    return np.minimum(idx, cum.shape[1] - 1).astype(np.int64)


def assign_hour(x: np.ndarray | Sequence[float], n: int, seed: int, hour: int) -> np.ndarray:
    """Levels of the ``n`` requests of one hour: ``[pick_level(x_k, u_k)]`` with
    ``u = level_stream(seed, hour).random(n)``.

    ``x``: one mix ``[L]`` for every request or one per request ``[n, L]`` (per-task mixes
    for SPROUT-TASK). Returns ``int64 [n]`` level indices."""
    n = int(n)
    if n < 0:
        raise AssignmentError(f"n must be ≥ 0 (got {n}).")
    u = level_stream(seed, hour).random(n)
    x = np.asarray(x, dtype=float)
    if x.ndim == 2 and x.shape[0] != n:
        raise AssignmentError(f"{x.shape[0]} per-request mixes for {n} requests.")
    return pick_levels(x, u)
