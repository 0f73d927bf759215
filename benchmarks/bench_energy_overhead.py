"""Metering overhead: tokens/s of the embedded model with the energy meter + sampler on vs off.

    .venv/bin/python benchmarks/bench_energy_overhead.py                  # 6 prompts × 4 rounds, 64 tokens
    .venv/bin/python benchmarks/bench_energy_overhead.py --rounds 6 --json

Same prompts, same greedy decoding (identical tokens in both arms), runs interleaved in ABBA order
(on, off, off, on, …) so drifts in machine load hit both arms alike. "on" = the whole Playground
path: ``metered_stream`` (energy window + the 50 ms background sampler + live readings per chunk +
carbon account), without the database write; "off" = plain ``stream_generate``. Reported: tokens/s per
arm (median over runs), the ratio on/off, and the slowdown in % (target: under 1 %).
One torch thread. Timings depend on what else the machine does: the load average is printed.

Because end-to-end tokens/s on a shared machine is noisy (a few %), the script also measures the
metering work itself — the cost of one meter sample (the sampler takes 20 per second) and of one
``live()`` call (one per streamed chunk) — and reports the CPU share it implies at the measured
tokens/s: a noise-free bound on the CPU work metering adds (it does not capture GIL hand-off effects,
which the interleaved end-to-end runs do). ``--components-only`` skips the end-to-end runs.
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


def prompts(n: int) -> list[str]:
    p = ROOT / "data" / "prompts" / "starter.jsonl"
    if p.exists():
        rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        by_cat: dict[str, list[str]] = {}
        for r in rows:
            by_cat.setdefault(r.get("category", ""), []).append(r["prompt"])
        out: list[str] = []
        while len(out) < n and any(by_cat.values()):
            for cat in list(by_cat):
                if by_cat[cat] and len(out) < n:
                    out.append(by_cat[cat].pop(0))
        return out
    return ["Why is the sky blue?", "Explain photosynthesis.", "What is 17 times 23?"][:n]


def component_costs(meter, n: int = 20000) -> dict:
    """µs per ``meter.sample()`` and per ``window.live()`` (median of 5 batches of ``n // 5``)."""
    import time

    from sprout_core.energy import get_sampler

    def batch(fn, k):
        t = time.perf_counter()
        for _ in range(k):
            fn()
        return (time.perf_counter() - t) / k * 1e6

    sample_us = statistics.median(batch(meter.sample, n // 5) for _ in range(5))
    with meter.window() as w:
        time.sleep(0.12)  # a few samples in the window, as while streaming
        live_us = statistics.median(batch(w.live, n // 5) for _ in range(5))
    return {"sample_us": sample_us, "live_us": live_us, "sampler_period_s": get_sampler().period_s}


def implied_share(comp: dict, tokens_per_s: float, meter) -> float:
    """% of one core's time spent on metering at ``tokens_per_s`` (one live() per token)."""
    per_s = comp["sample_us"] / comp["sampler_period_s"] + comp["live_us"] * tokens_per_s
    return per_s / 1e6 * 100


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6, help="prompts (default 6)")
    ap.add_argument("--rounds", type=int, default=4, help="ABBA rounds per prompt (default 4 → 8 runs per prompt)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--components-only", action="store_true", help="only the per-sample / per-live() costs")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    from sprout_core.carbon import override_intensity
    from sprout_core.directives import Directive
    from sprout_core.energy import detect_meter
    from sprout_core.generation import GenerationParams, stream_generate
    from sprout_core.metered import CarbonSettings, metered_stream
    from sprout_core.models import load_embedded

    meter = detect_meter("cpu")
    comp = component_costs(meter)
    if args.components_only:
        comp["implied_cpu_share_pct_at_5_tok_s"] = implied_share(comp, 5.0, meter)
        comp["implied_cpu_share_pct_at_30_tok_s"] = implied_share(comp, 30.0, meter)
        print(json.dumps(comp, indent=2))
        return 0
    lm = load_embedded(threads=1)
    meter = detect_meter(lm.info.device)
    settings = CarbonSettings(override_intensity(300.0))
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    d = Directive("L0", "")
    ps = prompts(args.n)

    def run(prompt: str, on: bool) -> tuple[int, float]:
        if on:
            ms = metered_stream(lm, prompt, d, params, meter, settings, save=False)
            for _ in ms:
                pass
            r = ms.outcome.result
        else:
            s = stream_generate(lm, prompt, d, params)
            for _ in s:
                pass
            r = s.result
        return r.new_tokens, r.total_s

    for p in ps[:2]:  # warm-up (not counted)
        run(p, True)
        run(p, False)
    tps: dict[bool, list[float]] = {True: [], False: []}
    pair_ratios: list[float] = []
    tokens_ok = True
    load0 = os.getloadavg()[0]
    for rnd in range(args.rounds):
        order = (True, False, False, True) if rnd % 2 == 0 else (False, True, True, False)
        for p in ps:
            got: dict[bool, list[float]] = {True: [], False: []}
            ntok = set()
            for on in order[:2]:
                n, t = run(p, on)
                got[on].append(n / t)
                ntok.add(n)
            tokens_ok &= len(ntok) == 1
            for on in (True, False):
                tps[on].extend(got[on])
            pair_ratios.append(got[True][0] / got[False][0])
        print(f"round {rnd + 1}/{args.rounds}: median on {statistics.median(tps[True]):.2f} tok/s, "
              f"off {statistics.median(tps[False]):.2f} tok/s", file=sys.stderr, flush=True)
    med_on, med_off = statistics.median(tps[True]), statistics.median(tps[False])
    ratio = med_on / med_off
    pr = statistics.median(pair_ratios)
    report = {
        "model": lm.info.name, "device": lm.info.device, "meter": meter.name, "method": meter.method,
        "prompts": len(ps), "runs_per_arm": len(tps[True]), "max_new_tokens": args.max_new_tokens,
        "tokens_per_s_on_median": med_on, "tokens_per_s_off_median": med_off,
        "ratio_on_over_off": ratio, "slowdown_pct": (1 - ratio) * 100,
        "paired_ratio_median": pr, "paired_slowdown_pct": (1 - pr) * 100,
        "same_tokens_in_both_arms": tokens_ok,
        **comp, "implied_cpu_share_pct": implied_share(comp, med_off, meter), "loadavg_start": load0, "loadavg_end": os.getloadavg()[0],
        "target": "slowdown under 1 %",
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"meter {meter.name} ({meter.method}); {len(ps)} prompts, {len(tps[True])} runs per arm, "
              f"{args.max_new_tokens} max new tokens, ABBA interleaved")
        print(f"tokens/s median: on {med_on:.2f}, off {med_off:.2f} → ratio {ratio:.4f} "
              f"(slowdown {(1 - ratio) * 100:+.2f} %); paired median ratio {pr:.4f} ({(1 - pr) * 100:+.2f} %)")
        print(f"load average {load0:.2f} → {os.getloadavg()[0]:.2f}; target: slowdown under 1 %")
        print(f"metering work: {comp['sample_us']:.1f} µs per sample × {1 / comp['sampler_period_s']:.0f}/s, "
              f"{comp['live_us']:.1f} µs per live() → {report['implied_cpu_share_pct']:.4f} % of CPU time at {med_off:.1f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
