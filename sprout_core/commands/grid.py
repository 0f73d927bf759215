"""``python -m sprout_core grid``: list the grid carbon-intensity traces, add your own, remove them.

Examples::

    python -m sprout_core grid list                      # zone, year, where it comes from
    python -m sprout_core grid add PL_2023_hourly.csv    # an Electricity Maps export (zone and year from the file)
    python -m sprout_core grid add lab.csv --zone MY-LAB --year 2024 --name "Our lab"   # hour,g/kWh CSV
    python -m sprout_core grid remove MY-LAB 2024        # only traces you added
    python -m sprout_core grid clear --visitors          # after a class: every visitor's uploads

Added traces are validated first (every problem names the file and line; nothing stored changes on a
bad file), kept in ``<state>/grid`` (``SPROUT_STATE_DIR``, default ``.sprout/``), and offered wherever a
zone is chosen (Playground, Optimizer, What-if, ``optimize``, ``simulate``, ``generate``).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sprout_core import grid
from sprout_core.errors import MissingDataError

ORIGIN_WORDS = {"shipped": "shipped", "public": "public folder", "operator": "operator's", "user": "added by you"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grid", help="list grid carbon-intensity traces, add your own, remove them",
                       description="Grid carbon-intensity traces: the shipped Electricity Maps zones, exports in the "
                                   "public data folder, and traces you add.")
    gsub = p.add_subparsers(dest="grid_command", required=True)
    ls = gsub.add_parser("list", help="every usable zone-year and where it comes from")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=run_list)
    add = gsub.add_parser("add", help="validate and store a CSV: an Electricity Maps export or hour,g/kWh columns",
                          description="Add a year of hourly carbon intensity: an Electricity Maps export (zone and "
                                      "year come from the file) or a two-column CSV (hour of the year from 0, or a "
                                      "UTC time; then g CO2eq/kWh).")
    add.add_argument("file", type=Path, help="the CSV file")
    add.add_argument("--zone", default=None, help="zone id (needed for a two-column file), e.g. MY-LAB")
    add.add_argument("--year", type=int, default=None, help="year (needed when the first column counts hours)")
    add.add_argument("--name", default=None, help="a readable zone name (default: the export's, or the zone id)")
    add.add_argument("--replace", action="store_true", help="replace a zone-year that already exists")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.set_defaults(func=run_add)
    rm = gsub.add_parser("remove", help="remove a trace you added (shipped ones stay)")
    rm.add_argument("zone")
    rm.add_argument("year", type=int)
    rm.set_defaults(func=run_remove)
    clr = gsub.add_parser("clear", help="the operator's reset after a class: delete every visitor's uploads",
                          description="Delete the traces class-mode visitors uploaded (<state>/visitors). Your own "
                                      "traces and the shipped data stay.")
    clr.add_argument("--visitors", action="store_true", required=True, help="every class-mode visitor's uploads")
    clr.set_defaults(func=run_clear)


def _row(i: grid.TraceInfo) -> dict:
    return {"zone": i.zone, "year": i.year, "zone_name": i.zone_name, "origin": i.origin, "path": str(i.path),
            "attribution": i.attribution}


def run_list(args: argparse.Namespace) -> int:
    infos, errors = grid.list_traces()
    for e in errors:
        print(f"skipped: {e}", file=sys.stderr)
    if args.json:
        print(json.dumps([_row(i) for i in infos], indent=2, ensure_ascii=False))
        return 0
    if not infos:
        print("no usable carbon-intensity trace")
        return 0
    print(f"{'zone':<14} {'year':<5} {'from':<14} name")
    for i in infos:
        print(f"{i.zone:<14} {i.year:<5} {ORIGIN_WORDS.get(i.origin, i.origin):<14} {i.zone_name}")
    print(f"\n{len(infos)} traces · {grid.ATTRIBUTION} (shipped and exported traces)")
    return 0


def run_add(args: argparse.Namespace) -> int:
    path = Path(args.file).expanduser()
    if not path.is_file():
        raise MissingDataError(f"{path}: no such file")
    info = grid.add_user_trace(path.read_bytes(), path.name, zone=args.zone, year=args.year, zone_name=args.name,
                               replace=args.replace)
    tr = grid.load_trace(info.zone, info.year)
    if args.json:
        print(json.dumps({**_row(info), "hours": len(tr), "min": tr.min(), "mean": tr.mean(), "max": tr.max()},
                         ensure_ascii=False))
    else:
        print(f"added {info.zone} {info.year} ({info.zone_name}): {len(tr)} hours, min {tr.min():.1f} · mean "
              f"{tr.mean():.1f} · max {tr.max():.1f} g CO2eq/kWh → {info.path}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    if grid.remove_user_trace(args.zone, args.year):
        print(f"removed your {args.zone} {args.year} trace")
        return 0
    print(f"error: you have not added a {args.zone} {args.year} trace (shipped and public-folder traces cannot be "
          "removed here)", file=sys.stderr)
    return 2


def run_clear(args: argparse.Namespace) -> int:
    visitors, traces = grid.clear_visitor_traces()
    print(f"removed {traces} trace(s) and the uploaded prompt files of {visitors} class-mode visitor(s); your own "
          "traces and the shipped data stay")
    return 0
