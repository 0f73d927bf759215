"""One app-wide PUE (issue 21.1): the sidebar input is on the Playground, the Optimizer and What-if, its value
is kept across pages in session state, and the Optimizer's carbon follows it."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from sprout_core.ui import PUE_KEY

ROOT = Path(__file__).resolve().parent.parent
OPT = str(ROOT / "pages/optimizer.py")
WHATIF = str(ROOT / "pages/whatif.py")
WIDGET = PUE_KEY + ".widget"


def _carbon(at) -> str:
    return next(m.value for m in at.metric if m.label == "Expected carbon")


def test_optimizer_carbon_follows_the_sidebar_pue():
    at = AppTest.from_file(OPT, default_timeout=90).run()
    assert not at.exception, at.exception
    assert at.number_input(key=WIDGET).value == 1.0
    base = _carbon(at)
    at.number_input(key=WIDGET).set_value(1.58).run()
    assert not at.exception, at.exception
    assert at.session_state[PUE_KEY] == 1.58
    assert _carbon(at) != base
    assert any("PUE 1.58" in c.value for c in at.caption)
    at.number_input(key=WIDGET).set_value(1.0).run()
    assert _carbon(at) == base       # back at PUE 1: the same grams


def test_whatif_reads_the_same_setting():
    at = AppTest.from_file(WHATIF, default_timeout=90)
    at.session_state[PUE_KEY] = 1.2          # set on another page earlier in the session
    at.run()
    assert not at.exception, at.exception
    assert at.number_input(key=WIDGET).value == 1.2
