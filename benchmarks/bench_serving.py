"""Serving benchmark: transformers vs llama.cpp on the embedded model, side by side, and energy attribution.

    .venv/bin/python benchmarks/bench_serving.py                  # 4 rounds, JSON to stdout and a table
    .venv/bin/python benchmarks/bench_serving.py --rounds 6 --out /tmp/bench_serving.json

Part 1 — the fast CPU path. The same embedded SmolLM2-135M-Instruct (same GGUF file; transformers reads its
de-quantised safetensors copy), the same prompts, greedy, at most ``--max-new-tokens`` tokens, one thread
each, in three backends:

* ``transformers`` in this process (the default backend);
* ``llama.cpp`` in this process (``llama_cpp.Llama``);
* ``llama.cpp server`` — ``python -m llama_cpp.server`` started by this script on 127.0.0.1.

Rounds are *interleaved* (each round runs every backend once, in a rotating order), so a busy neighbour on
a shared machine slows all of them alike; the report gives per backend the median tokens/s, time to first
token and energy per answer, and the ratios llama.cpp ÷ transformers. Energy is the CPU-time estimate
(``estimated:cpu-tdp``; RAPL where readable) of the process that does the work: this one for the in-process
backends, the server's own process for the server — so the three are priced alike.

Part 2 — attribution. Four requests sent to the server at once; the server's energy is split by tokens
(docs/serving.md). Reported: each request's tokens and J, their sum, and the server's energy over the burst.

Timings depend on the machine's load; the load average is in the report. Needs llama-cpp-python[server].
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sprout_core.carbon import override_intensity  # noqa: E402
from sprout_core.directives import load_directive_set  # noqa: E402
from sprout_core.energy import detect_meter  # noqa: E402
from sprout_core.generation import GenerationParams  # noqa: E402
from sprout_core.metered import CarbonSettings, metered_stream  # noqa: E402
from sprout_core.models import load_embedded  # noqa: E402
from sprout_core.serving.client import ServerConfig, ServerModel  # noqa: E402
from sprout_core.serving.llamacpp import LlamaCppModel, LlamaServer  # noqa: E402

PROMPTS = ["Why is the sky blue?", "Explain how a refrigerator keeps food cold.",
           "Give three tips for writing a clear email.", "What causes the seasons on Earth?"]


def one(lm, meter, prompt: str, directive, max_new: int) -> dict:
    ms = metered_stream(lm, prompt, directive, GenerationParams(max_new_tokens=max_new), meter,
                        CarbonSettings(override_intensity(300.0)), save=False)
    for _ in ms:
        pass
    o = ms.outcome
    r = o.result
    return {"backend": r.backend, "prompt": prompt, "new_tokens": r.new_tokens, "ttft_s": r.ttft_s, "total_s": r.total_s,
            "tokens_per_s": r.tokens_per_s, "energy_j": o.reading.energy_j, "energy_method": o.reading.method,
            "error": r.error, "text": r.text[:80]}


def med(rows: list[dict], key: str) -> float | None:
    vals = [r[key] for r in rows if r[key] is not None]
    return statistics.median(vals) if vals else None


def attribution(srv: ServerModel, n: int = 4, max_new: int = 96) -> dict:
    meter = srv.energy_meter()
    dset = load_directive_set(srv.info.directive_set)
    barrier = threading.Barrier(n)
    out: dict[int, dict] = {}
    before = meter.attributed_j
    s0 = meter.inner.sample()

    def worker(i: int) -> None:
        ms = metered_stream(srv, PROMPTS[i % len(PROMPTS)], dset.get(["L0", "L1", "L2", "L0"][i % 4]),
                            GenerationParams(max_new_tokens=max_new), meter, CarbonSettings(override_intensity(300.0)),
                            save=False)
        barrier.wait()
        for _ in ms:
            pass
        o = ms.outcome
        out[i] = {"level": o.result.level, "new_tokens": o.result.new_tokens, "total_s": o.result.total_s,
                  "energy_j": o.reading.energy_j, "flags": o.reading.flags, "error": o.result.error}

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s1 = meter.inner.sample()
    parts = [out[i]["energy_j"] for i in range(n)]
    return {"method": meter.method, "requests": [out[i] for i in range(n)], "sum_of_parts_j": sum(parts),
            "attributed_j": meter.attributed_j - before, "server_energy_over_burst_j": s1.energy_j - s0.energy_j,
            "burst_s": s1.t - s0.t}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("SPROUT_TORCH_THREADS", str(args.threads))

    report: dict = {"loadavg_start": os.getloadavg(), "max_new_tokens": args.max_new_tokens, "threads": args.threads}
    lm_tf = load_embedded(threads=args.threads)
    lm_lc = LlamaCppModel.load_embedded(threads=args.threads)
    server = LlamaServer(threads=args.threads).start()
    try:
        srv = ServerModel.connect(ServerConfig(server.base_url, context_len=2048, timeout_s=300))
        local_meter = detect_meter("cpu")
        backends = [("transformers", lm_tf, local_meter), ("llama.cpp", lm_lc, local_meter),
                    ("llama.cpp server", srv, srv.energy_meter())]
        d0 = load_directive_set("smollm2").get("L0")
        for _name, lm, meter in backends:  # warm-up: caches, first-call costs
            one(lm, meter, "Hello!", d0, 8)
        runs: dict[str, list[dict]] = {name: [] for name, _, _ in backends}
        for k in range(args.rounds):
            order = backends[k % 3:] + backends[:k % 3]
            prompt = PROMPTS[k % len(PROMPTS)]
            for name, lm, meter in order:
                r = one(lm, meter, prompt, d0, args.max_new_tokens)
                runs[name].append(r)
                print(f"round {k + 1} {name:17s} {r['new_tokens']:4d} tok {r['tokens_per_s'] or 0:7.1f} tok/s "
                      f"TTFT {r['ttft_s'] or 0:6.3f} s  {r['energy_j'] or 0:7.2f} J ({r['energy_method']})",
                      file=sys.stderr, flush=True)
        summary = {}
        for name, rows in runs.items():
            e_tok = [r["energy_j"] / r["new_tokens"] for r in rows if r["energy_j"] is not None and r["new_tokens"]]
            summary[name] = {"tokens_per_s": med(rows, "tokens_per_s"), "ttft_s": med(rows, "ttft_s"),
                             "energy_j_per_answer": med(rows, "energy_j"), "new_tokens": med(rows, "new_tokens"),
                             "j_per_token": statistics.median(e_tok) if e_tok else None,
                             "energy_method": rows[0]["energy_method"]}
        base = summary["transformers"]
        ratios = {}
        for name in ("llama.cpp", "llama.cpp server"):
            s = summary[name]
            ratios[name] = {k: (s[k] / base[k] if s[k] and base[k] else None)
                            for k in ("tokens_per_s", "ttft_s", "energy_j_per_answer", "j_per_token")}
        report.update(runs=runs, summary=summary, ratios_vs_transformers=ratios)
        report["attribution"] = attribution(srv)
    finally:
        server.stop()
    report["loadavg_end"] = os.getloadavg()
    text = json.dumps(report, indent=2, default=str)
    if args.out:
        Path(args.out).write_text(text)
    print(text)
    print("\nbackend            tokens/s   TTFT (s)   J/answer   J/token", file=sys.stderr)
    for name, s in report["summary"].items():
        print(f"{name:17s} {s['tokens_per_s'] or 0:9.1f} {s['ttft_s'] or 0:10.3f} {s['energy_j_per_answer'] or 0:10.2f} "
              f"{s['j_per_token'] or 0:9.4f}", file=sys.stderr)
    for name, r in report["ratios_vs_transformers"].items():
        print(f"{name} ÷ transformers: tokens/s ×{r['tokens_per_s'] or 0:.2f}, TTFT ×{r['ttft_s'] or 0:.2f}, "
              f"J/answer ×{r['energy_j_per_answer'] or 0:.2f}, J/token ×{r['j_per_token'] or 0:.2f}", file=sys.stderr)
    a = report["attribution"]
    print(f"attribution: parts {[round(x['energy_j'], 3) for x in a['requests']]} J, sum {a['sum_of_parts_j']:.3f} J, "
          f"server over the burst {a['server_energy_over_burst_j']:.3f} J ({a['method']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
