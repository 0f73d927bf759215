"""One default zone and year for the whole app and CLI (issue 19 item 6): sprout_core.defaults, used everywhere."""
import re
from pathlib import Path

import pytest

from sprout_core import defaults, metered

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_zone_env(monkeypatch):
    monkeypatch.delenv("SPROUT_ZONE", raising=False)


def test_the_default_is_one_shipped_zone_year(no_zone_env):
    from sprout_core import grid

    assert (defaults.DEFAULT_ZONE, defaults.DEFAULT_YEAR) == ("US-TEX-ERCO", 2023)
    assert defaults.DEFAULT_ZONE in grid.zones_by_year()[defaults.DEFAULT_YEAR]
    assert defaults.default_zone() == "US-TEX-ERCO"
    assert defaults.default_year([2024, 2023]) == 2023 and defaults.default_year([2024, 2022]) == 2024
    assert defaults.default_year([]) is None


def test_generate_prices_at_the_default_zone_year(no_zone_env):
    settings, warns = metered.default_settings()
    assert not warns
    assert (settings.intensity.zone, settings.intensity.year) == (defaults.DEFAULT_ZONE, defaults.DEFAULT_YEAR)


def test_sprout_zone_moves_the_zone_and_keeps_the_year(monkeypatch):
    monkeypatch.setenv("SPROUT_ZONE", "DE")
    settings, _ = metered.default_settings()
    assert (settings.intensity.zone, settings.intensity.year) == ("DE", 2023)


def test_every_command_defaults_to_the_same_zone_year(no_zone_env):
    import argparse

    from sprout_core.commands import optimize, simulate

    sub = argparse.ArgumentParser().add_subparsers()
    optimize.register(sub)
    simulate.register(sub)
    for name in ("optimize", "simulate"):
        args = sub.choices[name].parse_args([])
        assert (args.zone, args.year) == (defaults.DEFAULT_ZONE, defaults.DEFAULT_YEAR), name


def test_no_page_or_command_spells_its_own_default_zone_or_year():
    """A literal zone as a widget's index or an argument's default is a second default; use sprout_core.defaults."""
    own = re.compile(r'(index=\w+\.index\("[A-Z]{2}[A-Z-]*"\)|default="[A-Z]{2}(-[A-Z]+)*"|default=20\d\d\b'
                     r'|default_zone: str = "[A-Z]|zone: str = "[A-Z])')
    files = [*ROOT.glob("pages/*.py"), *ROOT.glob("sprout_core/commands/*.py"), ROOT / "sprout_core/ui.py",
             ROOT / "sprout_core/metered.py", *ROOT.glob("sprout_core/gateway/*.py")]
    found = [f"{p.name}: {m.group(0)}" for p in files for m in own.finditer(p.read_text())]
    assert not found, found
