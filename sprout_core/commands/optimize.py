"""``python -m sprout_core optimize``: one hour's directive mix from the Sprout LP.

Example::

    python -m sprout_core optimize --profile llama2-13b-a100 --zone US-TEX-ERCO --ci 300 --xi 0.1 --json

prints ``x`` (level → share), ``carbon_g_per_request`` (g CO₂eq, operational × ``--pue`` + embodied), ``quality_pct``
(Σ q·x / q₀, %), ``binding`` (``quality`` or ``none``) and ``status`` (``optimal``/``infeasible``), plus the
method label. CI_min/CI_max come from the zone's trace for ``--year``. Exit code 0 when optimal, 1 when
infeasible (θ above what any mix reaches; the message names the largest reachable θ), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import math

from sprout_core import decision, defaults, grid, optimizer, profiles
from sprout_core import validate as V
from sprout_core.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="one hour's directive mix from the Sprout LP",
                       description="Solve the Sprout LP for one hour: which share of requests gets each directive level.")
    p.add_argument("--profile", default="llama2-13b-a100", help="llama2-13b-a100 (reference, default) or own")
    p.add_argument("--zone", default=defaults.default_zone(),
                   help=f"grid zone whose yearly CI range scales ξ (default $SPROUT_ZONE or {defaults.DEFAULT_ZONE})")
    p.add_argument("--year", type=int, default=defaults.DEFAULT_YEAR, help=f"trace year (default {defaults.DEFAULT_YEAR})")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ci", type=float, default=None, help="carbon intensity in g/kWh (default: the zone's yearly mean)")
    g.add_argument("--hour", type=int, default=None, help="take CI from this hour of the year (0 = Jan 1 00:00 UTC)")
    p.add_argument("--xi", type=float, default=0.1, help="quality tolerance ξ at the dirtiest hour (default 0.1)")
    p.add_argument("--theta", type=float, default=None, help="fixed quality floor θ (fraction of q₀) instead of ξ")
    p.add_argument("--task-mix", default=None, help="task weights, e.g. math=2,mmlu=1 (default: equal weights)")
    p.add_argument("--confidence", type=float, default=0.5,
                   help="probability that the hour's realised quality meets the floor, in [0.5, 1) (default 0.5 = "
                        "the plug-in LP of the paper)")
    p.add_argument("--requests-per-hour", type=float, default=None,
                   help="requests in the hour (sets how much its realised quality scatters; default: the task-mix "
                        "trace's mean)")
    p.add_argument("--pue", type=V.arg_number(*V.PUE_RANGE), default=1.0,
                   help=f"data-centre PUE, {V.PUE_RANGE[0]:g}–{V.PUE_RANGE[1]:g}, scales operational carbon only (default 1.0)")
    p.add_argument("--pooled-floor", action="store_true",
                   help="one floor on the hour's pooled quality (what optimize decides; echoed as floor: pooled)")
    p.add_argument("--per-task-floor", action="store_true",
                   help="refused here: optimize decides one pooled mix for one hour; simulate (the default) and "
                        "What-if keep every task's own floor")
    p.add_argument("--solver", choices=["exact", "pulp"], default="pulp", help="pulp (default) or the exact solver")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _parse_mix(text: str | None) -> dict[str, float] | None:
    if not text:
        return None
    out = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise InputError(f"task mix entry {part!r} is not task=weight")
        k, v = part.split("=", 1)
        try:
            w = float(v)
        except ValueError:
            raise InputError(f"task mix weight {v!r} of {k.strip()!r} is not a number") from None
        if not (math.isfinite(w) and w >= 0):
            raise InputError(f"task mix weight of {k.strip()!r} must be a finite number ≥ 0, got {v.strip()}")
        out[k.strip()] = w
    return out


def _check_number(name: str, v: float | None, lo: float, hi: float, lo_open: bool = False) -> None:
    if v is None:
        return
    if not math.isfinite(v) or v < lo or (lo_open and v == lo) or v > hi:
        raise InputError(f"{name} must be a finite number in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {v:g}")


def run(args: argparse.Namespace) -> int:
    from sprout_core.commands.simulate import floor_choice

    if floor_choice(args) == "per-task":   # both flags are refused there too
        raise InputError("optimize decides one pooled mix for one hour: --per-task-floor applies to simulate (its "
                         "default) and What-if; use --pooled-floor or neither here")
    # every setting is checked before any data is read
    _check_number("--ci", args.ci, 0.0, 100_000.0)
    _check_number("--xi", args.xi, 0.0, 1.0)
    _check_number("--theta", args.theta, 0.0, 10.0, lo_open=True)
    _check_number("--requests-per-hour", args.requests_per_hour, 0.0, 1e9, lo_open=True)
    optimizer.z_value(args.confidence)
    mix = _parse_mix(args.task_mix)
    prof = profiles.load_profile(args.profile)
    trace = grid.load_trace(args.zone, args.year)
    w = prof.weights_from(mix)
    if args.hour is not None:
        if not 0 <= args.hour < len(trace):
            raise InputError(f"--hour must be 0 … {len(trace) - 1} for {args.zone} {args.year}, got {args.hour}")
        ci = float(trace.ci[args.hour])
    else:
        ci = float(args.ci) if args.ci is not None else trace.mean()
    theta = args.theta if args.theta is not None else optimizer.theta_from_xi(ci, trace.min(), trace.max(), args.xi)
    d = decision.hour_decision(prof, ci, float(theta), w, confidence=args.confidence,
                               requests_per_hour=args.requests_per_hour, solver=args.solver, pue=args.pue)
    ok = d.status == "optimal"

    def f(v):
        return float(v) if ok and v is not None and math.isfinite(v) else None

    out = {
        "x": d.x_dict() if ok else None,
        "carbon_g_per_request": f(d.carbon_g),
        "quality_pct": f(d.quality * 100),
        "confidence": args.confidence,
        "quality_low_pct": f(d.quality_low * 100), "quality_high_pct": f(d.quality_high * 100),
        "quality_sd_pct": f(d.quality_sd * 100),
        "binding": d.binding,
        "status": d.status,
        "operational_g_per_request": f(d.operational_g),
        "embodied_g_per_request": (f(d.embodied_g) if prof.k_emb_g_per_s is not None else "n/a") if ok else None,
        "theta": float(theta), "max_theta": d.max_theta, "ci_g_per_kwh": ci, "pue": args.pue, "zone": args.zone, "year": args.year,
        "profile": prof.label, "method": prof.method, "message": d.message, "floor": "pooled",
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{prof.label} · {args.zone} {args.year} · CI {ci:.1f} g/kWh · PUE {args.pue:g} · θ {theta:.3f} · "
              f"confidence {args.confidence:g}")
        if ok:
            print("mix: " + ", ".join(f"{k} {v:.1%}" for k, v in d.x_dict().items()))
            band = (f" (with {args.confidence:.0%} confidence ≥ {d.quality_low:.1%}; upper {d.quality_high:.1%})"
                    if args.confidence > 0.5 else "")
            print(f"carbon: {d.carbon_g:.5f} g CO₂eq/request ({prof.method}); quality: {d.quality:.1%} of "
                  f"always-{prof.levels[0]}{band}; binding: {d.binding}")
        print(d.message)
    return 0 if ok else 1
