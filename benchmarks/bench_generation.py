"""Generation benchmark: both backends side by side on the embedded model — new tokens per directive level,
the reduction against L0, tokens/s — and the load times.

    .venv/bin/python benchmarks/bench_generation.py                          # all 60 starter prompts, 3 backends
    .venv/bin/python benchmarks/bench_generation.py --n 12 --json            # 2 per category, JSON out
    .venv/bin/python benchmarks/bench_generation.py --backends llama.cpp,server --skip-load

* backends: ``transformers`` (the GGUF de-quantised to float32, in process), ``llama.cpp`` (the same GGUF in
  process) and ``server`` (llama-cpp-python's server on the same GGUF, started here with one thread). Every
  backend gets the same prompt text (the GGUF's chat template rendered by Sprout) and the same decoding
  (greedy, llama.cpp's own penalties and min-p switched off: ``serving.base.llama_cpp_sampling``);
* the prompts are answered in turn by every backend (prompt by prompt, so a change in the machine's load hits
  all backends alike); compare the ratios, not the absolute seconds, on a shared machine;
* first load: GGUF de-quantisation + safetensors write, into a fresh temporary cache folder (a subprocess);
  cached load: the same folder read again in a new subprocess.

Timings depend on what else the machine is doing: the load average is printed beside them.
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


def _open(kind: str, stack):
    from sprout_core.models import load_embedded
    from sprout_core.serving.client import ServerConfig, ServerModel
    from sprout_core.serving.llamacpp import LlamaCppModel, LlamaServer

    if kind == "transformers":
        return load_embedded()
    if kind == "llama.cpp":
        return LlamaCppModel.load_embedded(threads=1)
    server = stack.enter_context(LlamaServer(threads=1))
    return ServerModel.connect(ServerConfig(server.base_url, context_len=2048, timeout_s=300))


def main() -> int:
    import contextlib

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="prompts (stratified by category, default all 60)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--backends", default="transformers,llama.cpp,server",
                    help="comma-separated: transformers, llama.cpp, server (default all three)")
    ap.add_argument("--skip-load", action="store_true", help="skip the load-time measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.backends.split(",") if k.strip()]

    report: dict = {"loadavg_start": os.getloadavg()[0]}
    if not args.skip_load and "transformers" in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            report["first_load"] = timed_load(tmp)
            report["cached_load"] = timed_load(tmp)

    from sprout_core.directives import load_directive_set
    from sprout_core.generation import GenerationParams, generate

    rows = [json.loads(line) for line in (ROOT / "data/prompts/starter.jsonl").read_text().splitlines() if line.strip()]
    by_cat: dict[str, list] = {}
    for r in rows:
        by_cat.setdefault(r["category"], []).append(r)
    per = max(1, -(-args.n // len(by_cat)))
    sample = [r for c in sorted(by_cat) for r in by_cat[c][:per]][: args.n]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    with contextlib.ExitStack() as stack:
        lms = {k: _open(k, stack) for k in kinds}
        report["backend_load_s"] = {k: lm.info.load_s for k, lm in lms.items()}
        dset = load_directive_set(next(iter(lms.values())).info.directive_set)
        stats = {k: {d.level: {"tokens": [], "seconds": []} for d in dset.levels} for k in kinds}
        t0 = time.perf_counter()
        for i, r in enumerate(sample, 1):
            for k, lm in lms.items():
                for d in dset.levels:
                    g = generate(lm, r["prompt"], d, params)
                    if g.error:
                        raise SystemExit(f"{k} failed on {r['id']} {d.level}: {g.error}")
                    stats[k][d.level]["tokens"].append(g.new_tokens)
                    stats[k][d.level]["seconds"].append(g.total_s)
            print(f"[{i}/{len(sample)}] {r['id']}: " + " | ".join(
                f"{k} " + " ".join(f"{lv} {s['tokens'][-1]}" for lv, s in stats[k].items()) for k in kinds),
                file=sys.stderr, flush=True)
    report["backends"] = {}
    for k in kinds:
        l0 = statistics.mean(stats[k]["L0"]["tokens"])
        report["backends"][k] = {
            lv: {
                "directive": dset.get(lv).text,
                "mean_new_tokens": statistics.mean(s["tokens"]),
                "reduction_vs_L0_pct": 100 * (1 - statistics.mean(s["tokens"]) / l0) if l0 else None,
                "mean_s": statistics.mean(s["seconds"]),
                "tokens_per_s": sum(s["tokens"]) / sum(s["seconds"]) if sum(s["seconds"]) else None,
            }
            for lv, s in stats[k].items()
        }
    report.update(prompts=len(sample), max_new_tokens=args.max_new_tokens, threads=1,
                  wall_s=time.perf_counter() - t0, loadavg_end=os.getloadavg()[0])
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k in ("first_load", "cached_load"):
            if k in report:
                print(f"transformers {k}: {report[k]['load_s']:.2f} s (converted={report[k]['converted']})")
        print("load in this process: " + ", ".join(f"{k} {v:.2f} s" for k, v in report["backend_load_s"].items()))
        print(f"{'level':6} {'directive':44} " + " ".join(f"{k:>30}" for k in kinds))
        for lv in stats[kinds[0]]:
            cells = []
            for k in kinds:
                s = report["backends"][k][lv]
                red = f"{-s['reduction_vs_L0_pct']:+.0f} %" if s["reduction_vs_L0_pct"] is not None else "n/a"
                tps = f"{s['tokens_per_s']:.1f}" if s["tokens_per_s"] else "n/a"
                cells.append(f"{s['mean_new_tokens']:6.1f} tok ({red:>6}) {tps:>5} tok/s")
            print(f"{lv:6} {dset.get(lv).text!r:44} " + " ".join(f"{c:>30}" for c in cells))
        print(f"{report['prompts']} prompts, max {args.max_new_tokens} new tokens, greedy, 1 thread per backend, "
              f"load avg {report['loadavg_start']:.1f}→{report['loadavg_end']:.1f} (2 cores), {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
