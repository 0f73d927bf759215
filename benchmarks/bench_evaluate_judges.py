"""Time per judged prompt for the reference judge and the LLM judge, and the LLM judge's position consistency.

    .venv/bin/python benchmarks/bench_evaluate_judges.py                 # answers from the shipped evaluation
    .venv/bin/python benchmarks/bench_evaluate_judges.py --llm-prompts 8 --model embedded --json

The answers come from ``data/evaluations/*.jsonl`` (the shipped run of the embedded model on the starter
set). The reference judge runs on every prompt (embeddings cached after the first use, so the first call
includes loading all-MiniLM-L6-v2; both are reported). The LLM judge runs best-of-3 with a second pass in
the rotated order on ``--llm-prompts`` prompts; with the embedded SmolLM2-135M it runs only mechanically —
its verdicts are too weak to trust, and its position consistency measures that.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm-prompts", type=int, default=8, help="prompts for the LLM judge (default 8)")
    ap.add_argument("--model", default="embedded", help="judge model: 'embedded' or a local folder")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from sprout_core.evaluate.judges import LocalChat, judge_llm, judge_reference, position_consistency
    from sprout_core.evaluate.results import shipped_runs
    from sprout_core.models import load_model

    runs = shipped_runs()
    if not runs:
        print("no shipped evaluation in data/evaluations (run the command in docs/evaluation.md first)", file=sys.stderr)
        return 2
    rows = [json.loads(x) for x in runs[0].read_text().splitlines() if x.strip()]
    rows = [r for r in rows if len(r["answers"]) >= 2]
    out: dict = {"answers_from": str(runs[0].relative_to(ROOT)), "prompts": len(rows)}

    ref_rows = [r for r in rows if r.get("reference")]
    times = []
    t_all = time.perf_counter()
    for r in ref_rows:
        t0 = time.perf_counter()
        judge_reference({lv: a["text"] for lv, a in r["answers"].items()}, r["reference"])
        times.append(time.perf_counter() - t0)
    out["reference_judge"] = {"prompts": len(ref_rows), "first_s": times[0] if times else None,
                              "median_s_per_prompt": statistics.median(times[1:]) if len(times) > 1 else None,
                              "total_s": time.perf_counter() - t_all}

    lm = load_model(args.model, threads=1)
    chat = LocalChat(lm)
    pairs, secs, invalid, details = [], [], 0, []
    for r in rows[: args.llm_prompts]:
        vs = judge_llm(r["prompt"], {lv: a["text"] for lv, a in sorted(r["answers"].items())}, chat, f"llm:{lm.info.name}",
                       seed=0, key=r["id"], second_pass=True)
        pairs.append((vs[0], vs[1]))
        secs.extend(v.seconds for v in vs)
        invalid += sum(not v.valid for v in vs)
        details.append({"id": r["id"], "orders": [v.order for v in vs], "winners": [v.winner for v in vs],
                        "replies": [v.raw[:60] for v in vs]})
    same, comparable, share = position_consistency(pairs)
    out["llm_judge"] = {"model": lm.info.name, "device": lm.info.device, "prompts": len(pairs), "passes": 2 * len(pairs),
                        "invalid_replies": invalid, "median_s_per_pass": statistics.median(secs) if secs else None,
                        "s_per_judged_prompt_two_passes": sum(secs) / len(pairs) if pairs else None,
                        "position_consistency": {"consistent": same, "both_valid": comparable, "share": share},
                        "verdicts": details, "note": "mechanical only: a 135M model is too weak to trust as a judge"}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        rj = out["reference_judge"]
        print(f"reference judge: {rj['prompts']} prompts, first {rj['first_s']:.2f} s (loads the embedder), "
              f"then median {rj['median_s_per_prompt'] * 1000:.1f} ms per prompt")
        lj = out["llm_judge"]
        pc = lj["position_consistency"]
        print(f"LLM judge {lj['model']} ({lj['device']}): {lj['prompts']} prompts × 2 passes, median {lj['median_s_per_pass']:.2f} s "
              f"per pass, {lj['invalid_replies']} invalid replies; position consistency {pc['consistent']}/{pc['both_valid']}"
              + (f" = {pc['share'] * 100:.0f}%" if pc["share"] is not None else " (n/a)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
