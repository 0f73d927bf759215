"""Issue 9's numbers: the calibrated promise, ORACLE, the paper-faithful mode and what each difference does.

Run: ``.venv/bin/python benchmarks/bench_promise.py [--parts calibration,paper,oracle,diff,spread,timing] [--json FILE]``

* ``promise`` (issue 18): the promise outside its own model — SPROUT (and SPROUT-TASK beside it, fewer
  seeds: its per-hour LPs are slow) over the paper's 15 windows × seeds 0–23 (``--seeds``), per-request
  assignment, for confidence 0.5 / 0.8 / 0.9 / 0.95, under ``--stress held-out`` and without, with the
  per-task floor (default: task-hours count) and the pooled one: the share of (task-)hours meeting their
  floor, the saving, and every task's mean quality (% of its own always-L0);
* ``calibration``: the reference profile (ξ = 0.1) over the paper's 15 zone-windows × seeds 0–2 in the
  default mode, for confidence 0.5 / 0.8 / 0.9 / 0.95: the share of hours whose realised quality met that
  hour's floor (pooled), the mean saving and quality, the mean 5th-percentile and the worst hour;
* ``paper``: the paper-faithful mode over the same windows, per seed and averaged over seeds 0–2, next to
  the paper's published means; ORACLE against SPROUT per window;
* ``oracle``: the default mode's ORACLE against SPROUT (confidence 0.9) per window;
* ``diff``: every way the default mode differs from the paper, each switched on alone from paper mode,
  with its effect on SPROUT, STATIC and CO2-OPT (seeds 0–2);
* ``spread``: the paper mode's 15-window means for mix seeds 0–11 (how much one task-mix draw moves them);
* ``timing``: a full year of every zone-year × the six strategies (exact solver), and without ORACLE;
* ``authors`` (needs ``--authors-repo``, a clone of ``boringlee24/EMNLP24_Sprout``): paper mode next to the
  authors' own per-window result files (``sprout/system/results/<zone>/season_<start>/``): their evaluator's
  run hours against paper mode's; their hourly decisions re-costed with this project's accounting; and this
  project's optimizer fed the authors' evaluator estimates (recovered exactly from their files), hour by hour;
* ``draws`` (slow): paper mode's SPROUT 15-window mean over 40 draws of the samples (mix seed 0).

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

from sprout_core import grid, profiles, simulate
from sprout_core.schedule import ScheduleParams

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
        df = _run(prof, wins, lambda s, sd, c=c: simulate.SimConfig(start_hour=s, hours=720, seed=sd, confidence=c), ["SPROUT"])
        sp = df[df.strategy == "SPROUT"]
        out.append({"confidence": f"{c:.2f}", "hours_meeting_floor_pct": sp.meet.mean(), "worst_window_meeting_pct": sp.meet.min(),
                    "saving_pct": sp.saving.mean(), "quality_pct": sp.quality.mean(), "p5_pct": sp.p5.mean(),
                    "worst_hour_pct": sp.worst.min()})
    return pd.DataFrame(out)


CONFIDENCES = (0.5, 0.8, 0.9, 0.95)


def promise(prof, wins, seeds, task_seeds, floors=("per-task", "pooled"), stresses=("held-out", "none")) -> pd.DataFrame:
    """Issue 18's target table: one row per (strategy, floor, stress, confidence)."""
    from sprout_core.tasks import sim as task_sim

    with_task = task_sim.STRATEGY_NAME in simulate.resolve_strategies("all", prof)
    rows = []
    for floor in floors:
        for stress in stresses:
            recs = []
            for sd in seeds:
                for tr, s in wins:
                    cfg = simulate.SimConfig(start_hour=s, hours=720, seed=sd, stress=stress,
                                             per_task_floor=floor == "per-task")
                    ctx = simulate.build_context(prof, tr, cfg)       # one window's requests and evaluator for every c
                    for c in CONFIDENCES:
                        names = ["SPROUT"]
                        if with_task and sd in task_seeds and c == 0.9:
                            names.append(task_sim.STRATEGY_NAME)
                        res = simulate.simulate(prof, tr, strategies=names, context=simulate.with_confidence(ctx, c))
                        for n in names:
                            r = res.results[n]
                            recs.append({"strategy": n, "confidence": c, "seed": sd, "meet": r.hours_meeting_floor_pct,
                                         "saving": r.carbon_saving_pct, "quality": r.quality_pct,
                                         **{f"q_{t}": v for t, v in r.quality_by_task_pct.items()}})
            df = pd.DataFrame(recs)
            for (n, c), d in df.groupby(["strategy", "confidence"]):
                tcols = [k for k in d.columns if k.startswith("q_")]
                rows.append({"strategy": n, "floor": floor, "stress": stress, "confidence": c, "replays": len(d),
                             "seeds": d.seed.nunique(), "meet_pct": d.meet.mean(), "meet_sd_over_seeds":
                             d.groupby("seed").meet.mean().std(), "saving_pct": d.saving.mean(),
                             "quality_pct": d.quality.mean(),
                             "min_task_mean_pct": min(d[k].mean() for k in tcols) if tcols else float("nan"),
                             **{k[2:] + "_pct": d[k].mean() for k in tcols}})
            print(f"  … floor {floor}, stress {stress}: {len(df)} strategy-replays", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


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
    ("task mix: this project's walk and draw, the trace row of each hour (paper: the authors' draw, one row further per refresh)",
     dict(mix_model="trace-hour")),
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
        df = _run(prof, wins, lambda s, sd, change=change: simulate.SimConfig.paper_faithful(start_hour=s, hours=720, seed=sd, **change),
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


#: the authors' zone names in their result paths
AUTHORS_ZONES = {"US-TEX-ERCO": "US-TEX", "US-CAL-CISO": "US-CAL", "AU-SA": "AU-SA", "NL": "NL", "GB": "GB"}


def _authors_file(repo: Path, zone: str, start: int, name: str):
    """One of the authors' result files, from the work tree or (a bare mirror) from git; ``None`` if absent.
    Their season-800 runs predate the ``season_<start>`` folders, so those fall back to the zone's root."""
    import subprocess
    z = AUTHORS_ZONES[zone]
    rels = [f"sprout/system/results/{z}/season_{start}/{name}"] + ([f"sprout/system/results/{z}/{name}"] if start == 800 else [])
    for rel in rels:
        if (repo / rel).is_file():
            return json.loads((repo / rel).read_text())
        r = subprocess.run(["git", "--git-dir", str(repo if (repo / "HEAD").is_file() else repo / ".git"), "show", f"HEAD:{rel}"],
                           capture_output=True)
        if r.returncode == 0:
            return json.loads(r.stdout)
    return None


def authors(prof, wins, repo: Path) -> pd.DataFrame:
    """Paper mode (seed 0, the authors' mixes) against the authors' result files, per window.

    At an evaluator run hour r the authors' LP uses that hour's own sample q_r, and their files record
    ``pref_max`` = q_r[0] and ``quality_preference`` = q_r · x_r, so with x_r and q_r[2] = 1 − q_r[0] − q_r[1]
    the estimate is recovered exactly: q_r[1] = (qp − q0·x0 − (1 − q0)·x2) / (x1 − x2)."""
    import numpy as np

    from sprout_core import optimizer as opt
    rows = []
    for tr, s in wins:
        cfg = simulate.SimConfig.paper_faithful(start_hour=s, hours=720, seed=0, mix_seed=0)
        lp = _authors_file(repo, tr.zone, s, "torelance_0.1/lp_opt_pai_gen.json")
        base = _authors_file(repo, tr.zone, s, "torelance_0.1/baseline_opt_pai_gen.json")
        runs = _authors_file(repo, tr.zone, s, "offline_assessment.json")
        if lp is None or base is None or runs is None:
            raise SystemExit(f"the authors' result files for {tr.zone} hour {s} are not in {repo}")
        ctx = simulate.build_context(prof, tr, cfg)
        res = simulate.simulate(prof, tr, cfg, ["BASE", "SPROUT"])
        sp = res.results["SPROUT"]
        ax, qp, q0 = np.array(lp["x"]), np.array(lp["quality_preference"]), np.array(lp["pref_max"])
        run_hours = [0] + [int(r) for r in runs]
        ours_runs = [int(r) for r in sp.refresh_hours]
        q_run = np.full((len(ax), 3), np.nan)
        for r in run_hours:
            x = ax[r]
            q1 = (qp[r] - q0[r] * x[0] - (1 - q0[r]) * x[2]) / (x[1] - x[2])
            q_run[r] = (q0[r], q1, 1 - q0[r] - q1)
        run_at = np.maximum.accumulate(np.where(np.isin(np.arange(len(ax)), run_hours), np.arange(len(ax)), 0))
        x_fed, _ = opt.solve_hours(ctx.cost_lp, q_run[run_at], ctx.theta)
        c = ctx.cost

        def saving(x, c=c):
            return 100 * (1 - (x * c).sum(1).mean() / c[:, 0].mean())
        rows.append({"zone": tr.zone, "start": s,
                     "runs_equal": ours_runs == run_hours, "runs": len(run_hours),
                     "published_saving": 100 * (1 - np.mean(lp["carbon_per_req"]) / np.mean(base["carbon_per_req"])),
                     "their_x_our_costs": saving(ax),
                     "our_optimizer_their_q": saving(x_fed), "max_abs_dx": float(np.abs(x_fed - ax).max()),
                     "paper_mode_seed0": sp.carbon_saving_pct,
                     "their_gap01_at_runs": float(np.mean(q_run[run_hours, 0] - q_run[run_hours, 1])),
                     "our_gap01_at_runs": float(np.mean(ctx.q_true[ours_runs, 0] - ctx.q_true[ours_runs, 1]))})
    return pd.DataFrame(rows)


def draws(prof, wins, n=40) -> pd.Series:
    """Paper mode's SPROUT 15-window mean saving for sample seeds 0 … n−1 (the authors' mixes)."""
    import numpy as np
    return pd.Series({sd: float(np.mean([simulate.simulate(prof, tr, simulate.SimConfig.paper_faithful(
        start_hour=s, hours=720, seed=sd, mix_seed=0), ["BASE", "SPROUT"]).results["SPROUT"].carbon_saving_pct
        for tr, s in wins])) for sd in range(n)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="calibration,paper,oracle,diff,spread,timing")
    ap.add_argument("--json", default=None, help="also write every table to this JSON file")
    ap.add_argument("--seeds", type=int, default=24, help="seeds 0…N−1 for --parts promise (default 24)")
    ap.add_argument("--task-seeds", type=int, default=4,
                    help="of those, the first N also replay SPROUT-TASK at c = 0.9 (default 4; its LPs are slow)")
    ap.add_argument("--floors", default="per-task,pooled", help="floors for --parts promise")
    ap.add_argument("--stresses", default="held-out,none", help="stresses for --parts promise")
    ap.add_argument("--authors-repo", type=Path, default=None,
                    help="a clone (or bare mirror) of boringlee24/EMNLP24_Sprout, for --parts authors")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    prof = profiles.load_reference()
    wins = _windows()
    print(f"load average before: {os.getloadavg()}")
    out: dict = {}
    pd.set_option("display.width", 200, "display.max_columns", 30)
    if "promise" in parts:
        from sprout_core.tasks import sim as task_sim

        task_sim.prepare(prof, "SPROUT-TASK")
        t0 = time.perf_counter()
        t = promise(prof, wins, range(args.seeds), set(range(args.task_seeds)), tuple(args.floors.split(",")),
                    tuple(args.stresses.split(",")))
        print(f"\n== the promise outside its own model (reference profile, ξ = 0.1, 15 windows × seeds 0–{args.seeds - 1}, "
              f"per-request assignment; SPROUT-TASK: seeds 0–{args.task_seeds - 1} at c = 0.9) "
              f"[{time.perf_counter() - t0:.0f} s]\n" + t.round(1).to_string(index=False))
        out["promise"] = t.to_dict(orient="records")
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
    if "authors" in parts:
        if args.authors_repo is None:
            ap.error("--parts authors needs --authors-repo PATH (a clone of boringlee24/EMNLP24_Sprout)")
        t = authors(prof, wins, args.authors_repo)
        print("\n== paper mode (seed 0) next to the authors' own result files\n" + t.round(3).to_string(index=False))
        print(t.drop(columns=["zone", "start", "runs_equal"]).mean().round(3).to_string())
        out["authors"] = t.to_dict(orient="records")
    if "draws" in parts:
        t = draws(prof, wins)
        pub = simulate.PAPER_PUBLISHED["SPROUT"][0]
        print(f"\n== paper mode, SPROUT 15-window mean over {len(t)} sample draws: mean {t.mean():.2f} %, sd {t.std():.2f} pp, "
              f"range {t.min():.2f}–{t.max():.2f} %; draws at or below the published {pub} %: {(t <= pub).sum()}")
        out["draws"] = t.to_dict()
    print(f"\nload average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
