"""The one cache helper (issue 21.4): a thread-safe keyed memo with an LRU bound, used by the readers."""
from __future__ import annotations

import threading

import pytest

from sprout_core import cache, grid, profiles, refdata, workload
from sprout_core.cache import KeyedCache


def test_get_makes_once_and_lru_drops_the_oldest():
    c = KeyedCache("test", maxsize=2)
    calls = []
    assert c.get("a", lambda: calls.append("a") or 1) == 1
    assert c.get("a", lambda: calls.append("a2") or 2) == 1       # cached: not made again
    c.get("b", lambda: 2)
    c.get("a", lambda: 0)                                           # a is now the most recent
    c.get("c", lambda: 3)                                           # drops b, the least recently used
    assert "a" in c and "c" in c and "b" not in c and len(c) == 2 and calls == ["a"]
    c.clear()
    assert len(c) == 0
    with pytest.raises(ValueError):
        KeyedCache("bad", maxsize=0)


def test_threads_share_one_value():
    c = KeyedCache("threads")
    barrier = threading.Barrier(8)
    out = []

    def work():
        barrier.wait()
        out.append(c.get("k", lambda: object()))

    ts = [threading.Thread(target=work) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert len(out) == 8 and all(o is out[0] for o in out)   # whoever made it first, everyone gets that one


def test_the_readers_use_it_and_clear_all_empties_them():
    tr = grid.load_trace("US-TEX-ERCO", 2023)
    assert grid.load_trace("US-TEX-ERCO", 2023) is tr
    prof = profiles.load_reference()
    assert profiles.load_reference() is prof
    for c in (grid._CACHE, refdata._CACHE, profiles._REF_CACHE, workload._CACHE):
        assert isinstance(c, KeyedCache)
    assert len(grid._CACHE) >= 1 and len(profiles._REF_CACHE) >= 1
    cache.clear_all()
    assert len(grid._CACHE) == 0 and len(profiles._REF_CACHE) == 0
    assert grid.load_trace("US-TEX-ERCO", 2023) is not tr       # read again after clearing
