"""Class-mode visitor identity (issue 20.1): ``ui.visitor_id`` is stable across reruns and reloads, differs
between browsers, and never lets an address name a path."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from sprout_core import access
from sprout_core.errors import NotAllowedError


def _script():
    import streamlit as st

    from sprout_core import ui

    st.session_state["seen"] = ui.visitor_id()


def _run(at: AppTest) -> str:
    at.run(timeout=30)
    assert not at.exception, at.exception
    return at.session_state["seen"]


def test_local_mode_is_the_operator(monkeypatch):
    monkeypatch.delenv("SPROUT_SHARED", raising=False)
    at = AppTest.from_function(_script)
    assert _run(at) == access.LOCAL_VISITOR
    assert "visitor" not in at.query_params  # the local address stays as it was


def test_class_mode_id_stable_across_reruns_and_a_reload(monkeypatch):
    monkeypatch.setenv("SPROUT_SHARED", "1")
    at = AppTest.from_function(_script)
    first = _run(at)
    assert access.valid_visitor_id(first) and first != access.LOCAL_VISITOR
    assert at.query_params["visitor"] in (first, [first])  # written into the address
    assert _run(at) == first                       # a rerun: same
    # a reload: a new session (empty session state) opened at the same address
    reload = AppTest.from_function(_script)
    reload.query_params["visitor"] = first
    assert _run(reload) == first
    # another browser: no parameter, another id
    other = AppTest.from_function(_script)
    assert _run(other) != first


@pytest.mark.parametrize("bad", ["../../etc", "x", "a" * 65, "ab/cd" * 6, "é" * 30])
def test_class_mode_malformed_address_gets_a_fresh_id(monkeypatch, bad):
    monkeypatch.setenv("SPROUT_SHARED", "1")
    at = AppTest.from_function(_script)
    at.query_params["visitor"] = bad
    vid = _run(at)
    assert vid != bad and access.valid_visitor_id(vid)
    assert at.query_params["visitor"] in (vid, [vid])


def test_namespace_is_a_hash_never_a_path():
    vid = access.new_visitor_id()
    ns = access.visitor_namespace(vid)
    assert vid not in ns and ns.isalnum() and len(ns) == 24
    assert ns == access.visitor_namespace(vid) and ns != access.visitor_namespace(access.new_visitor_id())
    for bad in ("../x", "", None, access.LOCAL_VISITOR):
        with pytest.raises(NotAllowedError):
            access.visitor_namespace(bad)
    assert access.is_operator(None) and access.is_operator(access.LOCAL_VISITOR) and not access.is_operator(vid)
