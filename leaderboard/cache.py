"""A small read cache for board pages, keyed on the board revision (see ``leaderboard.revision``).

The cache object lives in the sessionmaker's ``info`` (one per app), never in a module global.
A value computed at revision r is served while the board is at revision r:

- **new revision** (a write committed): the first caller computes the value; callers that ask for
  the same key at the same revision meanwhile wait for that one computation instead of each
  running it (no thundering herd: 50 connections missing at once used to run the page's queries
  50 times over, which was the tail of the benchmark);
- **same revision, older than ``ttl_seconds``** (a safety net only: every ranked change bumps the
  revision): one caller recomputes, and the others keep getting the value of this same revision
  until it is done, so the refresh stalls one request, not all of them.

``ttl_seconds=0`` turns the cache off (every call computes).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from leaderboard.revision import current_revision

T = TypeVar("T")
CACHE_INFO_KEY = "read_cache"


@dataclass
class _Flight:
    """One computation in progress: its revision, and the value once ``done`` is set."""

    revision: int
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    value: Any = None


class ReadCache:
    def __init__(self, *, max_items: int = 512, ttl_seconds: float = 5.0) -> None:
        self.max_items = max_items
        self.ttl_seconds = ttl_seconds
        self._items: OrderedDict[Hashable, tuple[int, float, Any]] = OrderedDict()
        self._flights: dict[Hashable, _Flight] = {}
        self._refreshing: set[Hashable] = set()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_seconds > 0

    def ttl_for(self, ttl: float | None) -> float:
        """The time to live of a value: the cache's, or a longer one a caller asks for (values whose
        every change moves the revision, such as whole pages, need the safety net less often)."""
        return self.ttl_seconds if ttl is None else max(self.ttl_seconds, ttl)

    def get_or_compute(self, key: Hashable, revision: int, compute: Callable[[], T], ttl: float | None = None) -> T:
        if not self.enabled:
            self.misses += 1
            return compute()
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            flight = self._flights.get(key)
            refreshing = flight is not None and flight.revision == revision
            if found is not None and found[0] == revision and (now - found[1] <= self.ttl_for(ttl) or refreshing):
                # fresh, or being refreshed at this same revision by another caller: serve it
                self._items.move_to_end(key)
                self.hits += 1
                return found[2]  # type: ignore[no-any-return]
            self.misses += 1
            leader = not refreshing
            if flight is None or leader:
                flight = self._flights[key] = _Flight(revision)
        if not leader:
            flight.done.wait()
            if flight.ok:
                return flight.value  # type: ignore[no-any-return]
            return compute()  # the leader failed: its error was raised there; try once here
        try:
            value = compute()
        except BaseException:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()
            raise
        flight.value, flight.ok = value, True
        with self._lock:
            stored = self._items.get(key)
            if stored is None or stored[0] <= revision:  # never replace a newer revision's value
                self._items[key] = (revision, now, value)
                self._items.move_to_end(key)
            if self._flights.get(key) is flight:
                del self._flights[key]
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)
        flight.done.set()
        return value

    def peek(self, key: Hashable, revision: int) -> Any | None:
        """The value a ``get_or_compute`` at ``revision`` would return without computing, else None
        (absent, of another revision, or expired with no refresh under way). Never blocks."""
        if not self.enabled:
            return None
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != revision:
                return None
            if now - found[1] > self.ttl_seconds:
                flight = self._flights.get(key)
                if flight is None or flight.revision != revision:
                    return None
            self._items.move_to_end(key)
            self.hits += 1
            return found[2]

    def peek_stale(self, key: Hashable, revision: int, ttl: float | None = None) -> tuple[Any | None, bool]:
        """The value at ``revision`` whatever its age, and whether the caller should refresh it
        (it is past ``ttl_seconds``, no computation of it is under way, and no other caller was
        told so already: stale-while-revalidate, one refresh per key). ``(None, False)`` when
        absent or of another revision. Never blocks."""
        if not self.enabled:
            return None, False
        now = time.monotonic()
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != revision:
                return None, False
            self.hits += 1
            flight = self._flights.get(key)
            expired = now - found[1] > self.ttl_for(ttl)
            refresh = expired and key not in self._refreshing and (flight is None or flight.revision != revision)
            if refresh:
                self._refreshing.add(key)
            return found[2], refresh

    def refreshed(self, key: Hashable) -> None:
        """The refresh ``peek_stale`` asked for is over (done or failed)."""
        with self._lock:
            self._refreshing.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def cached(session: Session, key: Hashable, compute: Callable[[], T], ttl: float | None = None) -> T:
    """``compute()`` through the session's read cache (when it has one), at the current revision."""
    cache = session.info.get(CACHE_INFO_KEY)
    if not isinstance(cache, ReadCache) or session.in_nested_transaction() or session.new or session.dirty:
        return compute()
    if not cache.enabled:
        return compute()
    return cache.get_or_compute(key, current_revision(session), compute, ttl)


def peek_stale_current(state: Any, key: Hashable, ttl: float | None = None) -> tuple[Any | None, bool]:
    """``ReadCache.peek_stale`` at the board's current revision (see ``peek_current``)."""
    reader = getattr(state, "revision_reader", None)
    cache = getattr(state, "cache", None)
    if reader is None or not isinstance(cache, ReadCache) or not cache.enabled or not reader.healthy():
        return None, False
    try:
        revision = reader.read()
    except SQLAlchemyError:
        return None, False
    return cache.peek_stale(key, revision, ttl)


def peek_current(state: Any, key: Hashable) -> Any | None:
    """The app's cached value for ``key`` at the board's current revision, read without a Session
    or a worker thread (``app.state``'s ``revision_reader`` and ``cache``); None when absent or when
    the revision cannot be read (the caller then takes its ordinary path, which computes or fails
    in the usual way)."""
    reader = getattr(state, "revision_reader", None)
    cache = getattr(state, "cache", None)
    if reader is None or not isinstance(cache, ReadCache) or not cache.enabled or not reader.healthy():
        return None
    try:
        revision = reader.read()
    except SQLAlchemyError:
        return None
    return cache.peek(key, revision)
