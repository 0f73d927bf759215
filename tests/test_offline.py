"""Nothing contacts the network at run time (issue 10), proven under a guard that refuses and reports any
connection or name look-up that leaves this machine (``tests/netguard/sitecustomize.py``).

* the guard itself works (a plain ``urlopen`` is reported) — otherwise the other tests prove nothing;
* a plain ``streamlit run`` on a wildcard address *does* look up the external IP — the problem the issue
  found — while ``python -m sprout_core.serve`` (what ``scripts/start.sh`` runs), shared mode included,
  starts with no report;
* the CLI: ``generate`` and ``evaluate`` (embedded model, energy meter, reference judge with its embedding
  model) end with no report.

The app's pages, driven by a real browser under the same guard, are in ``tests/browser/test_offline_app.py``.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUARD = ROOT / "tests" / "netguard"


def guarded_env(report: Path, state: Path, **extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(GUARD), str(ROOT)]), SPROUT_NETGUARD_REPORT=str(report),
               SPROUT_STATE_DIR=str(state), PYTHONUNBUFFERED="1")
    env.pop("SPROUT_SHARED", None)
    env.update(extra)
    return env


def reports(report: Path) -> list[dict]:
    return [json.loads(x) for x in report.read_text().splitlines()] if report.exists() else []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(cmd: list[str], env: dict, port: int, log: Path, seconds: float = 4.0) -> str:
    """Start a server, wait for its health check, keep it up ``seconds`` more, stop it; returns its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.time() + 120
            while True:
                assert proc.poll() is None, log.read_text()[-2000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                        if r.read().decode().strip() == "ok":
                            break
                except OSError:
                    pass
                assert time.time() < deadline, "server did not start"
                time.sleep(0.5)
            time.sleep(seconds)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return log.read_text()


def test_the_guard_reports_and_refuses(tmp_path):
    report = tmp_path / "net.jsonl"
    code = ("import urllib.request\ntry:\n    urllib.request.urlopen('http://example.com/', timeout=3)\n"
            "except OSError as e:\n    print('refused', e)\n")
    out = subprocess.run([sys.executable, "-c", code], env=guarded_env(report, tmp_path), capture_output=True,
                         text=True, timeout=60)
    assert "refused" in out.stdout
    assert any("example.com" in r["target"] for r in reports(report))
    local = subprocess.run([sys.executable, "-c", "import socket; s=socket.socket(); s.connect_ex(('127.0.0.1', 9))"],
                           env=guarded_env(tmp_path / "local.jsonl", tmp_path), capture_output=True, text=True, timeout=60)
    assert local.returncode == 0 and not reports(tmp_path / "local.jsonl")  # loopback is allowed


def test_plain_streamlit_on_all_interfaces_looks_up_the_external_ip(tmp_path):
    """The failure the issue found, reproduced: the guard sees Streamlit's own look-ups."""
    report, port = tmp_path / "net.jsonl", free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "0.0.0.0",
           "--server.port", str(port)]
    run_server(cmd, guarded_env(report, tmp_path), port, tmp_path / "server.log", seconds=1)
    targets = " ".join(r["target"] for r in reports(report))
    assert "checkip.amazonaws.com" in targets or "8.8.8.8" in targets


@pytest.mark.parametrize("extra", [[], ["--shared"]], ids=["local", "shared"])
def test_sprout_server_starts_without_network(tmp_path, extra):
    report, port = tmp_path / "net.jsonl", free_port()
    cmd = [sys.executable, "-m", "sprout_core.serve", "--port", str(port), *extra]
    log = run_server(cmd, guarded_env(report, tmp_path), port, tmp_path / "server.log")
    assert reports(report) == [], reports(report)
    if extra:
        assert f"URL: http://{socket.gethostname()}:{port}" in log  # the banner needs no look-up
        assert "External URL" not in log and "Network URL" not in log
    else:
        assert "http://127.0.0.1:" in log  # this machine only by default
    # the cross-origin check, which would look up the external IP, is answered locally too
    code = ("from sprout_core.ui import keep_streamlit_offline; keep_streamlit_offline()\n"
            "from streamlit.web.server import server_util\n"
            "print(server_util.is_url_from_allowed_origins('http://evil.example:1'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=guarded_env(report, tmp_path), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr[-1500:]
    assert reports(report) == [], reports(report)


def test_default_bind_is_loopback():
    from sprout_core.serve import build_args

    args, env = build_args([])
    assert args[args.index("--server.address") + 1] == "127.0.0.1" and env == {}
    args, env = build_args(["--shared", "--public-host", "lab.example"])
    assert args[args.index("--server.address") + 1] == "0.0.0.0" and env == {"SPROUT_SHARED": "1"}
    assert args[args.index("--browser.serverAddress") + 1] == "lab.example"
    assert "--client.showErrorDetails" in args and args[args.index("--client.showErrorDetails") + 1] == "type"
    cfg = (ROOT / ".streamlit" / "config.toml").read_text()
    assert 'address = "127.0.0.1"' in cfg and 'showErrorDetails = "type"' in cfg
    start = (ROOT / "scripts" / "start.sh").read_text()
    assert "-m sprout_core.serve" in start


def test_cli_generate_and_evaluate_stay_offline(tmp_path):
    report = tmp_path / "net.jsonl"
    env = guarded_env(report, tmp_path)
    gen = subprocess.run([sys.executable, "-m", "sprout_core", "generate", "--prompt", "Why is the sky blue?",
                          "--levels", "L0,L1", "--max-new-tokens", "4", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert gen.returncode == 0, gen.stderr[-2000:]
    assert len(json.loads(gen.stdout)) == 2
    ev = subprocess.run([sys.executable, "-m", "sprout_core", "evaluate", "--prompts", "starter", "--n", "2",
                         "--levels", "L0,L1", "--max-new-tokens", "4", "--judge", "reference", "--json"], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert json.loads(ev.stdout)["answers"] == 4
    assert reports(report) == [], reports(report)
