"""Browser, class mode: the operator's caps hold for a visitor, and reloading the page does not reset them
(issue 20.3). One server with small caps: 60 characters per prompt, 9 new tokens per visitor and hour."""
import re

import pytest

from tests.browser.conftest import CHROMIUM, fill_prompt, launch_app, wait_for_app_idle

STORY = "Write a long story about a cat who learns to fly."


@pytest.fixture(scope="module")
def class_url(tmp_path_factory):
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/setup.sh --test installs it)")
    with launch_app(tmp_path_factory.mktemp("class-caps"), SPROUT_MODEL="embedded", SPROUT_SHARED="1",
                    SPROUT_CLASS_MAX_PROMPT_CHARS="60", SPROUT_CLASS_MAX_RUN_TOKENS="0",
                    SPROUT_CLASS_MAX_HOUR_TOKENS="9") as url:
        yield url


def run(page) -> None:
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_timeout(500)
    wait_for_app_idle(page, 300_000)


def test_caps_hold_and_a_reload_keeps_the_count(browser, class_url):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    page = ctx.new_page()
    try:
        page.goto(class_url + "/playground")
        page.get_by_text("Class mode: prompts of at most 60 characters").wait_for(timeout=180_000)
        fill_prompt(page, "x" * 61, 64)
        run(page)
        page.get_by_text(re.compile(r"at most 60 characters; this one has 61")).wait_for()
        fill_prompt(page, STORY, 64)
        run(page)
        page.get_by_text(re.compile(r"Max new tokens lowered to 3 per answer: 9 of your 9 new tokens")).wait_for()
        page.get_by_text("Energy and carbon per level").wait_for()  # the run finished, at 3 tokens per answer
        assert "visitor=" in page.url
        page.reload()  # a new Streamlit session, the same visitor (the address keeps it)
        fill_prompt(page, STORY, 64)
        run(page)
        page.get_by_text(re.compile(r"9 new tokens an hour; you have used \d+\. Try again in about \d+ min")).wait_for()
    finally:
        ctx.close()
