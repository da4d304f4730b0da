"""The board revision: a counter bumped in the same transaction as any change to ranked data.

Read caches (``leaderboard.cache``) key their entries on it, so every process sees a change as
soon as the transaction that made it commits.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from leaderboard.entries.models import BoardRevision

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
