"""NVML on a real GPU: the total-energy counter vs integrated power readings, on the same windows.

    .venv/bin/python benchmarks/bench_energy_nvml.py                      # cuda:0 (or NVML device 0)
    .venv/bin/python benchmarks/bench_energy_nvml.py --nvml-index 1 --json

For each window length (default 0.05, 0.1, 0.25, 0.5, 1, 2, 5 s) × repeats, both meters bracket the
very same window (nested ``window()`` calls; the process sampler reads both every 50 ms, and this
script also reads power every 10 ms into the power meter's window for a fine integral). The GPU is
kept busy with matrix multiplications when torch sees CUDA; otherwise the windows measure the GPU as
it is (idle or loaded by others — said in the output). Reported per window length: mean energy by
counter and by integrated power (J), their relative difference (%), how many counter windows were
short (counter did not move → completed from power × time), and the counter's observed update period.

Exit codes: 0 measured; 3 no NVIDIA GPU / NVML on this machine (nothing measured, message on stderr).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def counter_period(meter, probe_s: float = 2.0) -> float | None:
    """Observed mean seconds between changes of the NVML energy counter (polling every 1 ms)."""
    changes, last, t_end = [], None, time.perf_counter() + probe_s
    while time.perf_counter() < t_end:
        s = meter.sample()
        if last is not None and s.energy_j != last.energy_j:
            changes.append(s.t)
        last = s
        time.sleep(0.001)
    if len(changes) < 2:
        return None
    return (changes[-1] - changes[0]) / (len(changes) - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda:0")
    ap.add_argument("--nvml-index", type=int, default=None, help="NVML device index (used when torch has no CUDA)")
    ap.add_argument("--windows", default="0.05,0.1,0.25,0.5,1,2,5", help="window lengths in s")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from sprout_core.energy import detect_meter

    torch_cuda = False
    try:
        import torch

        torch_cuda = torch.cuda.is_available()
    except ImportError:
        torch = None  # type: ignore[assignment]
    opts = {} if torch_cuda else {"nvml_index": args.nvml_index if args.nvml_index is not None else 0}
    counter = detect_meter(args.device, prefer="nvml-counter", **opts)
    power = detect_meter(args.device, prefer="nvml-power", **opts)
    if counter.method == "n/a" or power.method == "n/a":
        why = "; ".join(counter.notes or [counter.describe()])
        print(f"No NVIDIA GPU energy readings on this machine, nothing measured: {why}", file=sys.stderr)
        return 3
    if counter.name != "nvml-counter":
        print(f"NVML energy counter not supported here ({'; '.join(counter.notes)}); only power readings exist, "
              "so there is nothing to compare.", file=sys.stderr)
        return 3

    stop = threading.Event()
    load_desc = "GPU as found (torch sees no CUDA: no load generated)"
    if torch_cuda:
        load_desc = "bf16 4096² matmuls in a loop"

        def burn() -> None:
            a = torch.randn(4096, 4096, device=args.device, dtype=torch.bfloat16)
            while not stop.is_set():
                for _ in range(20):
                    a = (a @ a).clamp_(-1, 1)
                torch.cuda.synchronize(args.device)

        threading.Thread(target=burn, daemon=True).start()
        time.sleep(2.0)  # reach steady power

    period = counter_period(counter)
    results = []
    for w_s in [float(x) for x in args.windows.split(",")]:
        for _ in range(args.repeats):
            with counter.window() as wc, power.window() as wp:
                t_end = time.perf_counter() + w_s
                while time.perf_counter() < t_end:  # 10 ms power readings into the power window
                    wp._add(power.sample())
                    time.sleep(0.01)
            results.append({"window_s": w_s, "counter_j": wc.reading.energy_j, "counter_method": wc.reading.method,
                            "counter_flags": wc.reading.flags, "power_j": wp.reading.energy_j,
                            "duration_s": wc.reading.duration_s})
    stop.set()

    summary = []
    for w_s in sorted({r["window_s"] for r in results}):
        rs = [r for r in results if r["window_s"] == w_s]
        c = [r["counter_j"] for r in rs]
        p = [r["power_j"] for r in rs]
        diffs = [(ci - pi) / pi * 100 for ci, pi in zip(c, p) if pi]
        summary.append({"window_s": w_s, "n": len(rs), "counter_j_mean": statistics.mean(c), "power_j_mean": statistics.mean(p),
                        "diff_pct_mean": statistics.mean(diffs) if diffs else None,
                        "diff_pct_sd": statistics.stdev(diffs) if len(diffs) > 1 else None,
                        "short_windows": sum("short-window" in r["counter_flags"] for r in rs)})
    report = {"gpu": counter.describe(), "load": load_desc, "counter_update_period_s": period,
              "summary": summary, "windows": results}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        per = f"{period * 1000:.1f} ms" if period else "n/a"
        print(f"{counter.describe()}\nload: {load_desc}; observed counter update period: {per}")
        print(f"{'window s':>8} {'n':>3} {'counter J':>10} {'power J':>10} {'diff %':>8} {'sd %':>6} {'short':>5}")
        for s in summary:
            d = f"{s['diff_pct_mean']:+.2f}" if s["diff_pct_mean"] is not None else "n/a"
            sd = f"{s['diff_pct_sd']:.2f}" if s["diff_pct_sd"] is not None else "n/a"
            print(f"{s['window_s']:>8g} {s['n']:>3} {s['counter_j_mean']:>10.3f} {s['power_j_mean']:>10.3f} {d:>8} {sd:>6} {s['short_windows']:>5}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
