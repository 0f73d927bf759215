"""Foundation benchmark: embedded-model load times, tokens/s, new tokens per directive level.

    .venv/bin/python benchmarks/bench_generation.py                 # all 60 starter prompts
    .venv/bin/python benchmarks/bench_generation.py --n 12 --json   # 2 per category, JSON out

* first load: GGUF de-quantisation + safetensors write, into a fresh temporary cache folder
  (a subprocess, so nothing is shared with the measuring process);
* cached load: the same folder read again in a new subprocess;
* per level: mean new tokens, mean seconds and tokens/s over the starter prompts
  (``data/prompts/starter.jsonl``), greedy, one torch thread unless SPROUT_TORCH_THREADS is set.

Timings depend on what else the machine is doing: report them with the machine's load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LOAD_SNIPPET = "import time,json; t=time.perf_counter(); from sprout_core.models import load_embedded; lm=load_embedded(); " \
               "print(json.dumps({'wall_s': time.perf_counter()-t, 'load_s': lm.info.load_s, 'converted': lm.info.converted}))"


def timed_load(cache: str) -> dict:
    env = dict(os.environ, SPROUT_CACHE_DIR=cache)
    out = subprocess.run([sys.executable, "-c", LOAD_SNIPPET], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="prompts (stratified by category, default all 60)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--skip-load", action="store_true", help="skip the load-time measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    report: dict = {"loadavg_start": os.getloadavg()[0]}
    if not args.skip_load:
        with tempfile.TemporaryDirectory() as tmp:
            report["first_load"] = timed_load(tmp)
            report["cached_load"] = timed_load(tmp)

    from sprout_core.directives import load_directive_set
    from sprout_core.generation import GenerationParams, generate
    from sprout_core.models import load_embedded

    rows = [json.loads(line) for line in (ROOT / "data/prompts/starter.jsonl").read_text().splitlines() if line.strip()]
    by_cat: dict[str, list] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    per = max(1, args.n // len(by_cat))
    sample = [r for c in sorted(by_cat) for r in by_cat[c][:per]][: args.n]
    lm = load_embedded()
    dset = load_directive_set(lm.info.directive_set)
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    stats = {d.level: {"tokens": [], "seconds": []} for d in dset.levels}
    t0 = time.perf_counter()
    for i, r in enumerate(sample, 1):
        for d in dset.levels:
            g = generate(lm, r["prompt"], d, params)
            stats[d.level]["tokens"].append(g.new_tokens)
            stats[d.level]["seconds"].append(g.total_s)
        print(f"[{i}/{len(sample)}] {r['id']}: " + ", ".join(f"{lv} {s['tokens'][-1]}" for lv, s in stats.items()),
              file=sys.stderr, flush=True)
    l0 = statistics.mean(stats["L0"]["tokens"])
    report["levels"] = {
        lv: {
            "directive": dset.get(lv).text,
            "mean_new_tokens": statistics.mean(s["tokens"]),
            "reduction_vs_L0_pct": 100 * (1 - statistics.mean(s["tokens"]) / l0) if l0 else None,
            "mean_s": statistics.mean(s["seconds"]),
            "tokens_per_s": sum(s["tokens"]) / sum(s["seconds"]),
        }
        for lv, s in stats.items()
    }
    report.update(prompts=len(sample), max_new_tokens=args.max_new_tokens, threads=lm.info.threads,
                  wall_s=time.perf_counter() - t0, loadavg_end=os.getloadavg()[0])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k in ("first_load", "cached_load"):
            if k in report:
                print(f"{k}: {report[k]['load_s']:.2f} s (converted={report[k]['converted']})")
        for lv, s in report["levels"].items():
            red = f"{s['reduction_vs_L0_pct']:.0f}%" if s["reduction_vs_L0_pct"] is not None else "n/a"
            print(f"{lv} {s['directive']!r:36} mean new tokens {s['mean_new_tokens']:6.1f}  (-{red} vs L0)  "
                  f"{s['mean_s']:.2f} s  {s['tokens_per_s']:.1f} tokens/s")
        print(f"{report['prompts']} prompts, {report['threads']} thread(s), load avg {report['loadavg_start']:.1f}→{report['loadavg_end']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
