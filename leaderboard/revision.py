"""The board revision: a counter bumped in the same transaction as any change to ranked data.

Read caches (``leaderboard.cache``) key their entries on it, so every process sees a change as
soon as the transaction that made it commits.
"""

from __future__ import annotations

import contextlib
import threading
import time

from sqlalchemy import BigInteger, Connection, Engine, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from leaderboard.db import Base


class BoardRevision(Base):
    """A counter bumped whenever ranked data changes; read caches key on it."""

    __tablename__ = "board_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


_ROW_ID = 1


def current_revision(session: Session) -> int:
    value = session.scalar(select(BoardRevision.revision).where(BoardRevision.id == _ROW_ID))
    return 0 if value is None else int(value)


def bump_revision(session: Session) -> None:
    result = session.execute(
        update(BoardRevision).where(BoardRevision.id == _ROW_ID).values(revision=BoardRevision.revision + 1)
    )
    if getattr(result, "rowcount", 0) == 0:
        session.add(BoardRevision(id=_ROW_ID, revision=1))
    session.flush()


class RevisionReader:
    """Reads the revision on one dedicated autocommit connection, without a Session.

    For the event loop's fast path of cached pages (``web.pages``): one indexed read of one row,
    no ORM, no pool checkout, no thread hop. A failed read closes the connection (the next read
    opens a new one) and is raised; callers then take the ordinary path.
    """

    SQL = "SELECT revision FROM board_revision WHERE id = 1"
    TIMEOUT_MS = 2000

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self.failed_at = -1e9

    def read(self) -> int:
        with self._lock:
            try:
                if self._conn is None:
                    conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                    if conn.dialect.name == "postgresql":  # it runs on the event loop: never wait long
                        conn.exec_driver_sql(f"SET statement_timeout = {self.TIMEOUT_MS}")
                    self._conn = conn
                value = self._conn.exec_driver_sql(self.SQL).scalar()
            except Exception:
                self.failed_at = time.monotonic()
                self._close()
                raise
        return 0 if value is None else int(value)

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
