"""No emoji that needs a font the app does not ship (issue 19 item 8): pages, views and messages use Streamlit's
Material icons (``:material/eco:``, bundled with Streamlit) or plain text. Arrows and math signs are in every font."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: pictographs, dingbats, misc symbols, emoji presentation selector and the media-control symbols (⏹ ⏳ …)
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\u23E9-\u23FA\u231A\u231B\uFE0F]")


def test_no_emoji_in_the_app_pages_views_or_messages():
    files = [ROOT / "app.py", *ROOT.glob("pages/*.py"), *ROOT.glob("sprout_core/**/*.py")]
    found = [f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}" for p in files
             for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if EMOJI.search(line)]
    assert not found, "\n".join(found)


def test_the_page_icons_are_material_icons():
    text = (ROOT / "app.py").read_text(encoding="utf-8")
    icons = re.findall(r'icon="([^"]+)"', text)
    assert len(icons) >= 7 and all(i.startswith(":material/") for i in icons), icons
