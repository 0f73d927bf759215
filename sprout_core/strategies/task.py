"""SPROUT-TASK (one mix per predicted task) joins the registry; the logic lives in :mod:`sprout_core.tasks.sim`."""
from __future__ import annotations

from sprout_core.strategies import register_strategy
from sprout_core.tasks import sim as task_sim

register_strategy(task_sim.STRATEGY_NAME, task_sim.STRATEGY_DESCRIPTION, available=task_sim.available)(task_sim.sprout_task)
