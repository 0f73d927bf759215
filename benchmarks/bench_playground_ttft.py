"""Playground time to first token, as a user sees it: from the click on Run to the first answer text.

    .venv/bin/python benchmarks/bench_playground_ttft.py                      # this checkout, 4 rounds
    .venv/bin/python benchmarks/bench_playground_ttft.py --baseline main      # and a git ref, side by side
    .venv/bin/python benchmarks/bench_playground_ttft.py --rounds 6 --json

Starts ``streamlit run app.py`` (embedded model, own state folder, a free local port) for each arm —
this checkout and, with ``--baseline REF``, a copy of that git ref made with ``git archive`` — and drives
headless chromium (Playwright): type the prompt, set max new tokens, click Run, and time until the
Playground shows the first live caption with at least one token ("1 tokens · …"). Rounds alternate
the arms in ABBA order so drifts in machine load hit both alike; each round is a fresh browser
session. Reported per arm: the browser time to first token (median, min, max), the model's own
time to first token (``ttft_s`` of the L0 answers in that arm's History: prefill only) and the
difference (page, queue and rendering overhead). The load average is printed: on a shared machine
read the ratio, not the absolute seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PROMPT = "Why is the sky blue?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_ref(ref: str, dest: Path) -> Path:
    """A copy of git ref ``ref`` in ``dest`` (data/external linked to this checkout's)."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    ext = ROOT / "data" / "external"
    if ext.exists():
        (dest / "data" / "external").symlink_to(ext.resolve())
    return dest


class Server:
    def __init__(self, app_dir: Path, state: Path):
        self.port = free_port()
        self.state = state
        state.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, SPROUT_STATE_DIR=str(state), SPROUT_MODEL="embedded", PYTHONUNBUFFERED="1",
                   PYTHONDONTWRITEBYTECODE="1")
        self.log = open(state / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(app_dir / "app.py"), "--server.port", str(self.port),
             "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
            cwd=app_dir, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"server for {app_dir} did not start")

    def model_ttft(self) -> float | None:
        """``ttft_s`` of the newest L0 answer in this arm's History (None when there is none yet)."""
        db = self.state / "sprout.sqlite"
        if not db.exists():
            return None
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT ttft_s FROM requests WHERE level='L0' ORDER BY id DESC LIMIT 1").fetchone()
        except sqlite3.Error:
            return None
        finally:
            con.close()
        return None if row is None else row[0]

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


def common_args(ap: argparse.ArgumentParser, rounds: int) -> None:
    """The arguments every side-by-side browser benchmark takes: --baseline, --rounds, --json, --keep."""
    ap.add_argument("--baseline", default=None, help="git ref to compare with (e.g. main)")
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder (state, server logs)")


def start_arms(baseline: str | None, prefix: str) -> tuple[Path, dict[str, Server]]:
    """A server of this checkout and, with ``baseline``, one of that git ref, in a new temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    paths = {"this checkout": ROOT}
    if baseline:
        paths[f"baseline {baseline}"] = export_ref(baseline, tmp / "baseline")
    return tmp, {name: Server(path, tmp / f"state-{k}") for k, (name, path) in enumerate(paths.items())}


def stop_arms(servers: dict[str, Server], tmp: Path, keep: bool) -> None:
    """Stop the servers and remove the temporary folder (unless ``keep``)."""
    for s in servers.values():
        s.stop()
    if keep:
        print(f"kept {tmp}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def idle(page) -> None:
    """Wait for the script run to end (where the running indicator is shown; older builds hid it)."""
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=300_000)


def one_round(browser, url: str, max_new: int) -> float:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1400})
    try:
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        page.goto(url + "/playground")
        box = page.get_by_role("textbox", name="Prompt")
        box.wait_for()
        box.fill(PROMPT)
        box.press("Control+Enter")
        mx = page.get_by_role("spinbutton", name="Max new tokens")
        mx.fill(str(max_new))
        mx.press("Enter")
        time.sleep(1.0)
        idle(page)
        run = page.get_by_role("button", name="Run", exact=True)
        first = page.get_by_text(re.compile(r"^[1-9]\d* tokens · ")).first
        t0 = time.perf_counter()
        run.click()
        first.wait_for()
        dt = time.perf_counter() - t0
        page.get_by_text("Per level", exact=True).wait_for()  # the run is over (both versions show it)
        time.sleep(0.5)
        return dt
    finally:
        ctx.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(ap, rounds=4)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    tmp, servers = start_arms(args.baseline, "sprout-ttft-")
    names = list(servers)
    out: dict[str, dict] = {n: {"browser_s": [], "model_s": []} for n in names}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
            one_round(browser, servers[names[0]].url, args.max_new_tokens)  # warm-up (model load, caches)
            if len(names) > 1:
                one_round(browser, servers[names[1]].url, args.max_new_tokens)
            for r in range(args.rounds):
                order = names if r % 2 == 0 else names[::-1]  # ABBA
                for n in order:
                    out[n]["browser_s"].append(one_round(browser, servers[n].url, args.max_new_tokens))
                    out[n]["model_s"].append(servers[n].model_ttft())
            browser.close()
    finally:
        stop_arms(servers, tmp, args.keep)
    load = os.getloadavg()
    report = {"load_average": load, "cores": os.cpu_count(), "rounds": args.rounds, "max_new_tokens": args.max_new_tokens,
              "arms": {}}
    for n, d in out.items():
        b = d["browser_s"]
        m = [x for x in d["model_s"] if x is not None]
        report["arms"][n] = {"browser_ttft_median_s": statistics.median(b), "browser_ttft_min_s": min(b),
                             "browser_ttft_max_s": max(b), "model_ttft_median_s": statistics.median(m) if m else None,
                             "overhead_median_s": statistics.median(b) - statistics.median(m) if m else None,
                             "browser_s": b, "model_s": d["model_s"]}
    if len(names) > 1:
        a, b = (report["arms"][n]["browser_ttft_median_s"] for n in names)
        report["ratio_this_vs_baseline"] = a / b if b else None
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} on {os.cpu_count()} cores "
              f"(shared machine: compare arms, not absolute seconds)")
        for n, r in report["arms"].items():
            print(f"{n:>22}: browser TTFT median {r['browser_ttft_median_s']:.2f} s (min {r['browser_ttft_min_s']:.2f}, "
                  f"max {r['browser_ttft_max_s']:.2f}); model TTFT median "
                  + (f"{r['model_ttft_median_s']:.2f} s; page overhead {r['overhead_median_s']:.2f} s"
                     if r["model_ttft_median_s"] is not None else "n/a"))
        if "ratio_this_vs_baseline" in report:
            print(f"ratio this/baseline (browser TTFT medians): {report['ratio_this_vs_baseline']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
