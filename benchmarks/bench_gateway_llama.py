"""The gateway in front of the real llama.cpp server on the embedded model (issue 22 item 7, second part).

Starts ``LlamaServer`` (llama-cpp-python's OpenAI-compatible server, the embedded SmolLM2-135M GGUF) and the
gateway in front of it (in this process, uvicorn thread), sends ``--prompts`` prompts at each level pinned with
``X-Sprout-Level`` (one at a time, so each request is metered alone), and prints per level the mean completion
tokens and J per request with the energy label the gateway gave (RAPL where readable, else the CPU-time estimate
of the server's processes), plus the machine's load.

    .venv/bin/python benchmarks/bench_gateway_llama.py --prompts 8
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = ["Why is the sky blue?", "What causes the seasons on Earth?", "How do vaccines work?",
           "Explain what a prime number is.", "Why do cats purr?", "What is photosynthesis?",
           "How does a refrigerator keep food cold?", "What is the difference between weather and climate?",
           "Why does ice float on water?", "How do airplanes stay in the air?"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=256)
    a = ap.parse_args()
    os.environ.setdefault("SPROUT_STATE_DIR", tempfile.mkdtemp(prefix="sprout-bench-gwl-"))
    from sprout_core.gateway.app import create_app
    from sprout_core.gateway.config import GatewayConfig
    from sprout_core.serving.llamacpp import LlamaServer
    from tests.gateway_fakes import ServerThread

    la = os.getloadavg()
    print(f"before: load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {os.cpu_count()} CPUs")
    with LlamaServer() as srv:
        gw = ServerThread(create_app(GatewayConfig(upstream=srv.base_url, zone="DE", max_tokens=a.max_tokens))).start()
        try:
            out: dict[str, list] = {}
            with httpx.Client(timeout=300) as c:
                for lv in ("L0", "L1", "L2"):
                    for p in PROMPTS[: a.prompts]:
                        r = c.post(gw.url + "/v1/chat/completions", headers={"X-Sprout-Level": lv},
                                   json={"messages": [{"role": "user", "content": p}], "max_tokens": a.max_tokens})
                        r.raise_for_status()
                        out.setdefault(lv, []).append(r.json()["sprout"])
        finally:
            gw.stop()
    base = None
    for lv, sps in out.items():
        toks = statistics.mean(s["completion_tokens"] for s in sps)
        js = [s["energy_j"] for s in sps if s["energy_j"] is not None]
        j = statistics.mean(js) if js else None
        base = j if lv == "L0" else base
        rel = f" ({100 * (1 - j / base):.0f} % less energy than L0)" if j is not None and base and lv != "L0" else ""
        print(f"{lv}: {toks:6.1f} completion tokens/request, "
              f"{'n/a' if j is None else f'{j:.2f}'} J/request{rel} over {len(sps)} requests")
    print(f"energy label: {out['L0'][0]['energy_label']}")
    la = os.getloadavg()
    print(f"after: load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
