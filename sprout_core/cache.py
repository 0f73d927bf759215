"""One in-process cache helper: :class:`KeyedCache`, a thread-safe memo with an optional LRU bound.

It replaces the hand-rolled ``_CACHE`` dicts and lists (grid traces, reference tables, the reference
profile, workloads, prediction models, reference quality estimates). A value is made *outside* the lock
(a slow read never blocks other keys; two threads asking for a new key at once may both make it, and the
first stored wins — as before). Keys are hashable tuples that include whatever makes a value stale
(a file's path, mtime and size; a profile object's identity). Pages keep Streamlit's own caches
(``st.cache_resource``) for per-session objects and never wrap a function that is already cached here.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

#: every cache made in this process (for :func:`clear_all`)
_ALL: list["KeyedCache"] = []


class KeyedCache(Generic[V]):
    """``get(key, make)``: the value stored under ``key``, else ``make()`` stored and returned.

    ``maxsize``: keep at most this many entries, dropping the least recently used (``None`` = unbounded).
    """

    def __init__(self, name: str, maxsize: int | None = None) -> None:
        if maxsize is not None and maxsize < 1:
            raise ValueError(f"cache size must be ≥ 1 or None, got {maxsize}")
        self.name = name
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        _ALL.append(self)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
        val = make()
        with self._lock:
            if key in self._data:          # another thread stored it meanwhile: keep one value
                return self._data[key]
            self._data[key] = val
            if self.maxsize is not None:
                while len(self._data) > self.maxsize:
                    self._data.popitem(last=False)
        return val

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def __repr__(self) -> str:
        return f"KeyedCache({self.name!r}, {len(self)} entries, maxsize={self.maxsize})"


def clear_all() -> None:
    """Empty every cache of this process (tests; after replacing data files)."""
    for c in list(_ALL):
        c.clear()
