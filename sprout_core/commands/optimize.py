"""``python -m sprout_core optimize``: one hour's directive mix from the Sprout LP.

Example::

    python -m sprout_core optimize --profile llama2-13b-a100 --zone US-TEX-ERCO --ci 300 --xi 0.1 --json

prints ``x`` (level → share), ``carbon_g_per_request`` (g CO₂eq, operational + embodied), ``quality_pct``
(Σ q·x / q₀, %), ``binding`` (``quality`` or ``none``) and ``status`` (``optimal``/``infeasible``), plus the
method label. CI_min/CI_max come from the zone's trace for ``--year``. Exit code 0 when optimal, 1 when
infeasible (θ above what any mix reaches; the message names the largest reachable θ), 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("optimize", help="one hour's directive mix from the Sprout LP",
                       description="Solve the Sprout LP for one hour: which share of requests gets each directive level.")
    p.add_argument("--profile", default="llama2-13b-a100", help="llama2-13b-a100 (reference, default) or own")
    p.add_argument("--zone", default="US-TEX-ERCO", help="grid zone whose yearly CI range scales ξ (default US-TEX-ERCO)")
    p.add_argument("--year", type=int, default=2023, help="trace year (default 2023)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ci", type=float, default=None, help="carbon intensity in g/kWh (default: the zone's yearly mean)")
    g.add_argument("--hour", type=int, default=None, help="take CI from this hour of the year (0 = Jan 1 00:00 UTC)")
    p.add_argument("--xi", type=float, default=0.1, help="quality tolerance ξ at the dirtiest hour (default 0.1)")
    p.add_argument("--theta", type=float, default=None, help="fixed quality floor θ (fraction of q₀) instead of ξ")
    p.add_argument("--task-mix", default=None, help="task weights, e.g. math=2,mmlu=1 (default: equal weights)")
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
            raise ValueError(f"task mix entry {part!r} is not task=weight")
        k, v = part.split("=", 1)
        out[k.strip()] = float(v)
    return out


def run(args: argparse.Namespace) -> int:
    from sprout_core import grid, optimizer, profiles
    from sprout_core.paths import MissingDataError

    try:
        prof = profiles.load_profile(args.profile)
        trace = grid.load_trace(args.zone, args.year)
        w = prof.weights_from(_parse_mix(args.task_mix))
    except (MissingDataError, grid.TraceError, profiles.ProfileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.hour is not None:
        if not 0 <= args.hour < len(trace):
            print(f"error: --hour must be 0 … {len(trace) - 1} for {args.zone} {args.year}", file=sys.stderr)
            return 2
        ci = float(trace.ci[args.hour])
    else:
        ci = float(args.ci) if args.ci is not None else trace.mean()
    if ci < 0:
        print("error: --ci must be ≥ 0 g/kWh", file=sys.stderr)
        return 2
    if args.theta is None and not 0 <= args.xi <= 1:
        print("error: --xi must be between 0 and 1", file=sys.stderr)
        return 2
    theta = args.theta if args.theta is not None else optimizer.theta_from_xi(ci, trace.min(), trace.max(), args.xi)
    e, t, q = prof.under_mix(w)
    op, emb = e * ci, prof.k_emb * t
    d = optimizer.solve(op + emb, q, float(theta), prof.levels, split=(op, emb), ci=ci, solver=args.solver)
    ok = d.status == "optimal"
    out = {
        "x": d.x_dict() if ok else None,
        "carbon_g_per_request": d.carbon_g if ok else None,
        "quality_pct": d.quality * 100 if ok else None,
        "binding": d.binding,
        "status": d.status,
        "operational_g_per_request": d.operational_g if ok else None,
        "embodied_g_per_request": (d.embodied_g if prof.k_emb_g_per_s is not None else "n/a") if ok else None,
        "theta": float(theta), "max_theta": d.max_theta, "ci_g_per_kwh": ci, "zone": args.zone, "year": args.year,
        "profile": prof.label, "method": prof.method, "message": d.message,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"{prof.label} · {args.zone} {args.year} · CI {ci:.1f} g/kWh · θ {theta:.3f}")
        if ok:
            print("mix: " + ", ".join(f"{k} {v:.1%}" for k, v in d.x_dict().items()))
            print(f"carbon: {d.carbon_g:.5f} g CO₂eq/request ({prof.method}); quality: {d.quality:.1%} of always-{prof.levels[0]}; "
                  f"binding: {d.binding}")
        print(d.message)
    return 0 if ok else 1
