"""From start to answers, as a new user sees it: health check → Home shown → the three levels of one prompt.

    .venv/bin/python benchmarks/bench_start.py                 # default backend vs transformers, side by side
    .venv/bin/python benchmarks/bench_start.py --rounds 2 --json

Run after ``bash scripts/setup.sh`` (it does the one-time work: the llama.cpp build and the GGUF → safetensors
copy). For each arm — the app's default (llama.cpp when installed) and ``SPROUT_EMBEDDED_BACKEND=transformers``
— this starts ``python -m sprout_core.serve`` (what ``scripts/start.sh`` runs) on a free port with a fresh state
folder, and times, in headless chromium (Playwright):

* **health**: from the process start to ``/_stcore/health`` answering ``ok``;
* **Home**: from the health check to Home showing its model (the first visit loads the backend);
* **three levels**: on the Playground, "Why is the sky blue?" at the default token cap, from the click on Run to
  the per-level table (all three levels done), with each level's new tokens read from the arm's History.

Arms alternate (ABBA) so a change in the machine's load hits both; the load average is printed beside the times:
on a shared machine read the ratio, not the absolute seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_playground_ttft import CHROMIUM, PROMPT, free_port, idle  # noqa: E402

ARMS = {"default": {}, "transformers": {"SPROUT_EMBEDDED_BACKEND": "transformers"}}


def start(state: Path, extra: dict[str, str]) -> tuple[subprocess.Popen, str, float, object]:
    """Start the app like scripts/start.sh; return the process, its URL, seconds to the health check, its log."""
    port = free_port()
    state.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPROUT_BACKEND", "SPROUT_SERVER_", "SPROUT_MODEL",
                                                                     "SPROUT_EMBEDDED_BACKEND"))}
    env.update(SPROUT_STATE_DIR=str(state), PYTHONUNBUFFERED="1", **extra)
    log = open(state / "server.log", "w")  # noqa: SIM115 - closed in stop()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "sprout_core.serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    while time.perf_counter() - t0 < 300:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return proc, url, time.perf_counter() - t0, log
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the app did not answer its health check in 300 s (log: {state / 'server.log'})")


def stop(proc: subprocess.Popen, log) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def tokens_by_level(state: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{state / 'sprout.sqlite'}?mode=ro", uri=True)
    try:
        return {lv: n for lv, n in con.execute("SELECT level, new_tokens FROM requests ORDER BY id")}
    finally:
        con.close()


def one_round(browser, name: str, state: Path) -> dict:
    proc, url, health_s, log = start(state, ARMS[name])
    ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
    try:
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        t0 = time.perf_counter()
        page.goto(url + "/")
        page.get_by_text("Dtype", exact=True).first.wait_for()  # Home shows the loaded model
        idle(page)
        home_s = time.perf_counter() - t0
        backend = "llama.cpp" if page.get_by_text("llama.cpp threads", exact=True).count() else "transformers"
        page.goto(url + "/playground")
        box = page.get_by_role("textbox", name="Prompt")
        box.wait_for()
        box.fill(PROMPT)
        box.press("Control+Enter")
        time.sleep(1.0)
        idle(page)
        cap = page.get_by_role("spinbutton", name="Max new tokens").input_value()
        t1 = time.perf_counter()
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text("Per level", exact=True).wait_for()
        levels_s = time.perf_counter() - t1
    finally:
        ctx.close()
        stop(proc, log)
    return {"backend": backend, "health_s": health_s, "home_s": home_s, "three_levels_s": levels_s,
            "max_new_tokens": int(cap), "tokens": tokens_by_level(state), "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--arms", default="default,transformers")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    names = [a for a in args.arms.split(",") if a]
    out: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="sprout-start-") as tmp, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        for r in range(args.rounds):
            for n in (names if r % 2 == 0 else names[::-1]):
                out[n].append(one_round(browser, n, Path(tmp) / f"{n}-{r}"))
                print(f"[round {r + 1}] {n}: {json.dumps(out[n][-1])}", file=sys.stderr, flush=True)
        browser.close()
    report = {"cores": os.cpu_count(), "load_average_end": os.getloadavg(), "arms": {}}
    for n, rows in out.items():
        med = {k: statistics.median(r[k] for r in rows) for k in ("health_s", "home_s", "three_levels_s")}
        report["arms"][n] = {**med, "backend": rows[0]["backend"], "max_new_tokens": rows[0]["max_new_tokens"],
                             "tokens": rows[-1]["tokens"], "load_during": [round(r["load"], 1) for r in rows]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for n, a in report["arms"].items():
            print(f"{n:13} backend {a['backend']:12} health {a['health_s']:5.1f} s · Home {a['home_s']:5.1f} s · three "
                  f"levels {a['three_levels_s']:5.1f} s at max {a['max_new_tokens']} new tokens "
                  f"(tokens {a['tokens']}) · load {a['load_during']}")
        if len(names) == 2:
            a, b = (report["arms"][n]["three_levels_s"] for n in names)
            print(f"three levels, {names[0]} / {names[1]}: ×{a / b:.2f}")
        print(f"{args.rounds} round(s), {report['cores']} cores, load average at the end {report['load_average_end'][0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
