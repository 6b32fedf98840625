"""A least-recently-used map bounded in bytes: rendered PNGs and preprocessed inputs with their poses.

Entries vary from a few hundred bytes to megabytes (a large tweak grid), so a bound on the entry
count would not bound memory; each value's size is measured when it is put. A value larger than
the whole bound is not kept. Used only from the event loop, so it needs no lock. Keys are content
hashes plus parameters, so an entry never goes stale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):  # noqa: UP046 (the project supports Python 3.11)
    def __init__(self, max_bytes: int, size: Callable[[V], int]) -> None:
        self.max_bytes, self.size = max_bytes, size
        self.bytes = 0
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()

    def get(self, key: K) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: K, value: V) -> None:
        nbytes = self.size(value)
        if nbytes > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._items[key] = (value, nbytes)
        self.bytes += nbytes
        while self.bytes > self.max_bytes:
            _, (_, evicted) = self._items.popitem(last=False)
            self.bytes -= evicted

    def __len__(self) -> int:
        return len(self._items)
