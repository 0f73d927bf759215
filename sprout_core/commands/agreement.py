"""``python -m sprout_core agreement``: how often a judge agrees with the Sprout paper's GPT-4 verdicts."""
from __future__ import annotations

import argparse
import json
import sys
import time

from sprout_core import validate as V


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "agreement", help="agreement of a judge with the paper's GPT-4 verdicts",
        description="Run a judge over the Sprout paper's 12,000 Llama-2-13B answer triples "
                    "(public data llama2-13b-a100/responses.jsonl) and report, per task, how often it picks the "
                    "same winner as GPT-4 (% agreement and Cohen's kappa) and both judges' win shares.")
    p.add_argument("--source", default="llama2-13b-a100", choices=["llama2-13b-a100"], help="judged answers (default llama2-13b-a100)")
    p.add_argument("--judge", default="reference", choices=["reference"], help="judge to compare (default reference)")
    p.add_argument("--tasks", default=None, help="comma-separated tasks (default all six)")
    p.add_argument("--limit", type=V.arg_whole(1, 10_000_000), default=None, help="only the first N triples per task (quick look)")
    p.add_argument("--no-cache", action="store_true", help="recompute (ignore cached verdicts and embeddings)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sprout_core import refdata
    from sprout_core.evaluate.reference import (
        agreement_with_gpt4,
        correctness_rates,
        load_responses,
        reference_verdicts,
    )
    from sprout_core.paths import MissingDataError

    want = None
    if args.tasks is not None and refdata.available():   # the task names ship with the numbers: check them first
        want = set(V.name_list("--tasks", args.tasks, sorted(refdata.judgments()["task"].unique())))
    try:
        rows = load_responses()
    except MissingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.tasks is not None:
        if want is None:
            want = set(V.name_list("--tasks", args.tasks, sorted({r["task"] for r in rows})))
        rows = [r for r in rows if r["task"] in want]
    if args.limit:
        seen: dict[str, int] = {}
        kept = []
        for r in rows:
            seen[r["task"]] = seen.get(r["task"], 0) + 1
            if seen[r["task"]] <= args.limit:
                kept.append(r)
        rows = kept
    bars: dict[str, tqdm] = {}

    def progress(stage, done, total):
        b = bars.get(stage)
        if b is None:
            b = bars[stage] = tqdm(total=total, desc=stage, unit="text" if stage == "embedding" else "prompt", file=sys.stderr)
        b.update(done - b.n)

    t0 = time.perf_counter()
    full = not args.tasks and not args.limit
    verdicts = reference_verdicts(None if full else rows, progress=progress, use_cache=full and not args.no_cache)
    for b in bars.values():
        b.close()
    secs = time.perf_counter() - t0
    result = [a.to_dict() for a in agreement_with_gpt4(rows, verdicts, args.judge)]
    report = {"source": args.source, "judge": args.judge, "compared_with": "gpt-4-0613 (Sprout paper, best-of-3)",
              "triples": len(rows), "seconds": round(secs, 1),
              "seconds_per_prompt": round(secs / len(rows), 4) if rows else None,
              "per_task": result, "exact_match_correct_share": correctness_rates(rows)}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
        return 0
    print(f"{args.judge} judge vs GPT-4 on {len(rows)} answer triples ({secs:.0f} s):")
    for r in result:
        pct = f"{r['agreement_percent']:.1f}%" if r["agreement_percent"] is not None else "n/a"
        kap = f"{r['cohen_kappa']:.3f}" if r["cohen_kappa"] is not None else "n/a"
        ours = " ".join(f"{k} {v * 100:.0f}%" for k, v in r["reference_judge_shares"].items() if v is not None)
        gpt = " ".join(f"{k} {v * 100:.0f}%" for k, v in r["gpt4_shares"].items() if v is not None)
        print(f"  {r['task']:<10} n={r['n']:<5} agreement {pct:>6}  kappa {kap:>6}  | ours: {ours} | GPT-4: {gpt}")
    return 0
