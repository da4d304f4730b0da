"""Seed data: the built-in tracks, the reference prices, and the public nanochat history.

History rows are *reported, not verified*: status ``reported``, rules version ``nanochat-2026``,
ranked apart from verified rows. Seeding only adds what is missing, so it is safe on every start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract.core_v1 import GPT2_XL_CORE
from contract.tracks import BUILTIN_TRACKS
from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind
from leaderboard.entries.ranking import cost_usd, gpt_flops_estimate
from leaderboard.entries.standing import recompute_ranks
from leaderboard.prices import PRICE_TABLE_VERSION, REFERENCE_PRICES
from leaderboard.revision import BoardRevision, bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.defaults import SITE_DEFAULTS
from leaderboard.tracks.models import Price, Track
from submissions.stats import one_sided_t_test, sample_std

HISTORY_TRACK = "gpt2-8xh100"
COST_TRACK = "gpt2-cost"  # the same public history, ranked by dollars: the $43K -> $39.60 story
HISTORY_RULES = "nanochat-2026"
NANOCHAT_URL = "https://github.com/karpathy/nanochat"


@dataclass(frozen=True)
class HistoryRow:
    title: str
    hours: float
    val_bpb: float | None
    core: float
    core_runs: tuple[float, ...]  # published per-run CORE values, when there are any
    core_n: int | None
    record_date: date
    commit: str | None
    contributors: tuple[str, ...]
    hardware_class: str
    gpus: int
    flops: float | None  # estimated from the published depth and tokens:params ratio, else None
    reported_price_per_gpu_hour: float | None = None  # a published price (the 2019 TPU run); else the table's
    cost_note: str | None = None


# RULES.md, "Public history to import" (nanochat leaderboard, all on 8xH100 except row 0).
NANOCHAT_HISTORY: tuple[HistoryRow, ...] = (
    HistoryRow(
        "GPT-2 1.5B (original OpenAI run)", 168.0, None, GPT2_XL_CORE, (), None, date(2019, 2, 14), None,
        ("OpenAI",), "tpu-v3", 32, None, 8.0, "32 TPU v3 x 168 h x $8/h = $43,008 (reported: a week on 32 TPU v3 at ~$8 per TPU-hour)",
    ),
    HistoryRow(
        "d24 baseline, slightly overtrained (ratio 12)", 10_949 / 3600, 0.74833, 0.2585, (), None,
        date(2026, 1, 29), "348fbb3", ("@karpathy",), "h100-sxm", 8, gpt_flops_estimate(24, 12),
    ),
    HistoryRow(
        "d26 slightly undertrained + fp8", 10_493 / 3600, 0.74504, 0.2578, (), None, date(2026, 2, 2), "a67eba3",
        ("@karpathy",), "h100-sxm", 8, None,
    ),
    HistoryRow(
        "total batch 1M tokens", 9_922 / 3600, 0.74645, 0.2602, (), None, date(2026, 2, 5), "2c062aa",
        ("@karpathy",), "h100-sxm", 8, None,
    ),
    HistoryRow(
        "dataset -> NVIDIA ClimbMix", 2.02, 0.71854, 0.2571,
        (0.25373, 0.2584, 0.25489, 0.2568, 0.25732, 0.26765, 0.25119), 7, date(2026, 3, 4), "324e69c",
        ("@ddudek", "@karpathy"), "h100-sxm", 8, None,
    ),
    HistoryRow(
        "autoresearch round 1", 1.80, 0.71808, 0.2690, (), 5, date(2026, 3, 9), "6ed7d1d", ("@karpathy",),
        "h100-sxm", 8, None,
    ),
    HistoryRow(
        "autoresearch round 2 (smear, backout)", 1.65, 0.71800, 0.2626, (), 5, date(2026, 3, 14), "a825e63",
        ("@karpathy",), "h100-sxm", 8, gpt_flops_estimate(24, 8),
    ),
)  # fmt: skip


def seed_tracks(session: Session) -> int:
    """Add the built-in tracks that are missing; returns how many were added."""
    added = 0
    for position, rules in enumerate(BUILTIN_TRACKS.values()):
        if tracks_repository.by_slug(session, rules.slug) is None:
            settings = SITE_DEFAULTS.get(rules.slug, {})
            session.add(Track(position=position, **rules.model_dump(mode="json"), **settings))
            added += 1
    session.flush()
    return added


def seed_prices(session: Session) -> int:
    """The reference price table, when the site has no prices yet."""
    if session.scalar(select(func.count(Price.id))):
        return 0
    for row in REFERENCE_PRICES:
        session.add(Price(table_version=PRICE_TABLE_VERSION, **row.model_dump()))
    session.flush()
    return len(REFERENCE_PRICES)


def seed_history(session: Session, track_slug: str = HISTORY_TRACK) -> int:
    """The public nanochat records as reported rows on a track (the 8xH100 track, and the cost
    track where they tell the dollar story), when not imported there yet."""
    track = tracks_repository.by_slug(session, track_slug)
    if track is None:
        return 0
    exists = session.scalar(
        select(func.count(Entry.id)).where(Entry.track_id == track.id, Entry.rules_version == HISTORY_RULES)
    )
    if exists:
        return 0
    for row in NANOCHAT_HISTORY:
        price = tracks_repository.price_on(session, row.hardware_class, row.record_date)
        if row.reported_price_per_gpu_hour is not None:
            per_gpu_hour = row.reported_price_per_gpu_hour
            cost = cost_usd(row.hours, row.gpus, per_gpu_hour)
        elif price is not None:
            cost, per_gpu_hour = cost_usd(row.hours, row.gpus, price.usd_per_gpu_hour), price.usd_per_gpu_hour
        else:
            cost, per_gpu_hour = None, None
        std = sample_std(row.core_runs) if len(row.core_runs) >= 2 else None
        p_value = one_sided_t_test(row.core_runs, GPT2_XL_CORE).p_value if len(row.core_runs) >= 2 else None
        entry = Entry(
            track_id=track.id,
            status=EntryStatus.reported,
            title=row.title,
            description=f"Imported from the public nanochat leaderboard ({NANOCHAT_URL}); reported, not verified here.",
            contributors=list(row.contributors),
            run_config={},
            trainer="nanochat" if row.commit else "",
            recipe="",
            hardware_class=row.hardware_class,
            gpus_per_node=row.gpus,
            nodes=1,
            rules_version=HISTORY_RULES,
            commit=row.commit,
            record_date=row.record_date,
            hours=row.hours,
            core_mean=row.core,
            core_std=std,
            core_n=row.core_n,
            p_value=p_value,
            val_bpb=row.val_bpb,
            flops=row.flops,
            cost_usd=cost,
            price_usd_per_gpu_hour=per_gpu_hour,
            price_sku=None if price is None or row.reported_price_per_gpu_hour is not None else price.sku,
            price_date=None if price is None or row.reported_price_per_gpu_hour is not None else price.effective_date,
            reported_cost_note=row.cost_note,
        )
        session.add(entry)
        session.flush()
        for i, value in enumerate(row.core_runs):
            session.add(Run(entry_id=entry.id, kind=RunKind.reported, run_id=f"reported-{i + 1}", core=value))
    session.flush()
    recompute_ranks(session, track.id)
    return len(NANOCHAT_HISTORY)


def seed_all(session: Session) -> dict[str, int]:
    """Everything a fresh site needs; safe to run on every start (adds only what is missing)."""
    if session.get(BoardRevision, 1) is None:
        session.add(BoardRevision(id=1, revision=0))
    counts = {"tracks": seed_tracks(session), "prices": seed_prices(session)}
    counts["history"] = seed_history(session)
    counts["cost_history"] = seed_history(session, COST_TRACK)
    session.flush()
    # ranks under the code that ranks now (a database ranked by older code, e.g. one that still
    # ranked GPT-2's own 2019 run among the runs, is re-ranked on the next start)
    reranked = [recompute_ranks(session, t.id) for t in tracks_repository.all_tracks(session)]
    counts["reranked_tracks"] = sum(reranked)
    if any(reranked):
        bump_revision(session)
    return counts
