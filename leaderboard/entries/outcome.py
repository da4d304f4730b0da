"""What happened to an entry, in one line, from the code that ranks it: its rank (``standing``),
the track's record holder and the record it beat (``compare.record_banner``, through the rank
index), its verdict and p (``pool``). The entry page prints it first; the JSON twin carries it.

"V1 · record on GPT-2 speedrun · 28.2% faster than #15", "V3 · 4.1% behind the record (#17)",
"failed: p = 0.97", "verified · awaiting code review", "pending: job #4 queued".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.entries.board import entry_detail as board_entry_detail
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.compare import Banner, Holder, record_banner
from leaderboard.entries.schemas import EntryDetailPublic, EntryPublic, OutcomePublic
from leaderboard.entries.standing import BASELINE_YEAR
from leaderboard.jobs.schemas import JobPublic
from leaderboard.tracks.schemas import TrackPublic
from submissions.stats import p_text


def _value(entry: EntryPublic | Holder, ranking: str) -> float | None:
    return entry.hours if ranking == "time" else entry.cost_usd


def is_baseline(entry: EntryPublic) -> bool:
    """GPT-2's own run of 2019: the reported row every record is measured against, never ranked."""
    return entry.status == "reported" and entry.record_date.year == BASELINE_YEAR


def _ranked(entry: EntryPublic, track: TrackPublic, banner: Banner) -> OutcomePublic:
    verified = entry.status == "verified"
    letter = "V" if verified else "R"
    holder = banner.verified if verified else banner.reported
    rank = entry.rank_time if track.ranking == "time" else entry.rank_cost
    label = f"{letter}{rank}"
    word = "faster" if track.ranking == "time" else "cheaper"
    mine = _value(entry, track.ranking)
    kind = "record" if verified else "reported"
    if holder is not None and holder.id == entry.id:
        section = "record" if verified else "reported record (not verified here)"
        text = f"{label} · {section} on {track.name}"
        prev = holder.previous_value
        if mine is not None and prev and prev > mine:
            pct = 100 * (prev - mine) / prev
            return OutcomePublic(
                kind=kind,
                headline=f"{text} · {pct:.1f}% {word} than #{holder.previous_id}",
                rank_label=label,
                margin_percent=pct,
                versus_entry_id=holder.previous_id,
            )
        return OutcomePublic(
            kind=kind, headline=f"{text} · the first under rules {entry.rules_version}", rank_label=label
        )
    best = None if holder is None else _value(holder, track.ranking)
    if mine is None or best is None or holder is None or best <= 0:
        return OutcomePublic(kind="ranked", headline=f"{label} · {entry.badge}", rank_label=label)
    behind = 100 * (mine - best) / best
    where = "the record" if verified else "the reported record"
    return OutcomePublic(
        kind="ranked",
        headline=f"{label} · {behind:.1f}% behind {where} (#{holder.id})",
        rank_label=label,
        margin_percent=-behind,
        versus_entry_id=holder.id,
    )


def _workers_short(site: dict[str, Any] | None) -> str | None:
    """'verified by 1 of 2 workers' when a verification's runs came from too few accounts."""
    if not site:
        return None
    have, need = site.get("accounts"), site.get("accounts_required")
    if isinstance(have, int) and isinstance(need, int) and have < need:
        return f"verified by {have} of {need} workers"
    return None


def outcome(
    entry: EntryPublic,
    track: TrackPublic,
    banner: Banner,
    jobs: list[JobPublic],
    p: float | None,
    latest_site: dict[str, Any] | None = None,
) -> OutcomePublic:
    """The entry's outcome line (pure: the banner, jobs and the latest verification's site
    figures are read by the caller)."""
    status = str(entry.status)
    if is_baseline(entry):
        return OutcomePublic(kind="baseline", headline="baseline: GPT-2's own run of 2019 (reported, not ranked)")
    if status in ("verified", "reported") and (entry.rank_time if track.ranking == "time" else entry.rank_cost):
        return _ranked(entry, track, banner)
    active = next((j for j in jobs if str(j.status) in ("queued", "running")), None)
    if status == "pending":
        if active is None:
            return OutcomePublic(kind="pending", headline="pending verification")
        prog = active.progress or {}
        have, need, done = prog.get("accounts"), prog.get("min_accounts"), prog.get("runs_done")
        if isinstance(have, int) and isinstance(need, int) and have < need and done:
            return OutcomePublic(
                kind="pending",
                headline=f"pending: runs from {have} of {need} workers so far ({done}/{active.runs} runs in), "
                f"job #{active.id} waits for worker account {have + 1}",
            )
        return OutcomePublic(kind="pending", headline=f"pending: job #{active.id} {active.status}")
    if status == "awaiting_review":
        return OutcomePublic(
            kind="awaiting_review", headline="verified · awaiting code review (unranked until an admin approves)"
        )
    if status == "inconclusive" and (short := _workers_short(latest_site)) is not None:
        return OutcomePublic(kind="failed", headline=f"{short}: not counted on {track.name}")
    if status in ("failed", "inconclusive"):
        text = status if p is None else f"{status}: p = {p_text(p)}, needs < {track.alpha}"
        return OutcomePublic(kind="failed", headline=text)
    if status == "rejected":
        return OutcomePublic(kind="failed", headline="rejected: the verifier's report broke a rule of the site")
    if status == "error":
        return OutcomePublic(kind="failed", headline="error: the verification produced no valid runs")
    return OutcomePublic(kind=status, headline=status)


def entry_detail(session: Session, entry_id: int, store: ArtifactStore | None = None) -> EntryDetailPublic:
    """``board.entry_detail`` with its outcome line (what the entry page and its twin show)."""
    detail = board_entry_detail(session, entry_id, store)
    banner = record_banner(session, detail.track_info.id, detail.track_info.ranking)
    latest = detail.verifications[0] if detail.verifications else None
    p = detail.entry.p_value if detail.entry.p_value is not None else (latest.p_value if latest else None)
    site = get_entry_row(session, entry_id).pool  # the current look under the track's rules now
    line = outcome(detail.entry, detail.track_info, banner, detail.jobs, p, site)
    return detail.model_copy(update={"outcome": line})
