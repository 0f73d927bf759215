"""Energy per request and per token for each directive level on the project's starter prompts.

    .venv/bin/python benchmarks/bench_energy_levels.py               # 12 prompts (2 per category), 256 tokens
    .venv/bin/python benchmarks/bench_energy_levels.py --n 60 --json
    .venv/bin/python benchmarks/bench_energy_levels.py --store       # also record the requests in the history

Uses the embedded model (or ``--model``) and the meter :func:`sprout_core.energy.detect_meter` picks for
its device; every figure is printed with its method label (on a machine without RAPL/NVML:
``estimated:cpu-tdp``, an estimate with ±50 % stated uncertainty, not a measurement).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_energy_overhead import prompts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=12, help="starter prompts, stratified by category (default 12)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--model", default=None, help="'embedded' (default) or a local model folder")
    ap.add_argument("--device", default=None)
    ap.add_argument("--store", action="store_true", help="record the requests in the history database (origin 'bench')")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from tqdm import tqdm

    from sprout_core import store
    from sprout_core.carbon import override_intensity
    from sprout_core.directives import load_directive_set
    from sprout_core.energy import detect_meter
    from sprout_core.generation import GenerationParams
    from sprout_core.metered import CarbonSettings, metered_generate
    from sprout_core.models import load_model

    lm = load_model(args.model, device=args.device, threads=1)
    meter = detect_meter(lm.info.device)
    settings = CarbonSettings(override_intensity(300.0))
    dset = load_directive_set(lm.info.directive_set)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    ps = prompts(args.n)
    run_id = store.new_run_id()
    rows: dict[str, list] = {d.level: [] for d in dset.levels}
    bar = tqdm(total=len(ps) * len(dset.levels), desc="requests", file=sys.stderr)
    load0 = os.getloadavg()[0]
    for p in ps:
        for d in dset.levels:
            o = metered_generate(lm, p, d, params, meter, settings, save=args.store, run_id=run_id, origin="bench")
            rows[d.level].append((o.reading.energy_j, o.result.new_tokens, o.reading.duration_s, o.reading.method))
            bar.update(1)
    bar.close()
    report = {"model": lm.info.name, "device": lm.info.device, "meter": meter.name, "method": meter.method,
              "source": meter.describe(), "prompts": len(ps), "max_new_tokens": args.max_new_tokens,
              "loadavg_start": load0, "loadavg_end": os.getloadavg()[0], "levels": {}}
    base = None
    for level, rs in rows.items():
        e = [r[0] for r in rs if r[0] is not None]
        toks = sum(r[1] for r in rs)
        entry = {
            "directive": dset.get(level).text,
            "requests": len(rs), "energy_known": len(e),
            "mean_energy_j": statistics.mean(e) if e else None,
            "median_energy_j": statistics.median(e) if e else None,
            "energy_j_per_token": (sum(e) / toks) if e and toks and len(e) == len(rs) else None,
            "mean_new_tokens": toks / len(rs), "mean_s": statistics.mean(r[2] for r in rs),
            "methods": sorted({r[3] for r in rs}),
        }
        if base is None:
            base = entry
        elif base["mean_energy_j"] and entry["mean_energy_j"] is not None:
            entry["energy_saving_vs_first_pct"] = (1 - entry["mean_energy_j"] / base["mean_energy_j"]) * 100
        report["levels"][level] = entry
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{lm.info.name} on {lm.info.device}; meter {meter.name} ({meter.method}); {len(ps)} prompts; "
              f"max {args.max_new_tokens} new tokens; load average {load0:.2f} → {report['loadavg_end']:.2f}")
        print(f"{'level':6} {'mean J/request':>15} {'J/token':>9} {'new tokens':>11} {'s/request':>10} {'saving':>8}  method")
        for level, x in report["levels"].items():
            mj = f"{x['mean_energy_j']:.3g}" if x["mean_energy_j"] is not None else "n/a"
            jt = f"{x['energy_j_per_token']:.3g}" if x["energy_j_per_token"] is not None else "n/a"
            sv = f"{x['energy_saving_vs_first_pct']:.0f} %" if "energy_saving_vs_first_pct" in x else "—"
            print(f"{level:6} {mj:>15} {jt:>9} {x['mean_new_tokens']:>11.1f} {x['mean_s']:>10.2f} {sv:>8}  {', '.join(x['methods'])}")
        print(f"meter: {meter.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
