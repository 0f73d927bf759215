"""MODEL-OPT: the hourly LP over model variants (e.g. Llama-2-13B vs 7B) without directives."""
from __future__ import annotations

from sprout_core import optimizer as opt
from sprout_core.strategies.base import StrategyOutput, quality_of, register_strategy


@register_strategy("MODEL-OPT", "the hourly LP over the model variants (e.g. 13B vs 7B) without directives",
                   available=lambda p: p.variant is not None)
def model_opt(ctx) -> StrategyOutput:
    """Its q is the variant profile's fixed pairwise win share (no per-hour sample exists for it), so the
    plug-in LP is used and its realised quality is that share under the hour's mix."""
    v = ctx.profile.variant
    e, t, q = v.under_mix(ctx.weights)
    cost = opt.cost_per_request(e, t, ctx.ci, v.k_emb, ctx.cfg.pue)
    x, feas = opt.solve_hours(cost, q, ctx.theta, solver=ctx.cfg.solver)
    x[~feas] = 0.0
    x[~feas, 0] = 1.0
    return StrategyOutput(v.levels, x, cost, quality_of(q, x), note=v.notes[0] if v.notes else "")
