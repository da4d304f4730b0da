"""Read-side views across entries: the record holder of a track (with its margin over the previous
record and over GPT-2's 2019 run), submissions that duplicate one another, and reported rows whose
published statistics fail this site's test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.cache import cached
from leaderboard.entries.board import entry_public, progression_point
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.entries.repository import RANKED
from leaderboard.entries.schemas import EntryPublic, ProgressionPointPublic, ProgressionPublic
from leaderboard.entries.standing import BASELINE_YEAR
from leaderboard.tracks.repository import by_id as get_track_row_by_id
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.tracks.service import get_track_row


@dataclass(frozen=True)
class Holder:
    """A track's record in one section (verified or reported)."""

    id: int
    title: str
    section: str  # "verified" or "reported"
    rules_version: str
    hours: float
    cost_usd: float | None
    record_date: date
    hardware: str
    contributors: tuple[str, ...]
    previous_id: int | None  # the best earlier entry under the same rules and section (same day: submitted before)
    previous_title: str | None
    previous_value: float | None  # in the track's ranking unit (hours or dollars)


@dataclass(frozen=True)
class Banner:
    ranking: str  # "time" or "cost"
    verified: Holder | None
    reported: Holder | None
    baseline_hours: float | None  # GPT-2 (2019), when this track carries that row
    baseline_cost: float | None


def _hardware(e: Entry) -> str:
    if not e.gpus_per_node:
        return e.hardware_class
    return f"{e.nodes * e.gpus_per_node} × {e.hardware_class}"


def _holder(session: Session, track_id: int, status: EntryStatus, ranking: str) -> Holder | None:
    """The best entry of a section by its rank (rank 1 of each rules version: reported history
    ranks per rules version), read through the board's rank index rather than a sort of every row."""
    rank = Entry.rank_time if ranking == "time" else Entry.rank_cost
    col = Entry.hours if ranking == "time" else Entry.cost_usd
    base = select(Entry).where(Entry.track_id == track_id, Entry.status == status, col.is_not(None))
    firsts = list(session.scalars(base.where(rank == 1)))
    best = min(firsts, key=lambda e: (getattr(e, col.key), e.record_date, e.id), default=None)
    if best is None or best.hours is None:
        return None
    prev = session.scalar(
        base.where(
            Entry.rules_version == best.rules_version,
            (Entry.record_date < best.record_date) | ((Entry.record_date == best.record_date) & (Entry.id < best.id)),
            rank.is_not(None),
        )
        .order_by(rank, Entry.id)
        .limit(1)
    )
    return Holder(
        id=best.id,
        title=best.title,
        section=status.value,
        rules_version=best.rules_version,
        hours=best.hours,
        cost_usd=best.cost_usd,
        record_date=best.record_date,
        hardware=_hardware(best),
        contributors=tuple(best.contributors),
        previous_id=None if prev is None else prev.id,
        previous_title=None if prev is None else prev.title,
        previous_value=None if prev is None else (prev.hours if ranking == "time" else prev.cost_usd),
    )


def record_banner(session: Session, track_id: int, ranking: str) -> Banner:
    """Who holds the record on a track, verified and reported apart (cached per board revision)."""
    return cached(session, ("record-banner", track_id, ranking), lambda: _banner(session, track_id, ranking))


def baseline_row(session: Session, track_id: int) -> Entry | None:
    """GPT-2's own run of 2019 on this track, when the track carries it."""
    return session.scalar(
        select(Entry)
        .where(
            Entry.track_id == track_id,
            Entry.status == EntryStatus.reported,
            Entry.record_date < date(BASELINE_YEAR + 1, 1, 1),
            Entry.record_date >= date(BASELINE_YEAR, 1, 1),
        )
        .order_by(Entry.record_date, Entry.id)
        .limit(1)
    )


def baseline_public(session: Session, track_id: int) -> EntryPublic | None:
    """The baseline as a board row (row 0), cached per board revision."""

    def read() -> EntryPublic | None:
        row = baseline_row(session, track_id)
        track = get_track_row_by_id(session, track_id)
        return None if row is None or track is None else entry_public(row, track)

    return cached(session, ("baseline", track_id), read)


def _banner(session: Session, track_id: int, ranking: str) -> Banner:
    baseline = baseline_row(session, track_id)
    return Banner(
        ranking=ranking,
        verified=_holder(session, track_id, EntryStatus.verified, ranking),
        reported=_holder(session, track_id, EntryStatus.reported, ranking),
        baseline_hours=None if baseline is None else baseline.hours,
        baseline_cost=None if baseline is None else baseline.cost_usd,
    )


def record_holder_id(session: Session, track_id: int) -> int | None:
    """The entry to compare others with: the verified record, else the reported one (by time)."""
    banner = record_banner(session, track_id, "time")
    holder = banner.verified or banner.reported
    return None if holder is None else holder.id


@dataclass(frozen=True)
class Duplicate:
    id: int
    title: str
    earlier: bool  # the other entry came first: this one repeats it


def duplicates_of(session: Session, entry_id: int) -> list[Duplicate]:
    """Other entries of the same track with the same run config and the same claimed result."""
    entry = session.get(Entry, entry_id)
    if entry is None or entry.status == EntryStatus.reported or entry.claimed_hours is None:
        return []
    same = session.scalars(
        select(Entry)
        .where(
            Entry.track_id == entry.track_id,
            Entry.id != entry.id,
            Entry.claimed_hours == entry.claimed_hours,
            Entry.claimed_core == entry.claimed_core,
        )
        .order_by(Entry.id)
        .limit(50)
    )
    return [Duplicate(e.id, e.title, e.id < entry.id) for e in same if e.run_config == entry.run_config]


def records_by_line(
    points: Sequence[ProgressionPointPublic],
    value: Callable[[ProgressionPointPublic], float | None] = lambda p: p.hours,
) -> list[ProgressionPointPublic]:
    """The points that set a record within their own line (section and rules version), by date:
    each is below every earlier point of that line."""
    best: dict[tuple[str, str], float] = {}
    out = []
    for p in sorted(points, key=lambda p: (p.date, p.entry_id)):
        v = value(p)
        if v is None or v <= 0:
            continue
        line = (p.section, p.rules_version)
        if v < best.get(line, float("inf")):
            best[line] = v
            out.append(p)
    return out


def progression_records(session: Session, track_slug: str) -> ProgressionPublic:
    """The progression with ``points`` = the rows that set a record in time or in cost within their
    section and rules version (what the page draws), and ``records`` as in the full progression
    (faster than every earlier point). Reads a few columns of every ranked row, and whole rows only
    for those points: a fraction of the full progression's cost on a big board. Cached."""
    return cached(session, ("progression.records", track_slug), lambda: _progression_records(session, track_slug))


def _progression_records(session: Session, track_slug: str) -> ProgressionPublic:
    track = get_track_row(session, track_slug)
    rows = session.execute(
        select(Entry.id, Entry.record_date, Entry.hours, Entry.cost_usd, Entry.status, Entry.rules_version)
        .where(Entry.track_id == track.id, Entry.status.in_(RANKED), Entry.hours.is_not(None))
        .order_by(Entry.record_date, Entry.id)
    ).all()
    best_overall = float("inf")
    overall: set[int] = set()
    best: dict[tuple[str, str, str], float] = {}
    keep: set[int] = set()
    for entry_id, _, hours, cost, status, rules in rows:
        if hours is not None and hours < best_overall:
            best_overall = hours
            overall.add(entry_id)
            keep.add(entry_id)
        section = "verified" if status == EntryStatus.verified else "reported"
        for unit, v in (("time", hours), ("cost", cost)):
            if v is not None and v > 0 and v < best.get((unit, section, rules), float("inf")):
                best[(unit, section, rules)] = v
                keep.add(entry_id)
    entries = session.scalars(select(Entry).where(Entry.id.in_(keep)).order_by(Entry.record_date, Entry.id))
    points = [progression_point(e, is_record=e.id in overall) for e in entries]
    return ProgressionPublic(
        track=TrackPublic.model_validate(track), points=points, records=[p for p in points if p.is_record]
    )
