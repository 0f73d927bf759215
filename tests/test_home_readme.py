"""Home and the README agree word for word on Sprout's claims and the paper's title (issue 19 item 6)."""
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from sprout_core.views import home as H

ROOT = Path(__file__).resolve().parent.parent


def plain(text: str) -> str:
    """Markdown emphasis and table bars off, whitespace collapsed: the words a reader sees."""
    return " ".join(re.sub(r"\*\*|(?<!\w)\*|\*(?!\w)|^\|\s*|\s*\|$", "", text, flags=re.M).split())


def test_every_home_claim_is_in_the_readme_word_for_word():
    readme = plain((ROOT / "README.md").read_text(encoding="utf-8"))
    missing = [c for c in H.claims() if plain(c) not in readme]
    assert not missing, missing
    assert H.PAPER_TITLE == "Sprout: Green Generative AI with Carbon-Efficient LLM Inference"
    for name, what in H.PAGES.items():  # the README's page table has the same sentence in the page's row
        assert re.search(rf"^\| \*\*{re.escape(name)}\*\* \| {re.escape(what)} \|$",
                         (ROOT / "README.md").read_text(encoding="utf-8"), re.M), name


def test_the_llama_cpp_claim_is_the_measured_one():
    """The speed-up Home and the README state is the one the benchmark table in docs/serving.md measured."""
    serving = (ROOT / "docs/serving.md").read_text(encoding="utf-8")
    ratio = re.search(r"\*\*llama\.cpp ÷ transformers\*\* \| \*\*× ([\d.]+)\*\*", serving).group(1)
    assert f"{ratio}× the tokens/s of transformers" in H.LLAMA_CPP_CLAIM


def test_home_shows_the_claims_and_ends_its_sentences(monkeypatch):
    monkeypatch.setenv("SPROUT_MODEL", "embedded")
    src = (ROOT / "pages/home.py").read_text(encoding="utf-8")
    assert "Toward Sustainable GenAI" not in src and "chosen below" not in src and "3×" not in src
    at = AppTest.from_file(str(ROOT / "pages/home.py"), default_timeout=300).run()
    assert not at.exception, at.exception
    shown = plain(" ".join(m.value for m in at.markdown))
    assert plain(H.INTRO) in shown and H.PAPER_TITLE in shown
    for c in at.caption:
        text = c.value.strip()
        assert text.endswith((".", ")", ":")), f"caption without a full stop: {text!r}"
