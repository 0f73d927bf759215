"""Browser: upload a user's own grid data in the What-if sidebar; a bad file is refused with its line; the new
zone is offered in the zone lists, replays, and can be removed again."""
import re

from tests.browser.conftest import wait_for_app_idle


def _csv(n: int, bad_line: int | None = None) -> bytes:
    rows = ["hour,g_per_kwh"] + [f"{i},{200 + (i % 24) * 10}" for i in range(n)]
    if bad_line is not None:
        rows[bad_line - 1] = f"{bad_line - 2},1e12"
    return ("\n".join(rows) + "\n").encode()


def _open_box(page):
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_text("Add your own grid data").click()
    return sidebar


def _upload(sidebar, name: str, data: bytes):
    """Choose a file in the uploader; again if a rerun replaced the widget while it was uploading."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(3):
        sidebar.locator('input[type="file"]').set_input_files({"name": name, "mimeType": "text/csv", "buffer": data})
        try:
            sidebar.page.wait_for_function(
                "(n) => document.querySelector('[data-testid=\"stSidebar\"]').innerText.includes(n)", arg=name,
                timeout=20_000)
            return
        except PlaywrightTimeout:
            if attempt == 2:
                raise


def test_upload_adds_a_zone_and_a_bad_file_is_refused(page, app_url):
    page.goto(app_url + "/whatif")
    page.get_by_role("button", name="Run the replay").wait_for(timeout=180_000)
    wait_for_app_idle(page)
    sidebar = _open_box(page)
    _upload(sidebar, "bad.csv", _csv(8760, bad_line=42))
    wait_for_app_idle(page)
    for label, value in [("Zone id (needed for a two-column file)", "MY-LAB"),
                         ("Year (needed when the first column counts hours)", "2023"), ("Zone name (optional)", "Our lab")]:
        box = sidebar.get_by_label(label)
        box.fill(value)
        box.press("Enter")  # commit the value (a rerun) before the next step
        wait_for_app_idle(page)
    sidebar.get_by_role("button", name="Add trace").click()
    sidebar.get_by_text(re.compile(r"Not added: bad\.csv, line 42: .*implausible")).wait_for()
    wait_for_app_idle(page)
    _upload(sidebar, "lab.csv", _csv(8760))
    sidebar.get_by_text(re.compile(r"Not added: bad\.csv")).wait_for(state="detached")  # the server has the new file
    wait_for_app_idle(page)
    sidebar.get_by_role("button", name="Add trace").click()
    sidebar.get_by_text(re.compile(r"Added MY-LAB 2023 \(Our lab\): 8,760 hours")).wait_for()
    wait_for_app_idle(page)
    sidebar.get_by_text("MY-LAB 2023 — Our lab").wait_for()
    # the zone list of the main page offers it: pick it and replay
    zones = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Zones")
    zones.locator("input").click()
    page.keyboard.type("MY-LAB")
    page.get_by_role("option", name=re.compile(r"MY-LAB( — Our lab)? · your data")).click()  # What-if chips show the zone id
    page.keyboard.press("Escape")
    wait_for_app_idle(page)
    page.get_by_role("button", name="Run the replay").click()
    page.get_by_text("Results", exact=True).wait_for(timeout=180_000)
    wait_for_app_idle(page)
    page.get_by_role("button", name="Download CSV").wait_for()
    page.locator('[data-testid="stDataFrame"]').first.wait_for(state="attached")
    page.get_by_text(re.compile(r"ξ sweep — ")).wait_for()
    # remove it again: the server's state folder is shared by the browser tests
    sidebar.get_by_role("button", name="Remove MY-LAB 2023").click()
    wait_for_app_idle(page)
    sidebar.get_by_text("MY-LAB 2023 — Our lab").wait_for(state="detached")
