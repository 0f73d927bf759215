"""Load and overhead of the gateway (issue 22 item 7), side by side in one run.

A local fake upstream (``tests/gateway_fakes.py``, its own process) streams ``--tokens`` tokens per answer at a
fixed rate (``--interval-ms`` between tokens). Arm A: the clients talk to the upstream directly; arm B: through
``python -m sprout_core gateway`` (its own process, policy sprout, store on, energy auto). Each arm: ``--clients``
concurrent streaming clients, ``--requests`` requests in all. Printed per arm: failed requests, throughput
(completion tokens/s and requests/s), time to first token (median, p99); then the gateway's throughput as a share of
the upstream's alone and its added first-token latency (median and p99 differences). The machine's load is
printed beside the numbers (os.getloadavg, CPU count): on a shared machine compare the ratios, not the times.

    .venv/bin/python benchmarks/bench_gateway.py               # 32 clients, 640 requests per arm
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.gateway_fakes import free_port


def start_upstream(port: int, tokens: int, interval_s: float) -> subprocess.Popen:
    code = ("import uvicorn; from tests.gateway_fakes import FakeUpstream; "
            f"uvicorn.run(FakeUpstream(model='fake-llama-2-13b-chat', n_tokens={tokens}, token_interval_s={interval_s}).app,"
            f" host='127.0.0.1', port={port}, log_level='warning')")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def start_gateway(port: int, upstream: str, state: str, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "SPROUT_STATE_DIR": state}
    return subprocess.Popen([sys.executable, "-m", "sprout_core", "gateway", "--upstream", upstream, "--port", str(port),
                             "--zone", "DE", "--policy", "sprout", *extra], cwd=ROOT, env=env)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (a cost that does not depend on the machine's load)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def wait_up(url: str, timeout_s: float = 60.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def one(client: httpx.AsyncClient, url: str, out: list) -> None:
    body = {"model": "fake-llama-2-13b-chat", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "Why is the sky blue?"}]}
    t0 = time.perf_counter()
    ttft, toks, ok = None, 0, False
    try:
        async with client.stream("POST", url, json=body) as r:
            if r.status_code != 200:
                out.append((False, None, 0, time.perf_counter() - t0))
                return
            async for line in r.aiter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[6:]
                if data == "[DONE]":
                    ok = True
                    break
                obj = json.loads(data)
                ch = obj.get("choices") or []
                if ch and (ch[0].get("delta") or {}).get("content"):
                    toks += 1
                    if ttft is None:
                        ttft = time.perf_counter() - t0
    except httpx.HTTPError:
        ok = False
    out.append((ok, ttft, toks, time.perf_counter() - t0))


async def arm(url: str, clients: int, requests: int) -> dict:
    out: list = []
    sem = asyncio.Semaphore(clients)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120.0, limits=limits) as client:
        async def run_one():
            async with sem:
                await one(client, url, out)
        t0 = time.perf_counter()
        await asyncio.gather(*(run_one() for _ in range(requests)))
        wall = time.perf_counter() - t0
    ttfts = sorted(t for ok, t, _, _ in out if ok and t is not None)
    toks = sum(n for ok, _, n, _ in out if ok)
    failed = sum(1 for ok, *_ in out if not ok)
    p = lambda q: ttfts[min(len(ttfts) - 1, int(q * len(ttfts)))] if ttfts else float("nan")  # noqa: E731 - a percentile, one line
    return {"failed": failed, "wall_s": wall, "tokens_per_s": toks / wall, "requests_per_s": (requests - failed) / wall,
            "ttft_median_s": statistics.median(ttfts) if ttfts else float("nan"), "ttft_p99_s": p(0.99)}


def load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} on {os.cpu_count()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--requests", type=int, default=640)
    ap.add_argument("--tokens", type=int, default=32, help="tokens per answer (default 32)")
    ap.add_argument("--interval-ms", type=float, default=10.0, help="ms between the upstream's tokens (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the arms this many times (default 1)")
    ap.add_argument("--gateway-args", default="", help="extra gateway flags, e.g. '--no-store --energy none'")
    a = ap.parse_args()
    up_port, gw_port = free_port(), free_port()
    state = tempfile.mkdtemp(prefix="sprout-bench-gw-")
    up = start_upstream(up_port, a.tokens, a.interval_ms / 1000.0)
    gw = None
    try:
        wait_up(f"http://127.0.0.1:{up_port}/v1/models")
        gw = start_gateway(gw_port, f"http://127.0.0.1:{up_port}/v1", state, a.gateway_args.split())
        wait_up(f"http://127.0.0.1:{gw_port}/health")
        print(f"before: {load()}")
        print(f"upstream: {a.tokens} tokens per answer, {a.interval_ms:g} ms apart; {a.clients} concurrent streaming "
              f"clients, {a.requests} requests per arm")
        res: dict[str, list] = {"upstream alone": [], "through the gateway": []}
        cpu: dict[str, list] = {"upstream alone": [], "through the gateway": []}
        for _ in range(a.rounds):
            for name, port in (("upstream alone", up_port), ("through the gateway", gw_port)):
                c0 = (cpu_s(up.pid), cpu_s(gw.pid))
                res[name].append(asyncio.run(arm(f"http://127.0.0.1:{port}/v1/chat/completions", a.clients, a.requests)))
                c1 = (cpu_s(up.pid), cpu_s(gw.pid))
                cpu[name].append(((c1[0] - c0[0]) / a.requests, (c1[1] - c0[1]) / a.requests))
        for name, rs in res.items():
            for r in rs:
                print(f"{name:<20} failed {r['failed']:>3} | {r['tokens_per_s']:8.0f} tokens/s | {r['requests_per_s']:6.1f} "
                      f"requests/s | first token median {1000 * r['ttft_median_s']:6.1f} ms, p99 {1000 * r['ttft_p99_s']:6.1f} ms")
        for name, cs in cpu.items():
            for u_cpu, g_cpu in cs:
                print(f"{name:<20} CPU per request: upstream {1000 * u_cpu:.1f} ms, gateway {1000 * g_cpu:.1f} ms")
        for k in range(a.rounds):
            d, g = res["upstream alone"][k], res["through the gateway"][k]
            print(f"round {k + 1}: gateway throughput {100 * g['tokens_per_s'] / d['tokens_per_s']:.1f} % of the upstream's "
                  f"alone; added first-token latency median {1000 * (g['ttft_median_s'] - d['ttft_median_s']):+.1f} ms, "
                  f"p99 {1000 * (g['ttft_p99_s'] - d['ttft_p99_s']):+.1f} ms; failed {d['failed']} / {g['failed']}")
        st = httpx.get(f"http://127.0.0.1:{gw_port}/sprout/status", timeout=5).json()
        print(f"gateway: served {st['served_total']}, failed {st['failed_total']}, mix {st['x']}, energy: {st['energy']}")
        print(f"after: {load()}")
    finally:
        for p in (gw, up):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
