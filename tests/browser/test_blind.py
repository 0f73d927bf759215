"""Browser: the Playground's blind comparison — two unlabelled answers, a vote, the reveal — and the vote on
the Evaluations page, against the judge's verdict on the same prompt."""
import re

import pytest

from tests.browser.conftest import launch_app, wait_for_app_idle


@pytest.fixture
def own_app(browser, tmp_path):
    """An app with a store of its own: the vote adds a 'people (blind)' judge, which would change what the other
    browser tests' shared app shows first on Evaluations."""
    state = tmp_path / "state"
    state.mkdir()
    with launch_app(state, SPROUT_MODEL="embedded") as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
        ctx.set_default_timeout(60_000)
        yield ctx.new_page(), url
        ctx.close()


def test_blind_vote_reveals_the_levels_and_reaches_evaluations(own_app):
    page, app_url = own_app
    page.goto(app_url + "/playground")
    page.get_by_role("heading", name=re.compile("Blind comparison")).wait_for(timeout=240_000)
    wait_for_app_idle(page)
    page.get_by_role("button", name="New blind pair").click()
    page.get_by_text("Answer A", exact=True).wait_for(timeout=120_000)
    page.get_by_text("Answer B", exact=True).wait_for()
    assert page.get_by_text(re.compile(r"^You saw L\d")).count() == 0  # levels hidden before the vote
    page.get_by_role("button", name="Tie: equally good").click()
    page.get_by_text(re.compile(r"Vote saved\. You saw L\d as A and L\d as B")).wait_for(timeout=120_000)
    page.get_by_role("columnheader", name="carbon").first.wait_for()
    page.goto(app_url + "/evaluations")
    page.get_by_role("heading", name=re.compile("Evaluations")).wait_for(timeout=180_000)
    wait_for_app_idle(page)
    page.get_by_text(re.compile("People, blind, against the judges")).wait_for(timeout=120_000)
