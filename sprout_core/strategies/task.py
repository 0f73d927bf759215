"""SPROUT-TASK (one mix per predicted task) joins the registry; the logic lives in :mod:`sprout_core.tasks.sim`."""
from __future__ import annotations

from sprout_core.strategies.base import StrategyOutput, register_strategy
from sprout_core.tasks import sim as task_sim


def sprout_task(ctx) -> StrategyOutput:
    """What :func:`sprout_core.tasks.sim.sprout_task_served` served, as the replay's ``StrategyOutput``."""
    rep, note = task_sim.sprout_task_served(ctx)
    return StrategyOutput(ctx.profile.levels, rep.x_eff, rep.cost_eff, rep.quality, uses_evaluator=True, note=note,
                          quality_task=rep.quality_task)


register_strategy(task_sim.STRATEGY_NAME, task_sim.STRATEGY_DESCRIPTION, available=task_sim.available)(sprout_task)
