#!/usr/bin/env python3
"""``python -m sprout_core agreement`` speed (issue 19.7: ≤ 30 s warm, progress on the first run).

Three arms in one run, each a fresh ``python -m sprout_core agreement --json`` process (imports included)
in its own temporary state folder, so the machine's load hits them alike:

* **cold sample**: ``--limit N`` (N triples per task) with an empty embedding cache — gives the embedding
  rate (texts/s) of this machine, and from it the full cold pass (all texts the reference judge needs);
* **warm, embeddings cached**: all 12,000 triples with every needed text already in the embedding cache
  (``<state>/embeddings.sqlite``, keyed by content hash) but no cached verdicts — the cache is filled with
  placeholder unit vectors, which times the warm path exactly (lookups, judging, report) without a
  multi-hour cold pass on a shared 2-core machine; its verdicts are discarded with the folder;
* **warm, verdicts cached**: the same command again (the verdict cache written by the previous arm).

Needs the optional texts (``responses.jsonl``). Prints the load average beside the numbers.

    .venv/bin/python benchmarks/bench_agreement.py [--limit 10]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_cli(state: Path, *extra: str) -> tuple[float, dict, str]:
    env = dict(os.environ, SPROUT_STATE_DIR=str(state))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "sprout_core", "agreement", "--json", *extra], cwd=ROOT, env=env,
                       capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"agreement failed ({p.returncode}): {p.stderr[-2000:]}")
    return wall, json.loads(p.stdout), p.stderr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=10, help="triples per task in the cold sample (default 10)")
    args = ap.parse_args()

    import numpy as np

    from sprout_core import refdata
    from sprout_core.embeddings import DIM, EmbeddingCache, text_key
    from sprout_core.evaluate.reference import load_responses, similarity_texts

    if not refdata.texts_available():
        print("the optional texts (responses.jsonl) are absent: nothing to time")
        return 0
    rows = load_responses()
    need = similarity_texts(rows)
    print(f"load average before: {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as cold_dir:
        wall, rep, err = run_cli(Path(cold_dir), "--limit", str(args.limit))
        again, _, _ = run_cli(Path(cold_dir), "--limit", str(args.limit))  # same work, embeddings now cached
        seen: dict[str, int] = {}
        sample = []
        for r in rows:
            seen[r["task"]] = seen.get(r["task"], 0) + 1
            if seen[r["task"]] <= args.limit:
                sample.append(r)
        n_sample = len(similarity_texts(sample))
        progress_shown = "embedding" in err
    embed_s = max(wall - again, 1e-9)  # model load + embedding: what the cache saves
    rate = n_sample / embed_s
    print(f"cold sample: {len(sample)} triples, {n_sample} texts embedded: {wall:.1f} s wall, {again:.1f} s again "
          f"with them cached -> {embed_s:.1f} s of model load + embedding, {rate:.1f} texts/s (model load included); "
          f"progress bar on stderr: {progress_shown}")
    print(f"cold full pass, extrapolated: {len(need):,} texts / {rate:.1f} texts/s ~ {len(need) / rate / 60:.0f} min "
          f"(once per machine: cached by content hash in <state>/embeddings.sqlite)")
    with tempfile.TemporaryDirectory() as warm_dir:
        os.environ["SPROUT_STATE_DIR"] = warm_dir
        cache = EmbeddingCache(Path(warm_dir) / "embeddings.sqlite")
        rng = np.random.default_rng(0)
        vecs = rng.normal(size=(len(need), DIM)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        for i in range(0, len(need), 2000):
            cache.put_many([(text_key(t), v) for t, v in zip(need[i:i + 2000], vecs[i:i + 2000])])
        cache.close()
        w1, rep1, _ = run_cli(Path(warm_dir))
        w2, rep2, _ = run_cli(Path(warm_dir))
    print(f"warm, embeddings cached ({rep1['triples']:,} triples): {w1:.1f} s wall")
    print(f"warm, verdicts cached   ({rep2['triples']:,} triples): {w2:.1f} s wall")
    print(f"target <= 30 s warm: {'met' if max(w1, w2) <= 30 else 'NOT met'}; "
          f"load average after: {os.getloadavg()[0]:.1f} (1 min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
