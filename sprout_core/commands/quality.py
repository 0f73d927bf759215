"""``python -m sprout_core quality``: the one quality estimate of a profile's verdicts (issue 18 item 1).

Per task and level the raw win share and the controlled one (identical answers tied, length and —
where stored — position controlled, :mod:`sprout_core.evaluate.shares`) with a 95 % interval.
"""
from __future__ import annotations

import argparse
import json

from sprout_core.errors import ProfileError

PROFILES = ("llama2-13b-a100", "own")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "quality", help="raw and length-controlled win shares per task, with 95 % intervals",
        description="The quality estimate the optimizer uses: per task and level the raw win share (identical "
                    "answers share the credit) and the controlled share (a conditional logit winner ~ level + "
                    "log(length in whitespace words) [+ position where the order shown is stored], read at equal "
                    "length, as AlpacaEval's length-controlled win rate), with a 95 %% interval (delta method).")
    p.add_argument("--profile", default="llama2-13b-a100", choices=PROFILES,
                   help="llama2-13b-a100 (the paper's GPT-4 verdicts, shipped) or own (this machine's evaluation runs "
                        "and the shipped evaluation)")
    p.add_argument("--judge", default=None,
                   help="judge name (default: GPT-4 on the reference profile; on own, the judge with most verdicts)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def estimate_for(profile: str, judge: str | None = None):
    """``(judge, QualityEstimate)`` for a profile name (ProfileError when there is nothing to estimate)."""
    from sprout_core.evaluate import results as R

    if profile == "llama2-13b-a100":
        from sprout_core.evaluate.reference import GPT4_JUDGE, paper_tables, reference_quality

        if judge in (None, GPT4_JUDGE):
            return GPT4_JUDGE, reference_quality(control=True)
        t = paper_tables(with_reference_judge=True)
    else:  # this machine's runs and the shipped evaluation, as the Evaluations page's "own" source
        t = R.shipped_tables().concat(R.own_tables())
    judges = R.judges_of(t)
    if not judges:
        raise ProfileError(f"profile {profile!r} has no verdicts yet: run `python -m sprout_core evaluate` first")
    if judge is None:
        counts = t.verdicts["judge"].value_counts()
        judge = str(counts.index[0])
    if judge not in judges:
        raise ProfileError(f"judge {judge!r} has no verdicts in profile {profile!r}; judges there: {', '.join(judges)}")
    return judge, R.quality(t, judge, control=True)


def run(args: argparse.Namespace) -> int:
    judge, est = estimate_for(args.profile, args.judge)
    out = {"profile": args.profile, **est.to_dict()}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"profile {args.profile}, judge {judge}: win shares per task, raw → controlled "
          f"(length in {est.length_unit}{', position' if est.position_known else ''}), 95 % interval ({est.interval})")
    for task, ts in est.tasks.items():
        coef = "n/a" if ts.length_coef is None else f"{ts.length_coef:+.2f} ± {ts.length_coef_se:.2f}"
        print(f"\n{task}: {_count(ts.n, 'prompt')}, {_count(ts.ties, 'tie')}, length coefficient {coef}")
        for lv, s in ts.levels.items():
            if s.raw_pct is None:
                print(f"  {lv}: n/a (no valid verdict)")
                continue
            print(f"  {lv}: raw {s.raw_pct:5.1f} %   controlled {s.controlled_pct:5.1f} %  "
                  f"[{s.ci_low_pct:.1f}, {s.ci_high_pct:.1f}] %")
    return 0


def _count(n: int, unit: str) -> str:
    return f"{n:,} {unit}{'' if n == 1 else 's'}"
