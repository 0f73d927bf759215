"""``python -m sprout_core simulate``: replay a window of a zone's hourly trace with each strategy.

Example::

    python -m sprout_core simulate --profile llama2-13b-a100 --zone US-TEX-ERCO --year 2023 \\
        --start-hour 800 --hours 720 --xi 0.1 --strategies all --seed 0 --json

prints one JSON object keyed by strategy, each with ``carbon_g_per_request`` (g CO₂eq, incl. evaluator
runs), ``carbon_saving_pct`` (vs BASE), ``quality_pct`` (mean over hours of Σ q·x / q₀, %), ``mean_x``,
``evaluator_runs``, ``evaluator_carbon_g`` and the ``method`` label. ``--start-hour`` counts hours from
the first hour of the year in UTC.
"""
from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="replay a grid trace window with Sprout and its baselines",
                       description="Replay a window of a zone's hourly carbon-intensity trace with BASE, CO2-OPT, "
                                   "STATIC, SPROUT, ORACLE and MODEL-OPT (and any registered strategy).")
    p.add_argument("--profile", default="llama2-13b-a100", help="llama2-13b-a100 (reference, default) or own")
    p.add_argument("--zone", default="US-TEX-ERCO", help="grid zone (default US-TEX-ERCO)")
    p.add_argument("--year", type=int, default=2023, help="trace year (default 2023)")
    p.add_argument("--start-hour", type=int, default=0, help="first hour, counted from Jan 1 00:00 UTC (default 0)")
    p.add_argument("--hours", type=int, default=720, help="window length in hours (default 720)")
    p.add_argument("--xi", type=float, default=0.1, help="quality tolerance ξ (default 0.1)")
    p.add_argument("--strategies", default="all", help="comma-separated names or 'all' (default)")
    p.add_argument("--seed", type=int, default=0, help="seed for task mix, samples and evaluator (default 0)")
    p.add_argument("--n-eval", type=int, default=500, help="prompts per evaluator run (default 500)")
    p.add_argument("--requests-per-hour", type=float, default=None, help="fixed volume (default: from the task-mix trace)")
    p.add_argument("--judge-kwh-per-prompt", type=float, default=None,
                   help="judge energy per prompt in kWh (default: unknown, not included)")
    p.add_argument("--solver", choices=["exact", "pulp"], default="exact", help="exact (default) or pulp per hour")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by strategy")
    p.set_defaults(func=run)


def _classifier_progress():
    """A stderr progress bar for training the task classifier (SPROUT-TASK's first use)."""
    from tqdm import tqdm

    bar = {}

    def cb(done: int, total: int) -> None:
        if total <= 0:
            return
        if "b" not in bar:
            bar["b"] = tqdm(total=total, desc="embedding prompts for the task classifier", unit="prompt", file=sys.stderr)
        bar["b"].n = done
        bar["b"].refresh()
        if done >= total:
            bar["b"].close()

    return cb


def run(args: argparse.Namespace) -> int:
    from sprout_core import grid, profiles, simulate
    from sprout_core.paths import MissingDataError

    try:
        prof = profiles.load_profile(args.profile)
        trace = grid.load_trace(args.zone, args.year)
        cfg = simulate.SimConfig(start_hour=args.start_hour, hours=args.hours, xi=args.xi, seed=args.seed,
                                 n_eval=args.n_eval, requests_per_hour=args.requests_per_hour,
                                 judge_kwh_per_prompt=args.judge_kwh_per_prompt, solver=args.solver)
        if args.n_eval < 1:
            raise ValueError("--n-eval must be ≥ 1")
        from sprout_core.tasks import sim as task_sim  # SPROUT-TASK: trains its classifier when named

        note = task_sim.prepare(prof, args.strategies, progress=_classifier_progress())
        if note:
            print(f"note: {note}", file=sys.stderr)
        res = simulate.simulate(prof, trace, cfg, args.strategies)
    except (MissingDataError, grid.TraceError, profiles.ProfileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({n: r.as_json() for n, r in res.results.items()}, indent=2))
        return 0
    n_h = len(res.ci)
    print(f"{prof.label} · {args.zone} {args.year} · hours {args.start_hour}–{args.start_hour + n_h - 1} ({n_h} h) · "
          f"ξ {args.xi} · seed {args.seed} · {grid.ATTRIBUTION}")
    print(f"{'strategy':<11} {'g/request':>10} {'saving %':>9} {'quality %':>10} {'eval runs':>9} {'eval g':>9}  mean x")
    for r in res.results.values():
        mx = ", ".join(f"{k} {v:.2f}" for k, v in r.mean_x.items())
        print(f"{r.name:<11} {r.carbon_g_per_request:>10.5f} {r.carbon_saving_pct:>9.1f} {r.quality_pct:>10.1f} "
              f"{r.evaluator_runs:>9d} {r.evaluator_carbon_g:>9.1f}  {mx}")
    judge = "included" if res.judge_included else "n/a (not included)"
    print(f"carbon in g CO₂eq ({prof.method}); evaluator carbon = generating its prompts at every level; judge energy: {judge}")
    return 0
