"""The ranks of a track's entries, recomputed from their stored verified figures."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from leaderboard.entries import repository
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.entries.ranking import Rankable, rank


def recompute_ranks(session: Session, track_id: int) -> None:
    """Recompute both ranks of every ranked entry of a track (verified apart from reported)."""
    entries = repository.ranking_inputs(session, track_id)
    items = [
        Rankable(
            entry_id=e.id,
            section="verified" if e.status == EntryStatus.verified else f"reported:{e.rules_version}",
            hours=e.hours,
            cost_usd=e.cost_usd,
            core_mean=e.core_mean,
        )
        for e in entries
        if e.status in repository.RANKED
    ]
    by_time = rank(items, "time")
    by_cost = rank(items, "cost")
    changes = []
    for e in entries:
        rt, rc = by_time.get(e.id), by_cost.get(e.id)
        if (rt, rc) != (e.rank_time, e.rank_cost):
            changes.append({"id": e.id, "rank_time": rt, "rank_cost": rc})
    if changes:
        session.execute(update(Entry), changes)
    session.flush()
