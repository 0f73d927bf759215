"""ORACLE: an upper bound that knows every request's true verdict, energy and time.

Default (``cfg.oracle = "per-request"``): each hour, among the hour's actual requests (a random sample of up to
1,000 of them, drawn one by one from the judged prompts; see :mod:`sprout_core.workload`), serve every request
at its cheapest level except the ``K_h = ⌈θ_h · n₀⌉`` requests (``n₀`` = requests whose best answer is L0
— always-L0's quality on the same requests) that cost least to serve at their *winning* level instead;
requests whose winning level is already their cheapest count for free. Each request adds 1 to the
quality count and its penalty ``c(winner) − c(cheapest)`` to the carbon, so taking the smallest penalties
first is optimal: no assignment of levels to these requests meets the floor with less carbon. Its
quality is ``max(K_h, free)/n₀ ≥ θ_h`` in every hour.

Paper (``cfg.oracle = "paper"``, the authors' ``Oracle`` class): per hour 10,000 requests drawn with
repetition from the judged prompts under the hour's mix; the LP on their true win shares and mean
costs; then the requests with the largest carbon saving between the two active levels get the cheaper
one (verdicts are not used for the assignment); quality = requests served at their winning level ÷ the
share L0 wins.
"""
from __future__ import annotations

import numpy as np

from sprout_core import optimizer as opt
from sprout_core.strategies.base import StrategyOutput, register_strategy

#: Requests per hour the authors' ORACLE draws.
PAPER_ORACLE_REQUESTS = 10_000


@register_strategy("ORACLE", "per request, with each request's true verdict, energy and time: the least carbon "
                             "that meets the floor on the hour's actual requests (an upper bound on saving)")
def oracle(ctx) -> StrategyOutput:
    if ctx.cfg.oracle == "paper" and ctx.profile.prompts is not None:
        return paper_oracle(ctx)
    if ctx.requests.rows is None:
        return per_group_oracle(ctx)
    return per_request_oracle(ctx)


def per_group_oracle(ctx) -> StrategyOutput:
    """The per-request ORACLE when only counts are known (no per-prompt table, or paper-mode samples):
    the hour's requests of task ``t`` whose best level is ``w`` form one group with the task's mean costs;
    groups are taken in order of their penalty, the last one partly."""
    H, L = ctx.H, len(ctx.profile.levels)
    T = len(ctx.profile.tasks)
    c = ctx.cost_task()                                               # [H, T, L]
    n = ctx.q_true_task * ctx.n_true_task[..., None]                 # [H, T, L] requests by (task, winner)
    cmin = c.min(axis=2)                                              # [H, T]
    cheap = np.argmin(c, axis=2)
    n0 = n[..., 0].sum(axis=1)
    # the per-task floor: every task takes its own ⌈θ·n₀,t⌉ (groups ranked within the task); pooled: one ⌈θ·n₀⌉
    G = (H * T, L) if ctx.cfg.per_task_floor else (H, T * L)
    pen = (c - cmin[..., None]).reshape(G)
    cnt = n.reshape(G)
    n0_g = n[..., 0].reshape(H * T) if ctx.cfg.per_task_floor else n0
    th_g = np.repeat(ctx.theta, T) if ctx.cfg.per_task_floor else ctx.theta
    need = np.ceil(th_g * n0_g - 1e-9)
    free = pen <= 1e-15 * np.maximum(1.0, (cmin.reshape(H * T, 1) if ctx.cfg.per_task_floor
                                           else np.repeat(cmin, L, axis=1)))
    need = np.maximum(need, (cnt * free).sum(axis=1))
    order = np.argsort(pen, axis=1, kind="stable")
    cs = np.take_along_axis(cnt, order, axis=1)
    before = np.cumsum(cs, axis=1) - cs
    take_sorted = np.clip(need[:, None] - before, 0.0, cs)
    take = np.empty_like(take_sorted)
    np.put_along_axis(take, order, take_sorted, axis=1)
    take = take.reshape(H, T, L)                                      # served at their winning level
    total = np.maximum(n.sum(axis=(1, 2)), 1e-300)
    carbon_h = ((n * cmin[..., None]).sum(axis=(1, 2)) + (take * (c - cmin[..., None])).sum(axis=(1, 2))) / total
    x = take.sum(axis=1)
    rest = (n - take).sum(axis=2)                                     # at their task's cheapest level
    np.add.at(x, (np.repeat(np.arange(H), T), cheap.ravel()), rest.ravel())
    x = x / total[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = np.where(n0 > 0, take.sum(axis=(1, 2)) / n0, np.nan)
        q_task = np.where(n[..., 0] > 0, take.sum(axis=2) / n[..., 0], np.nan)
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, quality, carbon_h=carbon_h, quality_task=q_task,
                          note="per request (grouped by task and best level, at the task's mean costs): the least "
                               "carbon meeting θ on the hour's requests")


def per_request_oracle(ctx) -> StrategyOutput:
    """The exact per-request optimum on each hour's drawn requests, computed on a padded ``[hours, requests]``
    grid so every hour's requests are sorted by penalty at once."""
    table = ctx.profile.prompts
    rows, off = ctx.requests.rows, ctx.requests.offsets
    per_hour = np.diff(off)
    H, L = ctx.H, len(ctx.profile.levels)
    T = len(ctx.profile.tasks)
    M = int(per_hour.max()) if H else 0
    j = np.arange(M)
    valid = j[None, :] < per_hour[:, None]                               # [H, M]
    idx = np.where(valid, off[:-1, None] + j[None, :], 0)
    R = rows[idx] if len(rows) else np.zeros((H, M), dtype=np.int32)
    # float32 is ample for ranking and per-hour sums of ≤ 1,000 costs (relative error ~1e-7)
    e32, t32 = table.e_kwh.astype(np.float32), table.t_s.astype(np.float32)
    c = opt.cost_per_request(e32[R], t32[R], ctx.ci[:, None, None].astype(np.float32),
                             np.float32(ctx.profile.k_emb), ctx.cfg.pue).astype(np.float32)                  # [H, M, L]
    win = table.winner[R].astype(np.int64)
    cheap = np.argmin(c, axis=2)
    c_min = np.take_along_axis(c, cheap[..., None], axis=2)[..., 0]
    c_win = np.take_along_axis(c, win[..., None], axis=2)[..., 0]
    pen = np.where(valid, np.maximum(0.0, c_win - c_min), np.inf)
    n0 = ((win == 0) & valid).sum(axis=1)
    free = valid & (pen <= 1e-15 * np.maximum(1.0, c_min))
    task = table.task[R].astype(np.int64)
    if ctx.cfg.per_task_floor:
        # every task keeps its own floor: ⌈θ·n₀,t⌉ of its requests, its smallest penalties first
        grp = np.where(valid, task, T)                                   # padding sorts last
        order = np.lexsort((pen, grp), axis=1)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(j, (H, M)), axis=1)
        cnt_t = np.stack([(grp == k).sum(axis=1) for k in range(T + 1)], 1)
        start_t = np.cumsum(cnt_t, axis=1) - cnt_t                       # [H, T+1] first rank of each task
        n0_t = np.stack([((win == 0) & valid & (task == k)).sum(axis=1) for k in range(T)], 1)
        free_t = np.stack([(free & (task == k)).sum(axis=1) for k in range(T)], 1)
        take_t = np.concatenate([np.maximum(np.ceil(ctx.theta[:, None] * n0_t - 1e-9), free_t),
                                 np.zeros((H, 1))], axis=1)
        g = np.minimum(grp, T)
        in_task = rank - np.take_along_axis(start_t, g, axis=1)
        sel = valid & (in_task < np.take_along_axis(take_t, g, axis=1))
    else:
        take = np.maximum(np.ceil(ctx.theta * n0 - 1e-9), free.sum(axis=1))
        order = np.argsort(pen, axis=1)                                  # each hour's requests by penalty
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.broadcast_to(j, (H, M)), axis=1)
        sel = valid & (rank < take[:, None])                             # served at their winning level
    n = np.maximum(per_hour, 1)
    carbon_h = np.where(valid, np.where(sel, c_win, c_min), 0.0).sum(axis=1, dtype=np.float64) / n
    served = np.where(sel, win, cheap)
    x = np.stack([((served == i) & valid).sum(axis=1) for i in range(L)], 1) / n[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        quality = np.where(n0 > 0, sel.sum(axis=1) / n0, np.nan)
        n0_t = np.stack([((win == 0) & valid & (task == k)).sum(axis=1) for k in range(T)], 1)
        at_t = np.stack([(sel & (task == k)).sum(axis=1) for k in range(T)], 1)
        q_task = np.where(n0_t > 0, at_t / n0_t, np.nan)
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, quality, carbon_h=carbon_h, quality_task=q_task,
                          note="per request: the least carbon meeting θ on the hour's actual requests (exact)")


def paper_oracle(ctx) -> StrategyOutput:
    table = ctx.profile.prompts
    H, L = ctx.H, len(ctx.profile.levels)
    T = len(ctx.profile.tasks)
    sd = ctx.cfg.seed if ctx.cfg.sample_seed is None else ctx.cfg.sample_seed
    rng = np.random.default_rng(np.random.SeedSequence([int(sd), 99, int(ctx.hour_of_year[0])]))
    pools = table.pools(T)
    x_out = np.zeros((H, L))
    carbon_h = np.zeros(H)
    quality = np.zeros(H)
    k = ctx.profile.k_emb
    for h in range(H):
        counts = rng.multinomial(PAPER_ORACLE_REQUESTS, ctx.weights[h])
        rows = np.concatenate([pools[t][rng.integers(0, len(pools[t]), counts[t])] for t in range(T) if counts[t]])
        win = table.winner[rows].astype(np.int64)
        c = opt.cost_per_request(table.e_kwh[rows], table.t_s[rows], ctx.ci[h], k, ctx.cfg.pue)
        q = np.bincount(win, minlength=L) / len(rows)
        cbar = opt.cost_per_request(table.e_kwh[rows].mean(0), table.t_s[rows].mean(0), ctx.ci[h], k)
        x, feas = opt.solve_exact(cbar[None], q[None], np.array([ctx.theta[h] * q[0]]))
        x = x[0] if feas[0] else np.eye(L)[0]
        active = np.flatnonzero(x > 1e-9)
        if len(active) == 1:
            served = np.full(len(rows), active[0])
        else:
            a0, a1 = sorted(active[np.argsort(-x[active])[:2]])
            saving = c[:, a0] - c[:, a1]
            order = np.argsort(-saving, kind="stable")
            n1 = int(np.ceil(x[a1] * len(rows) - 1e-9))
            served = np.full(len(rows), a0)
            served[order[:n1]] = a1
        carbon_h[h] = c[np.arange(len(rows)), served].mean()
        quality[h] = np.mean(served == win) / q[0] if q[0] > 0 else np.nan
        x_out[h] = x
    return StrategyOutput(ctx.profile.levels, x_out, ctx.cost, quality, carbon_h=carbon_h,
                          note="the authors' ORACLE: 10,000 requests per hour, the cheaper active level to the "
                               "largest carbon savings")
