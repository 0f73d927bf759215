"""Settings in one place (issue 21.4): every SPROUT_* variable is in ``settings.VARIABLES`` and docs/app.md's
table, no module reads one from ``os.environ`` by its literal name except settings.py, and the properties
parse as the readers they replaced did."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sprout_core import settings
from sprout_core.errors import InputError
from sprout_core.settings import VARIABLES, Settings

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"\bSPROUT_[A-Z][A-Z0-9_]*[A-Z0-9]\b")
#: prefixes and words that look like a variable but are not one
NOT_VARIABLES = {"SPROUT_SERVER", "SPROUT_STA"}
DIRECT_READ = re.compile(r"""(os\.environ\.get\(|os\.environ\[|os\.getenv\()\s*["']SPROUT_""")


def _sources():
    yield from (ROOT / "sprout_core").rglob("*.py")
    yield from (ROOT / "scripts").glob("*.sh")


def test_every_variable_is_listed_and_documented():
    listed = {v.name for v in VARIABLES}
    assert len(listed) == len(VARIABLES)
    used = set()
    for p in _sources():
        used |= set(NAME.findall(p.read_text(encoding="utf-8")))
    used -= NOT_VARIABLES
    assert not used - listed, f"SPROUT_* variables read but not in settings.VARIABLES: {sorted(used - listed)}"
    doc = (ROOT / "docs" / "app.md").read_text(encoding="utf-8")
    table = doc[doc.index("## Settings (environment variables)"):]
    missing = [v.name for v in VARIABLES if f"| `{v.name}` |" not in table]
    assert not missing, f"docs/app.md's settings table lacks {missing}"


def test_no_direct_reads_outside_settings():
    bad = []
    for p in (ROOT / "sprout_core").rglob("*.py"):
        if p.name == "settings.py":
            continue
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if DIRECT_READ.search(line):
                bad.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "read these through sprout_core.settings.Settings:\n" + "\n".join(bad)


def test_properties_parse_like_the_old_readers(tmp_path):
    s = Settings.from_env({})
    assert (s.zone, s.model, s.backend, s.torch_threads, s.data_dir, s.state_dir, s.db_lock_wait_s) == (
        None, None, None, None, None, None, None)
    assert not s.shared and not s.allow_pickle and s.models == () and s.model_root is None and not s.debug
    assert s.gateway_pools == 8 and s.judge_model == "" and s.cache_dir is None
    s = Settings.from_env({
        "SPROUT_ZONE": "  DE ", "SPROUT_BACKEND": " Server ", "SPROUT_TORCH_THREADS": "3", "SPROUT_SHARED": "Yes",
        "SPROUT_ALLOW_PICKLE": "0", "SPROUT_DB_LOCK_WAIT_S": "-4", "SPROUT_MODELS": f" {tmp_path}/a {os.pathsep}{os.pathsep}~/b",
        "SPROUT_STATE_DIR": "~/st", "XDG_CACHE_HOME": str(tmp_path), "SPROUT_DEBUG": "1", "HOME_NOT_MINE": "x",
    })
    assert (s.zone, s.backend, s.torch_threads, s.shared, s.allow_pickle, s.db_lock_wait_s) == ("DE", "server", 3, True,
                                                                                               False, 0.0)
    assert s.models == (tmp_path / "a", Path("~/b").expanduser()) and s.state_dir == Path("~/st").expanduser()
    assert s.cache_dir == tmp_path / "sprout" and s.debug and "HOME_NOT_MINE" not in s.environ
    assert Settings.from_env({"SPROUT_DB_LOCK_WAIT_S": "soon"}).db_lock_wait_s is None   # a bad value: the default
    with pytest.raises(InputError, match="SPROUT_TORCH_THREADS"):
        _ = Settings.from_env({"SPROUT_TORCH_THREADS": "zero"}).torch_threads


def test_a_read_sees_the_current_environment(monkeypatch):
    monkeypatch.setenv("SPROUT_ZONE", "NO")
    assert settings.Settings.from_env().zone == "NO"
    from sprout_core import defaults

    assert defaults.default_zone() == "NO"
    monkeypatch.delenv("SPROUT_ZONE")
    assert defaults.default_zone() == defaults.DEFAULT_ZONE
