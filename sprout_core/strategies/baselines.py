"""BASE, CO2-OPT and STATIC: the baselines every replay compares Sprout with."""
from __future__ import annotations

import numpy as np

from sprout_core import optimizer as opt
from sprout_core import quality as qmod
from sprout_core.strategies.base import StrategyOutput, register_strategy
from sprout_core.strategies.base import served as _served


@register_strategy("BASE", "always L0 (no directive)")
def base(ctx) -> StrategyOutput:
    x = np.zeros((ctx.H, ctx.cost.shape[1]))
    x[:, 0] = 1.0
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, **_served(ctx, x))


@register_strategy("CO2-OPT", "the single cheapest level each hour, no quality constraint")
def co2_opt(ctx) -> StrategyOutput:
    x = np.eye(ctx.cost.shape[1])[np.argmin(ctx.cost_lp, axis=1)]
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, **_served(ctx, x), theta=np.full(ctx.H, np.nan))


@register_strategy("STATIC", "one mix for the whole window, solved once at a mean CI (the year's; paper mode: the "
                             "previous window's) with the window's average costs and (hindsight) true quality")
def static(ctx) -> StrategyOutput:
    """The authors' SPROUT_STA: costs and q averaged over the window (q from every hour's true sample),
    θ and costs at a mean CI — the year's (default), or the preceding window's in paper mode (their
    ``ci_past_month``; that variant reproduces the published STATIC figures). With a confidence above 0.5
    the one mix keeps its floor with that probability in a typical hour (realisation noise of the
    window's mean volume)."""
    e_bar, t_bar = ctx.e_lp.mean(axis=0), ctx.t_lp.mean(axis=0)
    wins = (ctx.q_true * ctx.n_true_task.sum(axis=1)[:, None]).sum(axis=0)
    q_bar = wins / wins.sum()
    c_bar = opt.cost_per_request(e_bar, t_bar, ctx.ci_mean, ctx.profile.k_emb, ctx.cfg.pue)
    th = float(opt.theta_from_xi(ctx.ci_mean, ctx.ci_min, ctx.ci_max, ctx.cfg.xi))
    cov = None
    if ctx.z > 0:
        n_bar = float(np.mean(ctx.measured))
        cov = qmod.realisation_cov(q_bar, n_bar)[None]
        if ctx.per_request():   # each request draws its level
            cov = cov + qmod.assignment_cov(q_bar, th)[None] / max(n_bar, 1.0)
    x1 = ctx.solve(c_bar[None], q_bar[None], np.array([th]), cov)[0]
    x = np.tile(x1, (ctx.H, 1))
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, **_served(ctx, x))
