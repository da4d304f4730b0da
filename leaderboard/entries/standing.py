"""The ranks of a track's entries, recomputed from their stored verified figures. GPT-2's own run of
2019 is the baseline every record is measured against: shown as row 0, never ranked."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from leaderboard.entries import repository
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.entries.ranking import Rankable, rank

BASELINE_YEAR = 2019  # GPT-2's own run: the reported row every record is measured against


def is_baseline(e: Entry) -> bool:
    """GPT-2's own run of 2019 (reported history): the yardstick, not a competitor."""
    return e.status == EntryStatus.reported and e.record_date.year == BASELINE_YEAR


def recompute_ranks(session: Session, track_id: int) -> bool:
    """Recompute both ranks of every ranked entry of a track (verified apart from reported);
    True when a rank changed."""
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
        if e.status in repository.RANKED and not is_baseline(e)
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
    return bool(changes)
