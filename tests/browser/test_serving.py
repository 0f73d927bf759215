"""Browser: the app on a real llama.cpp server — the Home page shows it, two sessions run at the same time
(no app-wide lock: their requests are in flight together and share the server's energy), and stopping the
server mid-answer gives a clear message with the partial answer kept."""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from sprout_core import store
from tests.browser.conftest import CHROMIUM, launch_app, prepare_playground

llamacpp = pytest.importorskip("sprout_core.serving.llamacpp")
if not llamacpp.llama_server_available():
    if os.environ.get("SPROUT_REQUIRE_LLAMA_CPP") == "1":
        raise RuntimeError('llama-cpp-python[server] is required here: pip install "llama-cpp-python[server]"')
    pytest.skip("llama-cpp-python[server] is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def llama():
    s = llamacpp.LlamaServer(threads=1).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def served_app(llama, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it)")
    state = tmp_path_factory.mktemp("browser-serving-state")
    with launch_app(state, SPROUT_SERVER_URL=llama.base_url, SPROUT_SERVER_CONTEXT="2048", SPROUT_MODEL=None) as url:
        yield url, state


def _session(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    return ctx, ctx.new_page()


def _prepare(page, url, prompt, max_new):
    prepare_playground(page, url, prompt, max_new)


def test_home_shows_the_server(browser, served_app, llama):
    url, _ = served_app
    ctx, page = _session(browser)
    try:
        page.goto(url)
        page.get_by_text("smollm2-135m-instruct").first.wait_for(timeout=120_000)
        page.get_by_text(f"127.0.0.1:{llama.port}").first.wait_for()
        page.get_by_text("server schedules them").wait_for()
    finally:
        ctx.close()


def test_two_sessions_run_at_the_same_time(browser, served_app):
    url, state = served_app
    (ca, a), (cb, b) = _session(browser), _session(browser)
    try:
        _prepare(a, url, "Why is the sky blue?", 120)
        _prepare(b, url, "How do plants make food?", 120)
        a.get_by_role("button", name="Run", exact=True).click()
        b.get_by_role("button", name="Run", exact=True).click()
        for p in (a, b):
            p.get_by_text("Per level", exact=True).wait_for(timeout=300_000)
            for level in ("L0", "L1", "L2"):
                cap = p.get_by_text(re.compile(rf"^{level} answer: \d+ new tokens"))
                assert int(re.search(r"(\d+) new tokens", cap.inner_text()).group(1)) > 0
            p.get_by_text(re.compile(r"Energy method: (estimated:cpu-tdp|measured:rapl)")).wait_for()
    finally:
        ca.close()
        cb.close()
    df = pd.DataFrame(store.query_requests(path=state / "sprout.sqlite"))
    assert len(df) == 6 and df["run_id"].nunique() == 2 and df["device"].str.startswith("server:").all()
    end = pd.to_datetime(df["ts_utc"])
    start = end - pd.to_timedelta(df["total_s"], unit="s")
    runs = list(df.groupby("run_id").groups.values())
    overlap = any(start[i] < end[j] and start[j] < end[i] for i in runs[0] for j in runs[1])
    assert overlap, "the two sessions' requests were never in flight together"
    assert df["energy_flags"].fillna("").str.contains("shared-by-tokens").any()


def test_stopping_the_server_mid_answer_keeps_the_partial_answer(browser, served_app, llama):
    url, _ = served_app
    ctx, page = _session(browser)
    try:
        _prepare(page, url, "Write a long story about a dragon who learns to bake bread.", 1500)
        page.get_by_role("button", name="Run", exact=True).click()
        page.get_by_text(re.compile(r"▌")).first.wait_for(timeout=120_000)  # streaming
        time.sleep(1.0)
        llama.kill()
        err = page.get_by_text(re.compile(r"did the server stop.*partial answer \(\d+ tokens\) is kept"))
        err.first.wait_for(timeout=120_000)
        page.get_by_text("Per level", exact=True).wait_for(timeout=120_000)
        cap = page.get_by_text(re.compile(r"^L0 answer: \d+ new tokens.*finish: error"))
        assert int(re.search(r"(\d+) new tokens", cap.inner_text()).group(1)) > 0
        if os.environ.get("SPROUT_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["SPROUT_SCREENSHOTS"]) / "serving_cut.png"), full_page=True)
    finally:
        ctx.close()
