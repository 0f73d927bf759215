"""Class mode keeps visitors apart (issue 20.1): a visitor's uploads are theirs alone, shared data is
read-only for them, the operator keeps every power and can clear the class's uploads, and messages shown
to visitors never name server paths."""
from __future__ import annotations

import pytest

from sprout_core import access, cli, grid, paths
from sprout_core.errors import InputError, NotAllowedError, redact_paths
from tests.test_grid_user import export, two_col

pytestmark = pytest.mark.usefixtures("fresh_clone")  # only the shipped traces and the user's own

A, B = access.new_visitor_id(), access.new_visitor_id()


def _keys(visitor) -> set:
    return {(i.zone, i.year, i.origin) for i in grid.list_traces(visitor=visitor)[0] if i.origin != "shipped"}


def test_a_visitors_upload_is_theirs_alone():
    info = grid.add_user_trace(two_col(), "lab.csv", zone="MY-LAB", year=2023, zone_name="A's lab", visitor=A)
    assert info.origin == "user" and access.visitor_namespace(A) in str(info.path)
    assert not info.path.is_relative_to(paths.user_grid_dir(create=False))
    assert _keys(A) == {("MY-LAB", 2023, "user")}
    assert _keys(B) == set() and _keys(None) == set()          # neither another visitor nor the operator's view
    assert [i.zone for i in grid.user_traces(visitor=A)] == ["MY-LAB"] and grid.user_traces(visitor=B) == []
    with pytest.raises(grid.MissingDataError):
        grid.load_trace("MY-LAB", 2023, visitor=B)
    assert grid.load_trace("MY-LAB", 2023, visitor=A).ci[0] == 100.0
    assert grid.remove_user_trace("MY-LAB", 2023, visitor=B) is False  # B cannot remove it
    assert _keys(A) == {("MY-LAB", 2023, "user")}
    # B may use the same zone id for their own data: both coexist, each sees theirs
    grid.add_user_trace(two_col(value=lambda i: 300.0), "b.csv", zone="MY-LAB", year=2023, visitor=B)
    assert grid.load_trace("MY-LAB", 2023, visitor=A).ci[0] == 100.0
    assert grid.load_trace("MY-LAB", 2023, visitor=B).ci[0] == 300.0
    assert grid.sources_signature(visitor=A) != grid.sources_signature(visitor=B)  # UI caches keyed per view
    assert grid.remove_user_trace("MY-LAB", 2023, visitor=A) is True
    assert _keys(A) == set() and _keys(B) == {("MY-LAB", 2023, "user")}


def test_shared_data_is_read_only_for_visitors():
    before = grid.load_trace("DE", 2023, visitor=None).mean()
    with pytest.raises(NotAllowedError, match="shared data"):
        grid.add_user_trace(export(zone="DE", year=2023), "de.csv", replace=True, visitor=A)
    assert grid.load_trace("DE", 2023, visitor=A).mean() == before
    assert grid.load_trace("DE", 2023, visitor=None).origin == "shipped"
    # the operator's own upload is shared data too: visitors see it as the operator's and cannot replace it
    grid.add_user_trace(two_col(), "op.csv", zone="OP-LAB", year=2023, visitor=None)
    assert ("OP-LAB", 2023, "operator") in _keys(A) and ("OP-LAB", 2023, "user") in _keys(None)
    with pytest.raises(NotAllowedError, match="operator"):
        grid.add_user_trace(two_col(value=lambda i: 999.0), "x.csv", zone="OP-LAB", year=2023, replace=True, visitor=A)
    assert grid.remove_user_trace("OP-LAB", 2023, visitor=A) is False
    assert grid.load_trace("OP-LAB", 2023, visitor=B).ci[0] == 100.0
    # a visitor may replace their own upload, with Replace ticked
    grid.add_user_trace(two_col(), "mine.csv", zone="MINE", year=2023, visitor=A)
    with pytest.raises(InputError, match="already exists"):
        grid.add_user_trace(two_col(value=lambda i: 7.0), "mine.csv", zone="MINE", year=2023, visitor=A)
    grid.add_user_trace(two_col(value=lambda i: 7.0), "mine.csv", zone="MINE", year=2023, replace=True, visitor=A)
    assert grid.load_trace("MINE", 2023, visitor=A).ci[0] == 7.0


def test_the_operator_keeps_todays_powers():
    info = grid.add_user_trace(export(zone="DE", year=2023), "de.csv", replace=True, visitor=None)
    assert info.origin == "user" and grid.load_trace("DE", 2023, visitor=None).origin == "user"
    assert grid.remove_user_trace("DE", 2023, visitor=access.LOCAL_VISITOR) is True
    assert grid.load_trace("DE", 2023, visitor=None).origin == "shipped"


def test_a_visitor_keeps_a_bounded_number_of_traces(monkeypatch):
    monkeypatch.setattr(grid, "VISITOR_MAX_TRACES", 2)
    for z in ("V-1", "V-2"):
        grid.add_user_trace(two_col(), "v.csv", zone=z, year=2023, visitor=A)
    with pytest.raises(NotAllowedError, match="remove one first"):
        grid.add_user_trace(two_col(), "v.csv", zone="V-3", year=2023, visitor=A)
    grid.add_user_trace(two_col(), "v.csv", zone="V-3", year=2023, visitor=None)  # the operator: no limit


def test_operator_clears_the_class(capsys):
    grid.add_user_trace(two_col(), "a.csv", zone="A-LAB", year=2023, visitor=A)
    grid.add_user_trace(two_col(), "b.csv", zone="B-LAB", year=2023, visitor=B)
    grid.add_user_trace(two_col(), "op.csv", zone="OP-LAB", year=2023, visitor=None)
    from sprout_core.evaluate.prompts import PromptItem, save_upload

    up = save_upload("class.jsonl", [PromptItem("p1", "Why?", "qa", None)],
                     grid.visitors_dir() / access.visitor_namespace(A) / "uploads")
    assert up.exists() and not up.is_relative_to(paths.state_dir() / "uploads")
    assert cli.main(["grid", "clear", "--visitors"]) == 0
    assert "removed 2 trace(s) and the uploaded prompt files of 2 class-mode visitor(s)" in capsys.readouterr().out
    assert not up.exists()
    assert _keys(A) == {("OP-LAB", 2023, "operator")} and _keys(B) == {("OP-LAB", 2023, "operator")}
    assert _keys(None) == {("OP-LAB", 2023, "user")}  # the operator's own traces stay
    assert cli.main(["grid", "clear", "--visitors"]) == 0


def test_the_resolver_gives_the_view(monkeypatch):
    monkeypatch.setattr(grid, "_visitor_resolver", lambda: A)
    grid.add_user_trace(two_col(), "a.csv", zone="A-LAB", year=2023)  # no visitor given: the current one
    assert ("A-LAB", 2023, "user") in _keys(A) and ("A-LAB", 2023) not in {k[:2] for k in _keys(None)}
    assert grid.load_trace("A-LAB", 2023).origin == "user"

    def broken():
        raise RuntimeError("no session")

    monkeypatch.setattr(grid, "_visitor_resolver", broken)
    assert grid.current_visitor() is None  # fail-safe: the shared view, never another visitor's


def test_visitor_messages_name_no_server_paths():
    state = str(paths.state_dir())
    msg = (f"The database {state}/sprout.db is not a readable SQLite database (corrupt: file is not a database). "
           f"Move it aside (mv {state}/sprout.db {state}/sprout.db.bad); see http://127.0.0.1:8080/v1, 20/30 done.")
    out = redact_paths(msg, [state])
    assert state not in out and "/sprout.db" in out and "<server folder>" in out
    assert "http://127.0.0.1:8080/v1" in out and "20/30 done" in out
    assert "/root" not in redact_paths("cannot read /root/x/y.csv (denied)")


@pytest.mark.parametrize("shared", [True, False])
def test_the_corrupt_database_message_names_no_server_path_to_visitors(tmp_path, monkeypatch, shared):
    """History with a corrupt database: visitors read what happened and what to do, without the path; the
    operator (local) still sees the path."""
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    from sprout_core import store

    if shared:
        monkeypatch.setenv("SPROUT_SHARED", "1")
    db = store.default_path()
    db.write_bytes(b"garbage" * 200)
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "history.py"), default_timeout=60)
    at.run()
    assert not at.exception
    msg = " ".join(str(e.value) for e in at.error)
    assert "not a readable SQLite database" in msg
    state = str(paths.state_dir())
    assert (state in msg) != shared
    if shared:
        assert "server folder\\>/sprout.sqlite" in msg  # shown as the literal text <server folder>/sprout.sqlite
