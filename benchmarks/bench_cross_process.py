"""Two CLI processes streaming from one local llama.cpp server: does their energy add up to the server's?

Issue 20.5 measured 1.06 J + 1.01 J for two overlapping `generate` runs against 0.69 J for one alone: each
process metered the whole server's CPU time of the overlap. With the server ledger
(:class:`sprout_core.energy.attribution.ServerLedger`) each keeps only its share. Arms, interleaved per
round on one server: ``alone`` (one process), ``pair`` (two at once, with the ledger) and ``pair-no-ledger``
(the ledger switched off in both processes). The reference for a pair is the server's own energy over the
pair's union (same CPU-time meter, read from this process around the pair). Prints the load average.

    .venv/bin/python benchmarks/bench_cross_process.py --rounds 3 --max-new-tokens 48
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = """
import sys
from sprout_core import cli
from sprout_core.serving import energy
if sys.argv[1] == "0":
    energy.server_ledger = lambda cfg: None
sys.exit(cli.main(["generate", "--server-url", sys.argv[2], "--prompt", sys.argv[3], "--levels", "L0",
                   "--max-new-tokens", sys.argv[4], "--ci", "300", "--json"]))
"""


def run_pair(url: str, n: int, ledger: bool, max_new: int, state: str) -> list[float]:
    env = dict(os.environ, SPROUT_STATE_DIR=state)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, "1" if ledger else "0", url,
                               f"Explain photosynthesis in detail, part {k}.", str(max_new)],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in range(n)]
    out = []
    for p in procs:
        so, se = p.communicate(timeout=600)
        if p.returncode != 0:
            raise RuntimeError(se[-2000:])
        out.append(float(json.loads(so)[0]["energy_j"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    a = ap.parse_args()
    from sprout_core.serving.client import ServerConfig
    from sprout_core.serving.energy import server_meter
    from sprout_core.serving.llamacpp import LlamaServer

    print(f"load average before: {os.getloadavg()}; cores: {os.cpu_count()}")
    srv = LlamaServer(threads=1).start()
    try:
        url = srv.base_url
        ref = server_meter(ServerConfig(url), prefer=None).inner  # the server's own meter, unsplit
        rows = []
        with tempfile.TemporaryDirectory() as state:
            for r in range(a.rounds):
                for arm, n, ledger in (("alone", 1, True), ("pair", 2, True), ("pair-no-ledger", 2, False)):
                    s0 = ref.sample()
                    parts = run_pair(url, n, ledger, a.max_new_tokens, state)
                    s1 = ref.sample()
                    server_j = (s1.energy_j - s0.energy_j) if s0.energy_j is not None and s1.energy_j is not None else None
                    rows.append((r, arm, parts, server_j))
                    print(f"round {r} {arm:15s} parts {' + '.join(f'{p:.2f}' for p in parts)} = {sum(parts):.2f} J; "
                          f"server over the whole arm (incl. process start-up idle) {server_j:.2f} J "
                          f"[{ref.method}]", flush=True)
        for arm in ("alone", "pair", "pair-no-ledger"):
            sel = [x for x in rows if x[1] == arm]
            ratio = sum(sum(x[2]) for x in sel) / sum(x[3] for x in sel)
            print(f"{arm:15s} Σ parts / server energy = {ratio:.2f} (mean over {len(sel)} rounds)")
    finally:
        srv.stop()
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
