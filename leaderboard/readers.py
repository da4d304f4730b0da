"""One dedicated autocommit connection for the reads of the event loop's fast paths.

``leaderboard.revision.RevisionReader`` (the board revision, cached pages) and
``leaderboard.users.sessions.SessionReader`` (who a web session signs in, signed-in pages) read one
indexed row per request without a Session: no ORM, no pool checkout, no thread hop. A failed read
closes the connection (the next read opens a new one) and is raised; callers then take the ordinary
path, and ``healthy()`` keeps the fast path out of the way for a moment.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

T = TypeVar("T")


class DedicatedReader:
    TIMEOUT_MS = 2000  # PostgreSQL's statement timeout: it runs on the event loop, never wait long

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.failed_at = -1e9

    def _query(self, run: Callable[[Connection], T]) -> T:
        """``run`` on the dedicated connection (opened on first use), one caller at a time."""
        with self._lock:
            try:
                if self._conn is None:
                    conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SET statement_timeout = {self.TIMEOUT_MS}")
                    self._conn = conn
                return run(self._conn)
            except Exception:
                self.failed_at = time.monotonic()
                self._close()
                raise

    def healthy(self, backoff_s: float = 1.0) -> bool:
        """False for ``backoff_s`` after a failed read (the fast path then stays out of the way)."""
        return time.monotonic() - self.failed_at > backoff_s

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing left to release
                conn.close()
