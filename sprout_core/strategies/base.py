"""The strategy registry and what a strategy returns (the ground floor of :mod:`sprout_core.strategies`).

A strategy is a small function ``fn(ctx) -> StrategyOutput``; ``ctx`` is one
:class:`sprout_core.simulate.HourlyContext` (everything known per hour of the window). The strategy
modules import this module (never the package), so the package can import them without a loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from sprout_core.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from sprout_core.profiles import Profile

#: what a strategy receives: a :class:`sprout_core.simulate.HourlyContext` (not imported here: the replay
#: imports this module, so naming its type would tie the two in a loop)
Context = Any


@dataclass
class StrategyOutput:
    """What a strategy served over the window.

    ``x [H, L]`` level shares; ``cost [H, L]`` g/request of each level for the hour's requests; ``quality
    [H]`` realised quality (fraction of always-L0's on the same requests); ``carbon_h [H]`` g/request served
    when it is not ``Σ x·cost`` (per-request strategies); ``quality_task [H, T]`` realised quality per task
    (fraction of that task's always-L0 quality); ``uses_evaluator`` charges the evaluator's runs;
    ``theta [H]`` the floor it promised against (``None`` = the hour's ξ floor, NaN = no promise).
    """

    levels: tuple[str, ...]
    x: np.ndarray
    cost: np.ndarray
    quality: np.ndarray
    uses_evaluator: bool = False
    note: str = ""
    carbon_h: np.ndarray | None = None
    quality_task: np.ndarray | None = None
    theta: np.ndarray | None = None


@dataclass(frozen=True)
class StrategySpec:
    name: str
    fn: Callable[[Context], StrategyOutput]
    description: str
    available: Callable[["Profile"], bool] = field(default=lambda p: True)


#: The strategy registry, in display order. Add with :func:`register_strategy`.
STRATEGIES: dict[str, StrategySpec] = {}


def register_strategy(name: str, description: str, available: Callable[["Profile"], bool] | None = None):
    """Decorator: register ``fn(ctx) -> StrategyOutput`` under ``name`` (replaces an existing one)."""
    def deco(fn):
        STRATEGIES[name] = StrategySpec(name, fn, description, available or (lambda p: True))
        return fn
    return deco


def resolve_strategies(names: str | Sequence[str] | None, profile: "Profile") -> list[str]:
    """``"all"``/None → every registered strategy the profile supports; else validate the names given
    (BASE is always added: savings are measured against it)."""
    if names is None or names == "all" or (not isinstance(names, str) and list(names) == ["all"]):
        return [n for n, s in STRATEGIES.items() if s.available(profile)]
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out = []
    for n in names:
        key = n.upper()
        if key not in STRATEGIES:
            raise InputError(f"unknown strategy {n!r}; choose from {list(STRATEGIES)} or 'all'")
        if not STRATEGIES[key].available(profile):
            raise InputError(f"strategy {key} is not available for the profile {profile.name}: "
                             f"{STRATEGIES[key].description}")
        if key not in out:
            out.append(key)
    if "BASE" not in out:
        out.insert(0, "BASE")
    return out


def served(ctx, x: np.ndarray) -> dict[str, np.ndarray]:
    """``{"quality": [H], "quality_task": [H, T]}`` realised by serving ``x`` (``HourlyContext.realised``:
    per-request assignment by default): keyword arguments of :class:`StrategyOutput`."""
    q, q_task = ctx.realised(x)
    return {"quality": q, "quality_task": q_task}


def quality_of(q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Realised quality ``Σ x·q / q_0`` per hour (and per task when ``q`` is ``[H, T, L]`` and ``x`` ``[H, L]``)."""
    from sprout_core.quality import normalised_quality

    if q.ndim == 3 and x.ndim == 2:
        return normalised_quality(q, x[:, None, :])
    return normalised_quality(q, x)

