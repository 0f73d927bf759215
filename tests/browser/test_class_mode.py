"""Browser: two visitors of a class-mode server at once (issue 20.1/20.2). Visitor A's upload is A's alone —
B neither sees it in the zone list nor gets a Remove button for it — it survives A's reload, and a zone name
that is a Markdown image and link pointing at a local beacon is shown as text and never fetched."""
from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM, launch_app, wait_for_app_idle
from tests.browser.test_grid_upload import _csv, _open_box, _upload


@pytest.fixture(scope="module")
def beacon():
    hits: list[str] = []

    class H(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1], hits
    srv.shutdown()


@pytest.fixture(scope="module")
def class_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it)")
    with launch_app(tmp_path_factory.mktemp("class-state"), SPROUT_MODEL="embedded", SPROUT_SHARED="1") as url:
        yield url


def _visitor(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(90_000)
    return ctx, ctx.new_page()


def _zone_options(page, text: str) -> int:
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Grid zone")
    box.click()
    page.keyboard.type(text)
    page.wait_for_timeout(500)
    n = page.get_by_role("option", name=re.compile(text)).count()
    page.keyboard.press("Escape")
    return n


def test_two_visitors_are_kept_apart_and_a_beacon_is_never_fetched(browser, class_url, beacon):
    port, hits = beacon
    hostile = f"![x](http://127.0.0.1:{port}/beacon-img) [l](http://127.0.0.1:{port}/beacon-link)"
    ctx_a, a = _visitor(browser)
    ctx_b, b = _visitor(browser)
    try:
        a.goto(class_url + "/optimizer")
        a.wait_for_url(re.compile(r"visitor="))
        a.get_by_text("Decision for this hour").wait_for(timeout=180_000)
        wait_for_app_idle(a)
        sidebar = _open_box(a)
        sidebar.get_by_text("Only you see it").wait_for()
        _upload(sidebar, "lab.csv", _csv(8760))
        wait_for_app_idle(a)
        for label, value in [("Zone id (needed for a two-column file)", "CLASS-A"),
                             ("Year (needed when the first column counts hours)", "2023"),
                             ("Zone name (optional)", hostile)]:
            box = sidebar.get_by_label(label)
            box.fill(value)
            box.press("Enter")
            wait_for_app_idle(a)
        sidebar.get_by_role("button", name="Add trace").click()
        sidebar.get_by_text(re.compile(r"Added CLASS-A 2023")).wait_for()
        wait_for_app_idle(a)
        remove = sidebar.get_by_role("button", name="Remove CLASS-A 2023")
        remove.wait_for()
        sidebar.get_by_text(re.compile(r"CLASS-A 2023 — !\[x\]\(http:")).first.wait_for()  # the name, as text
        assert _zone_options(a, "CLASS-A") == 1

        # visitor B, at the same time: nothing of A's
        b.goto(class_url + "/optimizer")
        b.wait_for_url(re.compile(r"visitor="))
        b.get_by_text("Decision for this hour").wait_for(timeout=180_000)
        wait_for_app_idle(b)
        assert re.search(r"visitor=([^&]+)", a.url).group(1) != re.search(r"visitor=([^&]+)", b.url).group(1)
        sb = _open_box(b)
        sb.get_by_text("Only you see it").wait_for()
        assert sb.get_by_text("Your traces").count() == 0
        assert b.get_by_role("button", name=re.compile("Remove CLASS-A")).count() == 0
        assert _zone_options(b, "CLASS-A") == 0
        assert "CLASS-A" not in b.locator("body").inner_text()

        # A reloads: a new Streamlit session, the same visitor, the upload still A's
        a.reload()
        a.get_by_text("Decision for this hour").wait_for(timeout=180_000)
        wait_for_app_idle(a)
        _open_box(a).get_by_role("button", name="Remove CLASS-A 2023").wait_for()

        # nothing formed from the hostile name, and nothing was fetched
        for pg in (a, b):
            assert pg.locator(f'img[src*="127.0.0.1:{port}"], a[href*="127.0.0.1:{port}"]').count() == 0
        a.wait_for_timeout(1000)
        assert hits == []
    finally:
        ctx_a.close()
        ctx_b.close()
