"""The one default grid zone and year for the whole app and CLI.

Every page (Playground, Lesson, Optimizer, What-if) and every command (``generate``, ``optimize``,
``simulate``) that needs a zone or a year and was given none uses these, so a number priced on one page
is priced the same on the next:

* :data:`DEFAULT_ZONE` = ``US-TEX-ERCO`` (ERCOT, Texas) — one of the Sprout paper's five zones;
* :data:`DEFAULT_YEAR` = ``2023`` — the paper's year, shipped for every zone in ``data/carbon``.

``$SPROUT_ZONE`` changes the zone (``SPROUT_ZONE=DE``); a zone without a 2023 trace uses its latest year.
"""
from __future__ import annotations

from typing import Iterable

from sprout_core.settings import Settings

#: grid zone used wherever none is chosen (Electricity Maps zone id)
DEFAULT_ZONE = "US-TEX-ERCO"
#: trace year used wherever none is chosen
DEFAULT_YEAR = 2023


def default_zone() -> str:
    """``$SPROUT_ZONE`` when set, else :data:`DEFAULT_ZONE`."""
    return Settings.from_env().zone or DEFAULT_ZONE


def latest_year(years: Iterable[int]) -> int | None:
    """The latest of ``years`` (the years a zone has traces for); ``None`` when there are none. The one
    "latest year per zone" rule: :func:`latest_years`, :func:`default_year`, the gateway and the zone prices
    call it."""
    ys = [int(y) for y in years]
    return max(ys) if ys else None


def latest_years(infos: Iterable) -> dict[str, int]:
    """``{zone: its latest year}`` over trace infos (anything with ``.zone`` and ``.year``)."""
    by_zone: dict[str, list[int]] = {}
    for i in infos:
        by_zone.setdefault(i.zone, []).append(int(i.year))
    return {z: latest_year(ys) for z, ys in by_zone.items()}


def default_year(years: Iterable[int]) -> int | None:
    """:data:`DEFAULT_YEAR` when it is one of ``years`` (the years a zone has traces for), else the latest of
    them; ``None`` when there are none."""
    ys = {int(y) for y in years}
    return DEFAULT_YEAR if DEFAULT_YEAR in ys else latest_year(ys)
