"""A small read cache for board pages, keyed on the board revision (see ``leaderboard.revision``).

The cache object lives in the sessionmaker's ``info`` (one per app), never in a module global.
A page computed at revision r is served until the revision moves or ``ttl_seconds`` pass.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from leaderboard.revision import current_revision

T = TypeVar("T")
CACHE_INFO_KEY = "read_cache"


class ReadCache:
    def __init__(self, *, max_items: int = 512, ttl_seconds: float = 5.0) -> None:
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self._items: OrderedDict[Hashable, tuple[int, float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, revision: int, compute: Callable[[], T]) -> T:
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is not None and found[0] == revision and now - found[1] <= self.ttl_seconds:
                self._items.move_to_end(key)
                self.hits += 1
                return found[2]  # type: ignore[no-any-return]
            self.misses += 1
        value = compute()
        with self._lock:
            self._items[key] = (revision, now, value)
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def cached(session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` through the session's read cache (when it has one), at the current revision."""
    cache = session.info.get(CACHE_INFO_KEY)
    if not isinstance(cache, ReadCache) or session.in_nested_transaction() or session.new or session.dirty:
        return compute()
    return cache.get_or_compute(key, current_revision(session), compute)
