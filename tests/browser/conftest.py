"""Real-browser fixtures: a ``streamlit run app.py`` server on a free local port and a
Playwright page in Debian's chromium.

* ``app_url`` (session): base URL of the running server, e.g. ``http://127.0.0.1:8765``; the
  server is stopped (its whole process group) when the session ends.
* ``page`` (function): a fresh Playwright page; navigate with ``page.goto(app_url + "/playground")``.

The server uses the embedded model (``SPROUT_MODEL=embedded``) and its own state folder. Tests
skip when chromium or playwright is missing (``scripts/setup.sh --test`` installs both).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
STARTUP_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launch_app(state: Path, cmd: list[str] | None = None, **env_overrides: str | None):
    """``streamlit run app.py`` on a free local port with its own state folder; yields the base URL and
    stops the server's whole process group afterwards. ``env_overrides``: variables to set (None: unset).
    ``cmd``: another start command (e.g. ``python -m sprout_core.serve``); ``--server.port`` is appended."""
    port = _free_port()
    env = dict(os.environ, SPROUT_STATE_DIR=str(state), PYTHONUNBUFFERED="1")
    for k, v in env_overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    log = open(state / "server.log", "w")
    base = cmd or [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
                   "--server.headless", "true", "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(
        [*base, "--server.port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + STARTUP_TIMEOUT_S
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {proc.returncode}: {(state / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("streamlit did not start in time")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        log.close()


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it)")
    with launch_app(tmp_path_factory.mktemp("browser-state"), SPROUT_MODEL="embedded") as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    pg = ctx.new_page()
    yield pg
    ctx.close()


def wait_for_app_idle(page, timeout_ms: int = 180_000) -> None:
    """Wait until the Streamlit script run has finished (no 'Running…' status widget)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout_ms)


def count_settled(page, selector: str, at_least: int, timeout_ms: int = 30_000) -> int:
    """How many elements match ``selector`` once at least ``at_least`` are attached (waits up to ``timeout_ms``).

    Streamlit mounts some elements (Plotly charts, data grids) a moment after its script run ends, on a busy
    machine sometimes after the status widget has gone; counting at once made these checks flaky."""
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length >= n", arg=[selector, at_least],
                           timeout=timeout_ms)
    page.wait_for_timeout(200)
    return page.locator(selector).count()


def metric_value(page, label: str) -> str:
    """The displayed value of the first ``st.metric`` whose box contains ``label``."""
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def fill_prompt(page, prompt: str, max_new: int, timeout_ms: int = 180_000) -> None:
    """On the Playground: type ``prompt`` and set "Max new tokens", then wait until the page is idle."""
    box = page.get_by_role("textbox", name="Prompt")
    box.wait_for(timeout=timeout_ms)
    box.fill(prompt)
    box.press("Control+Enter")
    n = page.get_by_role("spinbutton", name="Max new tokens")
    n.fill(str(max_new))
    n.press("Enter")
    wait_for_app_idle(page, max(timeout_ms, 180_000))


def prepare_playground(page, url: str, prompt: str, max_new: int, timeout_ms: int = 120_000) -> None:
    """Open the Playground, type ``prompt`` and set "Max new tokens", and wait until the page is idle."""
    page.goto(url + "/playground")
    fill_prompt(page, prompt, max_new, timeout_ms)
