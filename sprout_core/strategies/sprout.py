"""SPROUT: the hourly directive optimizer with q from the carbon-aware offline evaluator.

Each hour it minimises expected carbon per request subject to the quality promise: realised quality ≥ θ_h
with probability ``cfg.confidence`` (:func:`sprout_core.optimizer.solve_chance_exact`), using the latest
evaluator run's per-task verdicts re-weighted to the hour's task mix and their uncertainty
(:meth:`sprout_core.simulate.HourlyContext.promise`). Confidence 0.5 is the plug-in LP of the paper.
With ``cfg.per_task_floor`` every task must keep θ_h of its own always-L0 quality
(:func:`sprout_core.tasks.lp.solve_floor_per_task`).
"""
from __future__ import annotations

from sprout_core.strategies.base import StrategyOutput, register_strategy
from sprout_core.strategies.base import served as _served


@register_strategy("SPROUT", "the hourly optimizer with q from the carbon-aware offline evaluator; quality kept "
                             "with the chosen confidence")
def sprout(ctx) -> StrategyOutput:
    ev = ctx.evaluator()
    if ctx.cfg.per_task_floor and len(ctx.profile.tasks) > 1:
        from sprout_core.tasks import lp as task_lp

        x = task_lp.pooled_mix_with_task_floors(ctx.cost_lp, ev.q_lp_task, ev.n_task, ctx.weights, ctx.theta, ctx.z,
                                                ctx.measured, ctx.per_request(), ctx.pool_n)
        note = "per-task floor: every task keeps θ of its own always-L0 quality"
    else:
        mu, cov = ctx.promise(ev)
        x = ctx.solve(ctx.cost_lp, mu, ctx.theta, cov)
        note = f"quality promise kept with confidence {ctx.cfg.confidence:g}"
    return StrategyOutput(ctx.profile.levels, x, ctx.cost, **_served(ctx, x), uses_evaluator=True, note=note)
