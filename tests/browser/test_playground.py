"""Browser: type a prompt in the Playground, run it, see an answer for every level."""
import re

from tests.browser.conftest import wait_for_app_idle


def test_home_renders_the_model(page, app_url):
    page.goto(app_url)
    page.get_by_text("See, measure and cut the carbon cost").wait_for(timeout=180_000)
    page.get_by_text("SmolLM2-135M-Instruct").first.wait_for(timeout=180_000)


def test_playground_answers_every_level(page, app_url):
    page.goto(app_url + "/playground")
    prompt = page.get_by_role("textbox", name="Prompt")
    prompt.wait_for(timeout=180_000)
    prompt.fill("What is the capital of France?")
    prompt.press("Control+Enter")
    box = page.get_by_role("spinbutton", name="Max new tokens")
    box.fill("24")
    box.press("Enter")
    wait_for_app_idle(page)
    page.get_by_role("button", name="Run", exact=True).click()
    page.get_by_text("Per level", exact=True).wait_for(timeout=240_000)
    for level in ("L0", "L1", "L2"):
        cap = page.get_by_text(re.compile(rf"^{level} answer: \d+ new tokens"))
        cap.wait_for()
        n = int(re.search(r"(\d+) new tokens", cap.inner_text()).group(1))
        assert n > 0, f"{level} has no answer"
