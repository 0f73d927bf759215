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

Part 3 — class-mode caps (``--parts caps``, issue 20.3): one long run and five short runs, all three levels
each, on the embedded model through llama.cpp in this process, served by the fair queue
(:func:`sprout_core.run.execute`, one turn per run). The long visitor sends a long prompt with a high token
cap; the five short runs ("Why is the sky blue?" …, 256 new tokens per answer) arrive just after it. Arm
*no caps*: the long run as asked. Arm *caps*: the same long run held to the default class caps
(:class:`sprout_core.run.ClassCaps`: its prompt cut to the prompt cap — what a visitor told "at most N
characters" would send — and the run's tokens to its per-run cap). Reported per arm: each short run's
wait (submit → its first level starts, s) and time to done, the long run's time, and caps ÷ no-caps
ratios of the short runs' median and worst wait. Both arms run in one process, one after the other.

Timings depend on the machine's load; the load average is in the report. Needs llama-cpp-python[server].
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sprout_core.carbon import override_intensity
from sprout_core.directives import load_directive_set
from sprout_core.energy import detect_meter
from sprout_core.generation import GenerationParams
from sprout_core.metered import CarbonSettings, metered_stream
from sprout_core.models import load_embedded
from sprout_core.serving.client import ServerConfig, ServerModel
from sprout_core.serving.llamacpp import LlamaCppModel, LlamaServer

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


SHORT = ["Why is the sky blue?", "What causes the seasons on Earth?", "Give three tips for writing a clear email.",
         "Explain how a refrigerator keeps food cold.", "What is photosynthesis?"]


def long_prompt(chars: int) -> str:
    """A long, plain prompt of about ``chars`` characters (a made-up report to summarise)."""
    para = ("The committee reviewed the quarterly figures for the regional energy cooperative, noting that demand "
            "rose in the winter months while rooftop solar output fell, and that storage helped at the evening peak. ")
    body = (para * (chars // len(para) + 1))[:chars]
    return "Summarise the following report in detail, point by point:\n\n" + body


def caps_part(lm, long_chars: int, long_new: int, short_new: int) -> dict:
    """One long + five short runs through the fair queue, without and with the class caps."""
    from sprout_core import store
    from sprout_core.generation import GenerationQueue
    from sprout_core.run import START, ClassCaps, Run, VisitorLedger, apply_caps, execute

    caps = ClassCaps()
    dset = load_directive_set(lm.info.directive_set)
    levels = dset.select(["L0", "L1", "L2"])
    settings = CarbonSettings(override_intensity(300.0))
    meter = detect_meter("cpu")
    out: dict = {"caps": caps.__dict__, "long_prompt_chars": long_chars, "long_max_new_tokens": long_new,
                 "short_max_new_tokens": short_new}
    for arm in ("no caps", "caps"):
        q = GenerationQueue(poll_s=0.05)
        text = long_prompt(long_chars)
        long_run = Run(store.new_run_id(), text, ["L0", "L1", "L2"], params=GenerationParams(max_new_tokens=long_new),
                       directives=levels, save=False, origin="bench")
        if arm == "caps":
            long_run = Run(long_run.run_id, text[:caps.max_prompt_chars], long_run.levels, params=long_run.params,
                           directives=levels, save=False, origin="bench")
            long_run, _ = apply_caps(long_run, caps, "long visitor", VisitorLedger())
        runs = [("long", long_run)] + [
            (f"short {i + 1}", Run(store.new_run_id(), p, ["L0", "L1", "L2"],
                                   params=GenerationParams(max_new_tokens=short_new), directives=levels, save=False,
                                   origin="bench")) for i, p in enumerate(SHORT)]
        timing: dict[str, dict] = {}
        started = threading.Event()

        def visitor(name: str, run: Run, t_submit: float, q=q, started=started, timing=timing) -> None:
            first = None
            for ev in execute(run, lm, meter, settings, label=name, queue=q):
                if ev.kind == START and first is None:
                    first = time.perf_counter()
                    started.set()
            done = time.perf_counter()
            timing[name] = {"wait_s": first - t_submit, "done_s": done - t_submit,
                            "new_tokens": sum(o.result.new_tokens for o in run.outcomes),
                            "prompt_chars": len(run.prompt), "max_new_tokens": run.params.max_new_tokens}

        threads = []
        t0 = time.perf_counter()
        th = threading.Thread(target=visitor, args=("long", long_run, t0))
        th.start()
        threads.append(th)
        started.wait(60)
        for name, run in runs[1:]:  # the short runs arrive just after the long one took the model
            time.sleep(0.05)
            th = threading.Thread(target=visitor, args=(name, run, time.perf_counter()))
            th.start()
            threads.append(th)
        for th in threads:
            th.join()
        waits = [timing[n]["wait_s"] for n, _ in runs[1:]]
        out[arm] = {"runs": timing, "short_wait_median_s": statistics.median(waits), "short_wait_max_s": max(waits),
                    "long_done_s": timing["long"]["done_s"], "loadavg": os.getloadavg()}
        print(f"{arm:8s} long run {timing['long']['done_s']:6.1f} s ({timing['long']['new_tokens']} tokens, "
              f"{timing['long']['prompt_chars']:,} chars) · short runs wait median {out[arm]['short_wait_median_s']:6.1f} s, "
              f"worst {out[arm]['short_wait_max_s']:6.1f} s · load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
    out["ratio_caps_vs_no_caps"] = {
        "short_wait_median": out["caps"]["short_wait_median_s"] / out["no caps"]["short_wait_median_s"],
        "short_wait_max": out["caps"]["short_wait_max_s"] / out["no caps"]["short_wait_max_s"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parts", default="serving", help="comma-separated: serving (parts 1 and 2), caps (part 3)")
    ap.add_argument("--long-chars", type=int, default=6000, help="caps part: characters of the long prompt")
    ap.add_argument("--long-new-tokens", type=int, default=512, help="caps part: the long run's tokens per answer")
    ap.add_argument("--short-new-tokens", type=int, default=256, help="caps part: the short runs' tokens per answer")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    os.environ.setdefault("SPROUT_TORCH_THREADS", str(args.threads))

    report: dict = {"loadavg_start": os.getloadavg(), "max_new_tokens": args.max_new_tokens, "threads": args.threads}
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    if "caps" in parts:
        report["caps"] = caps_part(LlamaCppModel.load_embedded(threads=args.threads), args.long_chars,
                                   args.long_new_tokens, args.short_new_tokens)
        report["loadavg_end"] = os.getloadavg()
        if "serving" not in parts:
            text = json.dumps(report, indent=2, default=str)
            if args.out:
                Path(args.out).write_text(text)
            print(text)
            r = report["caps"]["ratio_caps_vs_no_caps"]
            print(f"caps ÷ no caps: short runs' median wait ×{r['short_wait_median']:.2f}, worst ×{r['short_wait_max']:.2f}",
                  file=sys.stderr)
            return 0
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
