"""Browser: the Live page shows the gateway's traffic and refreshes by itself while it is open — requests sent
through the gateway (an unmodified openai client, a fake upstream) appear without a reload."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, launch_app, metric_value, wait_for_app_idle
from tests.gateway_fakes import FakeUpstream, ServerThread


def test_live_page_refreshes_with_new_gateway_traffic(browser):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it)")
    openai = pytest.importorskip("openai")
    from sprout_core.gateway.app import create_app
    from sprout_core.gateway.config import GatewayConfig

    state = Path(os.environ["SPROUT_STATE_DIR"])  # the gateway (this process) and the app share the store
    state.mkdir(parents=True, exist_ok=True)
    up = ServerThread(FakeUpstream().app).start()
    gw = ServerThread(create_app(GatewayConfig(upstream=up.url + "/v1", zone="DE", energy="none"))).start()
    try:
        client = openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
        client.chat.completions.create(model="fake-llama-2-7b-chat", messages=[{"role": "user", "content": "hi"}])
        # the session's browser: a second sync_playwright() inside the first one's event loop is refused
        with launch_app(state) as url:
            b = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = b.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + "/live")
            wait_for_app_idle(page)
            page.get_by_text("Saved vs all-L0").first.wait_for()
            assert metric_value(page, "Requests").strip() == "1"
            for _ in range(4):
                client.chat.completions.create(model="fake-llama-2-7b-chat", messages=[{"role": "user", "content": "x"}],
                                               stream=True).close()
            # no reload: the fragment reruns every 10 s
            page.wait_for_function(
                "() => [...document.querySelectorAll('[data-testid=\"stMetric\"]')].some("
                "m => m.innerText.includes('Requests') && m.innerText.includes('5'))", timeout=60_000)
            b.close()
    finally:
        gw.stop()
        up.stop()
