"""Serving strategies for the what-if replay: each a small function ``fn(ctx) -> StrategyOutput``.

The registry :data:`STRATEGIES` (name → :class:`StrategySpec`, in display order, :mod:`.base`) is filled by
the modules of this package when it is imported; another module adds one with :func:`register_strategy`. A strategy
sees one :class:`sprout_core.simulate.HourlyContext` (everything known per hour of the window) and returns
what it served; the replay loop (:mod:`sprout_core.simulate`) turns that into carbon and quality metrics.

======================  ====================================================================================
strategy                what it serves
======================  ====================================================================================
BASE                    always L0 (no directive)
CO2-OPT                 the cheapest level each hour, no quality constraint
STATIC                  one mix for the whole window, solved at the zone's yearly mean CI
SPROUT                  the hourly optimizer with q from the carbon-aware offline evaluator, promise at c
ORACLE                  per request, with each request's true verdict, energy and time (an upper bound)
MODEL-OPT               the hourly LP over model variants (13B vs 7B) without directives
SPROUT-TASK             one mix per predicted task (:mod:`sprout_core.tasks.sim`)
======================  ====================================================================================
"""
from __future__ import annotations

from sprout_core.strategies.base import (
    STRATEGIES,
    StrategyOutput,
    StrategySpec,
    quality_of,
    register_strategy,
    resolve_strategies,
    served,
)

__all__ = ["STRATEGIES", "StrategyOutput", "StrategySpec", "quality_of", "register_strategy", "resolve_strategies",
           "served"]

# the strategies register themselves on import (display order)
from sprout_core.strategies import baselines, sprout, oracle, model_opt, task  # noqa: E402,F401 - imported for their registration, in display order  # isort: skip
