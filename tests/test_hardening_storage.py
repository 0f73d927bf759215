"""Storage faults are not bugs in Sprout (issue 20.6): a read-only folder, a full disk, a permission error or
a held lock give a clear message naming the folder and what to do, exit 2, and the state as it was; two
processes adding the same zone-year serialise on a filelock lock and the second is told what happened."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import filelock
import pytest

from sprout_core import cli, grid, storage
from sprout_core.errors import StorageError
from sprout_core.paths import user_grid_dir
from tests.test_grid_user import two_col

pytestmark = pytest.mark.usefixtures("fresh_clone")
ROOT = Path(__file__).resolve().parents[1]


def _state() -> dict:
    folder = user_grid_dir(create=False)
    if not folder.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.name != ".lock"}


def _fail_on(monkeypatch, err: int, when: str = "write"):
    """Make the next file write (or rename, or unlink) fail with ``err`` (as root, chmod cannot)."""
    real_replace, real_open = os.replace, open

    def bad_replace(a, b):
        if when == "rename":
            raise OSError(err, os.strerror(err), str(b))
        return real_replace(a, b)

    def bad_open(file, mode="r", *a, **k):
        if when == "write" and "w" in mode and str(file).endswith(".tmp"):
            raise OSError(err, os.strerror(err), str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(storage.os, "replace", bad_replace)
    monkeypatch.setattr("builtins.open", bad_open)


@pytest.mark.parametrize("err, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
                                        (errno.ENOSPC, "disk is full"), (errno.EPERM, "not permitted")])
def test_grid_add_on_a_refusing_folder(monkeypatch, capsys, tmp_path, err, words):
    grid.add_user_trace(two_col(), "old.csv", zone="MY-LAB", year=2023)  # something stored already
    before = _state()
    f = tmp_path / "new.csv"
    f.write_bytes(two_col(value=lambda i: 5.0))
    with pytest.MonkeyPatch.context() as mp:
        _fail_on(mp, err)
        assert cli.main(["grid", "add", str(f), "--zone", "MY-LAB", "--year", "2023", "--replace"]) == 2
    msg = capsys.readouterr().err
    assert words in msg and str(user_grid_dir(create=False)) in msg and "Nothing was changed" in msg
    assert "bug in Sprout" not in msg and "Traceback" not in msg
    assert _state() == before and grid.load_trace("MY-LAB", 2023).ci[0] == 100.0
    assert not list(user_grid_dir(create=False).glob(".*.tmp"))


def test_full_disk_on_the_second_file_rolls_the_first_back(monkeypatch):
    grid.add_user_trace(two_col(), "old.csv", zone="MY-LAB", year=2023, zone_name="Old")
    before = _state()
    real_replace, calls = os.replace, []

    def second_fails(a, b):
        calls.append(b)
        if str(b).endswith(".json") and len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(b))
        return real_replace(a, b)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(StorageError, match="disk is full"):
        mp.setattr(storage.os, "replace", second_fails)
        grid.add_user_trace(two_col(value=lambda i: 9.0), "new.csv", zone="MY-LAB", year=2023, replace=True)
    assert _state() == before  # the CSV renamed first was put back
    assert json.loads((user_grid_dir() / "MY-LAB_2023_hourly.json").read_text())["zone_name"] == "Old"


@pytest.mark.parametrize("err, words", [(errno.EROFS, "read-only"), (errno.EACCES, "permission denied")])
def test_grid_remove_on_a_refusing_folder(monkeypatch, capsys, err, words):
    grid.add_user_trace(two_col(), "old.csv", zone="MY-LAB", year=2023)
    before = _state()
    with pytest.MonkeyPatch.context() as mp:
        _fail_on(mp, err, when="rename")
        assert cli.main(["grid", "remove", "MY-LAB", "2023"]) == 2
    msg = capsys.readouterr().err
    assert words in msg and "remove the MY-LAB 2023 trace" in msg and "bug in Sprout" not in msg
    assert _state() == before


def test_a_state_folder_that_cannot_be_created(monkeypatch, capsys, tmp_path):
    f = tmp_path / "new.csv"
    f.write_bytes(two_col())
    real_mkdir = Path.mkdir

    def no_mkdir(self, *a, **k):
        if self.name == "grid":
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", no_mkdir)
    assert cli.main(["grid", "add", str(f), "--zone", "MY-LAB", "--year", "2023"]) == 2
    msg = capsys.readouterr().err
    assert "read-only" in msg and "SPROUT_STATE_DIR" in msg and "bug in Sprout" not in msg


def test_a_lock_held_too_long(monkeypatch, capsys, tmp_path):
    f = tmp_path / "new.csv"
    f.write_bytes(two_col())
    folder = user_grid_dir(create=True)
    with filelock.FileLock(str(folder / ".lock")):
        code = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from sprout_core import cli, storage
            storage.locked.__defaults__ = (0.3,)
            sys.exit(cli.main(["grid", "add", {str(f)!r}, "--zone", "MY-LAB", "--year", "2023"]))
            """)], cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert code.returncode == 2, code.stderr
    assert "another Sprout process has held its lock" in code.stderr and str(folder) in code.stderr
    assert _state() == {}


def test_two_processes_adding_one_zone_year(tmp_path):
    """Both start at once (a barrier file); exactly one copy is stored, the other process is told."""
    files = []
    for k, v in enumerate((11.0, 22.0)):
        f = tmp_path / f"up{k}.csv"
        f.write_bytes(two_col(value=lambda i, v=v: v))
        files.append(f)
    go = tmp_path / "go"
    script = textwrap.dedent("""
        import os, sys, time
        from sprout_core import cli, grid
        real = grid._all_sources
        def slow(*a, **k):  # widen the window between the first check and the write
            out = real(*a, **k)
            time.sleep(0.5)
            return out
        grid._all_sources = slow
        while not os.path.exists(sys.argv[2]):
            time.sleep(0.01)
        sys.exit(cli.main(["grid", "add", sys.argv[1], "--zone", "RACE", "--year", "2023"]))
        """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(f), str(go)], cwd=ROOT, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for f in files]
    go.write_text("go")
    outs = [(p.wait(timeout=180), *p.communicate()) for p in procs]
    codes = sorted(o[0] for o in outs)
    assert codes == [0, 2], outs
    loser = next(o for o in outs if o[0] == 2)
    assert "was added by another upload while yours was being checked" in loser[2], loser
    winner = files[[o[0] for o in outs].index(0)]
    assert grid.load_trace("RACE", 2023).ci[0] == (11.0 if winner.name == "up0.csv" else 22.0)
    assert len(list(user_grid_dir().glob("RACE_2023_hourly.*"))) == 2  # one CSV and its metadata


def test_no_fcntl_left():
    hits = [p for p in (ROOT / "sprout_core").rglob("*.py") if "import fcntl" in p.read_text(encoding="utf-8")]
    assert hits == []
