"""Issue 9's numbers: the calibrated promise, ORACLE, the paper-faithful mode and what each difference does.

Run: ``.venv/bin/python benchmarks/bench_promise.py [--parts calibration,paper,oracle,diff,spread,timing] [--json FILE]``

* ``calibration``: the reference profile (ξ = 0.1) over the paper's 15 zone-windows × seeds 0–2 in the
  default mode, for confidence 0.5 / 0.8 / 0.9 / 0.95: the share of hours whose realised quality met that
  hour's floor (pooled), the mean saving and quality, the mean 5th-percentile and the worst hour;
* ``paper``: the paper-faithful mode over the same windows, per seed and averaged over seeds 0–2, next to
  the paper's published means; ORACLE against SPROUT per window;
* ``oracle``: the default mode's ORACLE against SPROUT (confidence 0.9) per window;
* ``diff``: every way the default mode differs from the paper, each switched on alone from paper mode,
  with its effect on SPROUT, STATIC and CO2-OPT (seeds 0–2);
* ``spread``: the paper mode's 15-window means for mix seeds 0–11 (how much one task-mix draw moves them);
* ``timing``: a full year of every zone-year × the six strategies (exact solver), and without ORACLE.

Prints the machine's load next to the numbers: timings from a shared machine are only comparable within
one run.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sprout_core import grid, profiles, simulate  # noqa: E402
from sprout_core.schedule import ScheduleParams  # noqa: E402

SEEDS = (0, 1, 2)
SIX = ["BASE", "CO2-OPT", "STATIC", "SPROUT", "ORACLE", "MODEL-OPT"]


def _windows():
    return [(grid.load_trace(z, 2023), s) for z, s in simulate.PAPER_WINDOWS]


def _run(prof, wins, make_cfg, names, seeds=SEEDS) -> pd.DataFrame:
    rows = []
    for tr, s in wins:
        for sd in seeds:
            res = simulate.simulate(prof, tr, make_cfg(s, sd), names)
            for n, r in res.results.items():
                rows.append({"zone": tr.zone, "start": s, "seed": sd, "strategy": n, "saving": r.carbon_saving_pct,
                             "quality": r.quality_pct, "meet": r.hours_meeting_floor_pct, "p5": r.quality_p5_pct,
                             "worst": r.quality_min_pct, "runs": r.evaluator_runs})
    return pd.DataFrame(rows)


def calibration(prof, wins) -> pd.DataFrame:
    out = []
    for c in (0.5, 0.8, 0.9, 0.95):
        df = _run(prof, wins, lambda s, sd: simulate.SimConfig(start_hour=s, hours=720, seed=sd, confidence=c), ["SPROUT"])
        sp = df[df.strategy == "SPROUT"]
        out.append({"confidence": f"{c:.2f}", "hours_meeting_floor_pct": sp.meet.mean(), "worst_window_meeting_pct": sp.meet.min(),
                    "saving_pct": sp.saving.mean(), "quality_pct": sp.quality.mean(), "p5_pct": sp.p5.mean(),
                    "worst_hour_pct": sp.worst.min()})
    return pd.DataFrame(out)


def paper(prof, wins, mix_follows_seed: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paper mode; by default with the authors' own task mixes (mix seed 0) and seeds 0–2 drawing the samples,
    or (``mix_follows_seed``) with the task mixes drawn from each seed as well."""
    df = _run(prof, wins, lambda s, sd: simulate.SimConfig.paper_faithful(
        start_hour=s, hours=720, seed=sd, mix_seed=sd if mix_follows_seed else 0),
              ["BASE", "CO2-OPT", "STATIC", "SPROUT", "ORACLE"])
    per_seed = df.groupby(["strategy", "seed"])[["saving", "quality"]].mean().unstack("seed")
    rows = []
    for name, (ps, pq) in simulate.PAPER_PUBLISHED.items():
        d = df[df.strategy == name]
        s0 = d[d.seed == 0]
        rows.append({"strategy": name, "paper_saving": ps, "seed0_saving": s0.saving.mean(), "seeds012_saving": d.saving.mean(),
                     "paper_quality": pq, "seed0_quality": s0.quality.mean(), "seeds012_quality": d.quality.mean()})
    o = df[df.strategy == "ORACLE"].set_index(["zone", "start", "seed"])
    s = df[df.strategy == "SPROUT"].set_index(["zone", "start", "seed"])
    rows.append({"strategy": "ORACLE", "seed0_saving": o.xs(0, level="seed").saving.mean(),
                 "seeds012_saving": o.saving.mean(), "seed0_quality": o.xs(0, level="seed").quality.mean(),
                 "seeds012_quality": o.quality.mean(),
                 "oracle_minus_sprout_pp_min": float((o.saving - s.saving).min()),
                 "oracle_minus_sprout_pp_mean": float((o.saving - s.saving).mean())})
    return pd.DataFrame(rows), per_seed


def oracle(prof, wins) -> pd.DataFrame:
    df = _run(prof, wins, lambda s, sd: simulate.SimConfig(start_hour=s, hours=720, seed=sd), ["SPROUT", "ORACLE"])
    o = df[df.strategy == "ORACLE"].groupby(["zone", "start"])[["saving", "quality"]].mean()
    s = df[df.strategy == "SPROUT"].groupby(["zone", "start"])[["saving", "quality"]].mean()
    return pd.DataFrame({"oracle_saving": o.saving, "sprout_saving": s.saving, "margin_pp": o.saving - s.saving,
                         "oracle_quality": o.quality}).reset_index()


#: each way the default mode differs from the paper: (name, the default's value of the switched fields)
DIFFERENCES = [
    ("evaluator test: trailing 24-h mean (paper: the window's mean)", dict(schedule=ScheduleParams(gap_rule="more-than"))),
    ("evaluator gap: ≥ 6 h (paper: > 6 h)", dict(schedule=ScheduleParams(mean_rule="window"))),
    ("evaluator: own 500 prompts per run (paper: the hour's own 1,000-prompt true sample)",
     dict(evaluator_is_hour_sample=False, n_eval=500)),
    ("evaluator verdicts pooled over a week per task (paper: latest run only)", dict(evaluator_memory_h=168)),
    ("q re-weighted per task to the hour's mix (paper: the run's pooled q)", dict(reweight=True)),
    ("confidence 0.9 (paper: 0.5, the plug-in LP)", dict(confidence=0.9)),
    ("evaluator carbon charged (paper: not)", dict(charge_evaluator=True)),
    ("means over requests (paper: plain hourly means)", dict(weighting="requests")),
    ("hour's truth: its actual requests by volume, their own costs (paper: 1,000 judged prompts, costs over prompts < 5000)",
     dict(paper_requests=False, paper_costs=False)),
    ("task mix: the trace row of each hour (paper: one row further per refresh)", dict(mix_model="trace-hour")),
    ("STATIC at the year's mean CI (paper: the previous window's)", dict(static_ci="year")),
]
#: (ORACLE's two definitions are compared in the "paper" and "oracle" parts.)


def differences(prof, wins) -> pd.DataFrame:
    names = ["BASE", "CO2-OPT", "STATIC", "SPROUT"]
    base = _run(prof, wins, lambda s, sd: simulate.SimConfig.paper_faithful(start_hour=s, hours=720, seed=sd), names)
    ref = base.groupby("strategy")[["saving", "quality", "meet"]].mean()
    rows = [{"difference": "(paper mode)", **{f"{n}_saving": ref.loc[n, "saving"] for n in names[1:]},
             **{f"{n}_quality": ref.loc[n, "quality"] for n in names[1:]}, "SPROUT_meet": ref.loc["SPROUT", "meet"]}]
    for label, change in DIFFERENCES:
        df = _run(prof, wins, lambda s, sd: simulate.SimConfig.paper_faithful(start_hour=s, hours=720, seed=sd, **change),
                  names)
        m = df.groupby("strategy")[["saving", "quality", "meet"]].mean()
        rows.append({"difference": label, **{f"{n}_saving": m.loc[n, "saving"] - ref.loc[n, "saving"] for n in names[1:]},
                     **{f"{n}_quality": m.loc[n, "quality"] - ref.loc[n, "quality"] for n in names[1:]},
                     "SPROUT_meet": m.loc["SPROUT", "meet"] - ref.loc["SPROUT", "meet"]})
    d = _run(prof, wins, lambda s, sd: simulate.SimConfig(start_hour=s, hours=720, seed=sd), names)
    m = d.groupby("strategy")[["saving", "quality", "meet"]].mean()
    rows.append({"difference": "(default mode: all of them)", **{f"{n}_saving": m.loc[n, "saving"] for n in names[1:]},
                 **{f"{n}_quality": m.loc[n, "quality"] for n in names[1:]}, "SPROUT_meet": m.loc["SPROUT", "meet"]})
    return pd.DataFrame(rows)


def spread(prof, wins, n=12) -> pd.DataFrame:
    df = _run(prof, wins, lambda s, sd: simulate.SimConfig.paper_faithful(start_hour=s, hours=720, seed=sd),
              ["BASE", "CO2-OPT", "STATIC", "SPROUT"], seeds=range(n))
    return df.groupby(["strategy", "seed"])[["saving", "quality"]].mean().unstack("strategy")


def timing(prof) -> dict:
    infos, _ = grid.list_traces()
    traces = [grid.load_trace(i.zone, i.year) for i in infos]
    out = {"zone_years": len(traces), "hours": int(sum(len(t) for t in traces))}
    for label, names in (("six_strategies_s", SIX), ("without_oracle_s", [n for n in SIX if n != "ORACLE"])):
        for warm in (False, True):
            t0 = time.perf_counter()
            for tr in traces:
                simulate.simulate(prof, tr, simulate.SimConfig(start_hour=0, hours=len(tr)), names)
            out[f"{label}{'_warm' if warm else '_cold'}"] = time.perf_counter() - t0
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="calibration,paper,oracle,diff,spread,timing")
    ap.add_argument("--json", default=None, help="also write every table to this JSON file")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    prof = profiles.load_reference()
    wins = _windows()
    print(f"load average before: {os.getloadavg()}")
    out: dict = {}
    pd.set_option("display.width", 200, "display.max_columns", 30)
    if "calibration" in parts:
        t = calibration(prof, wins)
        print("\n== calibration (default mode, 15 windows × seeds 0–2)\n" + t.round(1).to_string(index=False))
        out["calibration"] = t.to_dict(orient="records")
    if "paper" in parts:
        for follow in (False, True):
            t, ps = paper(prof, wins, follow)
            what = "task mixes drawn from each seed" if follow else "the authors' task mixes (mix seed 0)"
            print(f"\n== paper-faithful mode vs the paper's published means — {what}\n" + t.round(2).to_string(index=False))
            print(ps.round(1).to_string())
            out["paper_mix_follows_seed" if follow else "paper"] = t.to_dict(orient="records")
    if "oracle" in parts:
        t = oracle(prof, wins)
        print("\n== default mode: ORACLE vs SPROUT (confidence 0.9) per window\n" + t.round(1).to_string(index=False))
        out["oracle"] = t.to_dict(orient="records")
    if "diff" in parts:
        t = differences(prof, wins)
        print("\n== each difference from the paper, switched on alone (pp change; seeds 0–2)\n" + t.round(1).to_string(index=False))
        out["differences"] = t.to_dict(orient="records")
    if "spread" in parts:
        t = spread(prof, wins)
        print("\n== paper mode, 15-window means per task-mix seed\n" + t.round(1).to_string())
        print(t.agg(["mean", "std"]).round(2).to_string())
        out["spread"] = json.loads(t.to_json())
    if "timing" in parts:
        t = timing(prof)
        print("\n== timing: a full year of every zone-year\n" + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                                                           for k, v in t.items()}))
        out["timing"] = t
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
