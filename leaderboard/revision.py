"""The board revision: a counter bumped in the same transaction as any change to ranked data.

Read caches (``leaderboard.cache``) key their entries on it, so every process sees a change as
soon as the transaction that made it commits.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from leaderboard.db import Base
from leaderboard.readers import DedicatedReader


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


class RevisionReader(DedicatedReader):
    """Reads the revision on one dedicated autocommit connection, without a Session, for the event
    loop's fast path of cached pages (``web.pages``; ``leaderboard.readers``)."""

    SQL = "SELECT revision FROM board_revision WHERE id = 1"

    def read(self) -> int:
        value = self._query(lambda conn: conn.exec_driver_sql(self.SQL).scalar())
        return 0 if value is None else int(value)
