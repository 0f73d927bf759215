"""Browser: the Evaluations page shows the shipped evaluation and the paper's verdicts, and hands q to the Optimizer."""
import re

import pytest

from sprout_core.evaluate.results import shipped_runs
from tests.browser.conftest import wait_for_app_idle
from tests.conftest import public_data_available


def test_shipped_evaluation_is_browsable(page, app_url):
    page.goto(app_url + "/evaluations")
    page.get_by_role("heading", name=re.compile("Evaluations")).wait_for(timeout=180_000)
    wait_for_app_idle(page)
    if not shipped_runs():
        page.get_by_text("No evaluation runs yet").wait_for()
        return
    page.get_by_text("Win shares per task and level").wait_for(timeout=120_000)
    page.get_by_text("Judge: reference").wait_for()
    page.get_by_text("Download CSV").wait_for()
    # search narrows the table; the detail view shows the prompt's three answers
    search = page.get_by_role("textbox", name="Search prompts and answers")
    search.fill("hexagon")
    search.press("Enter")
    wait_for_app_idle(page)
    page.get_by_text(re.compile(r"\b1 prompt\. ")).wait_for(timeout=60_000)
    page.get_by_text("Reference answer: 6").wait_for()


@pytest.mark.skipif(not public_data_available("llama2-13b-a100", "responses.jsonl"), reason="paper data absent")
def test_paper_q_flows_into_the_optimizer(page, app_url):
    page.goto(app_url + "/evaluations")
    page.get_by_role("heading", name=re.compile("Evaluations")).wait_for(timeout=180_000)
    wait_for_app_idle(page)
    page.get_by_text("Sprout paper (Llama-2-13B, GPT-4 judge)").click()
    page.get_by_text("Judge: gpt-4-0613 (paper)").wait_for(timeout=180_000)
    wait_for_app_idle(page)
    page.get_by_text("12000", exact=True).first.wait_for()
    page.get_by_role("button", name=re.compile("Use this q in the Optimizer")).click()
    page.wait_for_url(re.compile(r"/optimizer"), timeout=120_000)
    page.get_by_text(re.compile("from Evaluations")).first.wait_for(timeout=120_000)
