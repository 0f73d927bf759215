"""Counts of the shipped data, read from the data itself (a test never hard-codes them: data/ can grow)."""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def shipped_trace_count() -> int:
    """Zone-years in ``data/carbon`` (one per source file in its MANIFEST.json's ``built_from``)."""
    manifest = json.loads((ROOT / "data" / "carbon" / "MANIFEST.json").read_text(encoding="utf-8"))
    return len(manifest["built_from"])


def shipped_zone_years() -> list[tuple[str, int]]:
    """``(zone, year)`` of every shipped trace, from the MANIFEST's source names (``ZONE_YEAR_hourly.csv``)."""
    manifest = json.loads((ROOT / "data" / "carbon" / "MANIFEST.json").read_text(encoding="utf-8"))
    out = []
    for name in manifest["built_from"]:
        zone, year, _ = name.rsplit("_", 2)
        out.append((zone, int(year)))
    return sorted(out)


def shipped_zones_in(year: int) -> int:
    """How many zones have a shipped trace for ``year``."""
    return sum(1 for _, y in shipped_zone_years() if y == year)
