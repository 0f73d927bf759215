"""Benchmark the shipped public data (issue 13): size in git, read times, and the app's start with and
without loading it.

Each case runs in a fresh Python process (nothing cached; the data cases are timed after their imports),
the cases interleaved round by round so a busy shared machine slows them alike; medians over ``--rounds``
and ratios are printed.

* ``list zones``: what a page needs to offer zones — the shipped index (``grid.list_traces()``) vs parsing
  every public CSV export (``grid.list_traces(public folder)``, the reader before the shipped data);
* ``load all traces``: all 38 zone-years, shipped (decompress) vs CSV parse;
* ``reference numbers``: ``refdata.requests()`` + ``judgments()`` + ``task_mix()``, shipped vs CSV;
* ``app start``: ``AppTest`` run of ``app.py`` (the Home page) — lazy: no trace or reference table is read —
  vs the same followed by loading every shipped trace and the reference numbers (what an eager start would
  pay), and the Optimizer page's first run (it reads the index, one trace and the reference profile).

Run: ``.venv/bin/python benchmarks/bench_data.py [--rounds 5] [--json]``. The CSV cases need the public files
(``data/external`` or ``SPROUT_DATA_DIR``); they are left out without them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PRELUDE = "import time, sys; sys.path.insert(0, %r)\n" % str(ROOT)
#: name -> (untimed set-up: imports, timed code); the app cases time everything, imports included
CASES = {
    "list zones: shipped index": ("from sprout_core import grid",
                                  "infos, _ = grid.list_traces(); assert len(infos) >= 38"),
    "list zones: parse public CSVs": ("from sprout_core import grid, paths",
                                      "infos, _ = grid.list_traces(paths.public_data_dir()); assert len(infos) == 38"),
    "load all traces: shipped": ("from sprout_core import grid",
                                 "[grid.load_trace(i.zone, i.year) for i in grid.list_traces()[0]]"),
    "load all traces: public CSVs": ("from sprout_core import grid, paths\np = paths.public_data_dir()",
                                     "[grid.load_trace(i.zone, i.year, data_dir=p) for i in grid.list_traces(p)[0]]"),
    "reference numbers: shipped": ("from sprout_core import refdata",
                                   "refdata.requests(); refdata.judgments(); refdata.task_mix()"),
    "reference numbers: public CSVs": ("from sprout_core import refdata, paths\np = paths.public_data_dir()",
                                       "refdata.requests(p); refdata.judgments(p); refdata.task_mix(p)"),
    "app start (Home, lazy)": ("", "from streamlit.testing.v1 import AppTest\n"
                                   "at = AppTest.from_file(%r, default_timeout=120).run(); assert not at.exception"
                               % str(ROOT / "app.py")),
    "app start + load all shipped data": ("", "from streamlit.testing.v1 import AppTest\n"
                                              "at = AppTest.from_file(%r, default_timeout=120).run(); assert not at.exception\n"
                                              "from sprout_core import grid, refdata\n"
                                              "[grid.load_trace(i.zone, i.year, c) for i in grid.list_traces()[0] "
                                              "for c in ('direct', 'lca')]\n"
                                              "refdata.requests(); refdata.judgments(); refdata.judgments_7b(); "
                                              "refdata.task_mix()" % str(ROOT / "app.py")),
    "Optimizer page, first run": ("", "from streamlit.testing.v1 import AppTest\n"
                                      "at = AppTest.from_file(%r, default_timeout=120).run(); assert not at.exception"
                                  % str(ROOT / "pages/optimizer.py")),
}
PAIRS = [("list zones: parse public CSVs", "list zones: shipped index"),
         ("load all traces: public CSVs", "load all traces: shipped"),
         ("reference numbers: public CSVs", "reference numbers: shipped"),
         ("app start + load all shipped data", "app start (Home, lazy)")]


def run_case(case: tuple[str, str], env: dict) -> float:
    setup, timed = case
    script = PRELUDE + setup + "\nt0 = time.perf_counter()\n" + timed + "\nprint(time.perf_counter() - t0)\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return float(out.stdout.strip().splitlines()[-1])


def git_size() -> dict:
    """Bytes of the shipped files as git stores them (blob sizes; the npz are already deflated)."""
    from sprout_core.paths import SHIPPED_FILES

    files = []
    for rel in SHIPPED_FILES.values():
        folder = (ROOT / "data" / rel).parent
        files += sorted(p for p in folder.iterdir() if p.is_file())
    sizes = {str(p.relative_to(ROOT)): p.stat().st_size for p in files}
    try:
        out = subprocess.run(["git", "ls-tree", "-r", "-l", "HEAD", "data/carbon", "data/reference"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        tracked = {line.split("\t")[1]: int(line.split()[3]) for line in out.splitlines()}
    except (OSError, subprocess.CalledProcessError, IndexError, ValueError):
        tracked = {}
    return {"files": sizes, "total_bytes": sum(sizes.values()), "tracked_bytes_at_HEAD": sum(tracked.values())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from sprout_core.paths import public_data_dir

    have_public = (public_data_dir() / "carbon").is_dir() and (public_data_dir() / "llama2-13b-a100").is_dir()
    cases = {k: v for k, v in CASES.items() if have_public or "public" not in k}
    with tempfile.TemporaryDirectory() as state:
        env = dict(os.environ, SPROUT_STATE_DIR=state, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        times: dict[str, list[float]] = {k: [] for k in cases}
        for _ in range(args.rounds):
            for name, code in cases.items():
                case_env = env
                if "shipped" in name or "app" in name.lower() or "Optimizer" in name:
                    case_env = dict(env, SPROUT_DATA_DIR=str(Path(state) / "no-public-data"))  # a fresh clone
                times[name].append(run_case(code, case_env))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {f"{a} / {b}": med[a] / med[b] for a, b in PAIRS if a in med and b in med}
    result = {"median_s": med, "ratios": ratios, "rounds": args.rounds, "size": git_size(),
              "loadavg": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (shared machines distort "
          f"absolute times; compare the ratios)")
    print(f"shipped data: {result['size']['total_bytes'] / 1e6:.2f} MB on disk, "
          f"{result['size']['tracked_bytes_at_HEAD'] / 1e6:.2f} MB tracked at HEAD")
    for k, v in med.items():
        print(f"  {k:<40} {v * 1000:9.1f} ms (median of {args.rounds})")
    for k, v in ratios.items():
        print(f"  ratio {k}: {v:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
