"""``python -m sprout_core simulate``: replay a window of a zone's hourly trace with each strategy.

Example::

    python -m sprout_core simulate --profile llama2-13b-a100 --zone US-TEX-ERCO --year 2023 \\
        --start-hour 800 --hours 720 --xi 0.1 --strategies all --seed 0 --json

prints one JSON object keyed by strategy, each with ``carbon_g_per_request`` (g CO₂eq, incl. evaluator
runs), ``carbon_saving_pct`` (vs BASE), ``quality_pct`` (mean realised quality, % of always-L0),
``hours_meeting_floor_pct`` (share of hours whose realised quality met that hour's floor), ``quality_p5_pct``
and ``quality_min_pct`` (5th percentile and worst hour), ``quality_by_task_pct``, ``mean_x``,
``evaluator_runs``, ``evaluator_carbon_g`` and the ``method`` label; plus ``_window`` (hours, mode,
confidence). ``--start-hour`` counts hours from the first hour of the year in UTC. ``--confidence C`` is
the probability with which SPROUT keeps each hour's floor (default 0.9; 0.5 = the plug-in LP);
``--paper-faithful`` replays with the Sprout authors' semantics (docs/optimizer.md lists the differences).
"""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from tqdm import tqdm

from sprout_core import defaults, grid, profiles, simulate
from sprout_core import validate as V
from sprout_core.errors import InputError
from sprout_core.simulate import DEFAULT_CONFIDENCE, SimConfig, resolve_strategies
from sprout_core.tasks import sim as task_sim


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate", help="replay a grid trace window with Sprout and its baselines",
                       description="Replay a window of a zone's hourly carbon-intensity trace with BASE, CO2-OPT, "
                                   "STATIC, SPROUT, ORACLE and MODEL-OPT (and any registered strategy).")
    p.add_argument("--profile", default="llama2-13b-a100", help="llama2-13b-a100 (reference, default) or own")
    p.add_argument("--zone", default=defaults.default_zone(),
                   help=f"grid zone (default $SPROUT_ZONE or {defaults.DEFAULT_ZONE})")
    p.add_argument("--year", type=int, default=defaults.DEFAULT_YEAR, help=f"trace year (default {defaults.DEFAULT_YEAR})")
    p.add_argument("--start-hour", type=int, default=0, help="first hour, counted from Jan 1 00:00 UTC (default 0)")
    p.add_argument("--hours", type=int, default=720, help="window length in hours (default 720)")
    p.add_argument("--xi", type=float, default=0.1, help="quality tolerance ξ (default 0.1)")
    p.add_argument("--confidence", type=float, default=None,
                   help="probability that each hour's realised quality meets its floor, in [0.5, 1) (default 0.9; "
                        "0.5 = the plug-in LP; paper mode: 0.5)")
    p.add_argument("--paper-faithful", action="store_true",
                   help="replay with the Sprout authors' simulator semantics (their mixes, evaluator rule, STATIC, ORACLE)")
    p.add_argument("--mix-seed", type=int, default=None,
                   help="seed of the task-mix draw apart from the sampled prompts (default: --seed; paper mode: 0, "
                        "the authors' own draw behind their figures)")
    p.add_argument("--per-task-floor", action="store_true",
                   help="every task keeps θ of its own always-L0 quality (the default mode's floor; kept for old scripts)")
    p.add_argument("--pooled-floor", action="store_true",
                   help="one floor for the hour's pooled quality (paper mode's): a strategy may then give up a task")
    p.add_argument("--stress", choices=simulate.STRESSES, default="none",
                   help="held-out: the evaluator judges one half of each task's judged prompts and the users send the "
                        "other half (partition from --seed // 2, --seed %% 2 swaps the halves); default none")
    p.add_argument("--evaluator-memory", type=int, default=None,
                   help="pool the evaluator's verdicts of the last H hours per task (default 168; 0 = latest run only)")
    p.add_argument("--strategies", default="all", help="comma-separated names or 'all' (default)")
    p.add_argument("--seed", type=int, default=0, help="seed for task mix, samples and evaluator (default 0)")
    p.add_argument("--n-eval", type=int, default=None, help="prompts per evaluator run (default 500; paper mode 1000)")
    p.add_argument("--requests-per-hour", type=float, default=None, help="fixed volume (default: from the task-mix trace)")
    p.add_argument("--judge-kwh-per-prompt", type=float, default=None,
                   help="judge energy per prompt in kWh (default: unknown, not included)")
    p.add_argument("--pue", type=V.arg_number(*V.PUE_RANGE), default=None,
                   help=f"data-centre PUE, {V.PUE_RANGE[0]:g}–{V.PUE_RANGE[1]:g}, scales operational carbon only "
                        "(default 1.0; paper mode keeps 1)")
    p.add_argument("--solver", choices=["exact", "pulp"], default="exact", help="exact (default) or pulp per hour")
    p.add_argument("--json", action="store_true", help="print one JSON object keyed by strategy")
    p.set_defaults(func=run)


def _classifier_progress():
    """A stderr progress bar for training the task classifier (SPROUT-TASK's first use)."""

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


def floor_choice(args: argparse.Namespace) -> str | None:
    """``"per-task"``, ``"pooled"`` or None (the mode's default) from ``--per-task-floor``/``--pooled-floor``."""
    if getattr(args, "per_task_floor", False) and getattr(args, "pooled_floor", False):
        raise InputError("--per-task-floor and --pooled-floor contradict each other: give one (the default mode's "
                         "floor is per task, paper mode's pooled)")
    if getattr(args, "pooled_floor", False):
        return "pooled"
    return "per-task" if getattr(args, "per_task_floor", False) else None


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The replay's settings from the command line, validated before any work (InputError)."""
    kw = dict(start_hour=args.start_hour, hours=args.hours, xi=args.xi, seed=args.seed,
              requests_per_hour=args.requests_per_hour, judge_kwh_per_prompt=args.judge_kwh_per_prompt,
              solver=args.solver, stress=args.stress)
    floor = floor_choice(args)
    if floor is not None:
        kw["per_task_floor"] = floor == "per-task"
    for name, value in (("confidence", args.confidence), ("n_eval", args.n_eval),
                        ("evaluator_memory_h", args.evaluator_memory), ("mix_seed", args.mix_seed),
                        ("pue", getattr(args, "pue", None))):
        if value is not None:
            kw[name] = value
    if args.solver == "pulp" and (kw.get("confidence", 0.5 if args.paper_faithful else DEFAULT_CONFIDENCE) > 0.5):
        raise InputError("--solver pulp solves the plug-in LP only: use it with --confidence 0.5 (the exact solver "
                         "handles every confidence)")
    return SimConfig.paper_faithful(**kw) if args.paper_faithful else SimConfig(**kw)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)            # bad settings are refused before any data is read
    prof = profiles.load_profile(args.profile)
    if task_sim.requested(args.strategies):   # validate the other names before training anything
        others = [n for n in str(args.strategies).split(",") if n.strip() and n.strip().upper() != task_sim.STRATEGY_NAME]
        resolve_strategies(others or "BASE", prof)
    else:
        resolve_strategies(args.strategies, prof)
    trace = grid.load_trace(args.zone, args.year)
    note = task_sim.prepare(prof, args.strategies, progress=_classifier_progress())
    if note:
        print(f"note: {note}", file=sys.stderr)
    res = simulate.simulate(prof, trace, cfg, args.strategies)
    if args.json:
        out = {n: r.as_json() for n, r in res.results.items()}
        out["_window"] = {"zone": res.zone, "year": res.year, "start_hour": cfg.start_hour, "hours": len(res.ci),
                          "xi": cfg.xi, "confidence": cfg.confidence, "mode": "paper" if cfg.paper else "default",
                          "seed": cfg.seed, "pue": cfg.pue, "profile": prof.label, **cfg.window_json()}
        print(json.dumps(out, indent=2))
        return 0
    n_h = len(res.ci)
    mode = "paper-faithful" if cfg.paper else f"confidence {cfg.confidence:g}"
    mode += " · " + ", ".join(f"{k} {v}" for k, v in cfg.window_json().items())
    print(f"{prof.label} · {args.zone} {args.year} · hours {args.start_hour}–{args.start_hour + n_h - 1} ({n_h} h) · "
          f"ξ {cfg.xi} · {mode} · seed {cfg.seed} · PUE {cfg.pue:g} · {grid.ATTRIBUTION}")
    print(f"{'strategy':<11} {'g/request':>10} {'saving %':>9} {'quality %':>10} {'meet θ %':>9} {'p5 %':>6} "
          f"{'worst %':>8} {'eval runs':>9} {'eval g':>9}  mean x")
    for r in res.results.values():
        mx = ", ".join(f"{k} {v:.2f}" for k, v in r.mean_x.items())
        meet = "—" if not np.isfinite(r.hours_meeting_floor_pct) else f"{r.hours_meeting_floor_pct:.1f}"
        print(f"{r.name:<11} {r.carbon_g_per_request:>10.5f} {r.carbon_saving_pct:>9.1f} {r.quality_pct:>10.1f} "
              f"{meet:>9} {r.quality_p5_pct:>6.1f} {r.quality_min_pct:>8.1f} {r.evaluator_runs:>9d} "
              f"{r.evaluator_carbon_g:>9.1f}  {mx}")
    judge = "included" if res.judge_included else "n/a (not included)"
    charged = "charged" if cfg.charge_evaluator else "not charged (paper)"
    print(f"carbon in g CO₂eq ({prof.method}); evaluator carbon {charged} = generating its prompts at every level; "
          f"judge energy: {judge}; quality = realised win share, % of always-{prof.levels[0]}")
    return 0
