"""What a re-verification would spend and decide, said before it is asked for (docs/RULES.md,
"Re-verification"): the verifications used and left, the pool it joins and the alpha of its look,
its GPU runs and their price on this track, what it can cost a verified entry, and whether runs
like the pooled ones could pass at all.

``plan`` is pure (the pool's own figures in, a frozen plan out); ``reverify_plan`` reads the
price of the entry's hardware on the day and calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from leaderboard.entries.schemas import EntryDetailPublic
from leaderboard.tracks.service import price_on
from submissions.stats import mean, p_text, sample_std, t_test_of


@dataclass(frozen=True)
class ReverifyPlan:
    used: int  # counted verifications so far (their runs are pooled)
    allowed: int  # the track's limit for owners
    left: int | None  # None: an admin, who is not capped
    look: int  # the look this verification would be (k)
    alpha: float  # the track's alpha / k: what the pool is tested at
    track_alpha: float
    runs: int  # GPU runs it asks for (the track's min_runs)
    pool_runs: int  # runs pooled after it
    hours: float | None  # those runs at the entry's mean time
    cost_usd: float | None  # those hours x GPUs x the reference price today
    price_usd_per_gpu_hour: float | None
    at_stake: str | None  # what a verified entry can lose
    hopeless: str | None  # why runs like the pooled ones cannot pass; None when they can


def plan(
    *,
    used: int,
    allowed: int,
    admin: bool,
    alpha: float,
    threshold: float,
    runs: int,
    pool: list[float],
    hours: float | None,
    gpus: int,
    price: float | None,
    verified: bool,
) -> ReverifyPlan:
    """The next look's terms. ``pool``: CORE of every counted run so far; it is hopeless when runs
    as good as those (same mean and spread, ``runs`` more) would still fail the test at alpha / k."""
    look = used + 1
    alpha_k = alpha / look
    hopeless = None
    if pool:
        m = mean(pool)
        n = len(pool) + runs
        s = sample_std(pool) if len(pool) > 1 else 0.0
        test = t_test_of(m, s, n, threshold)
        if m <= threshold:
            hopeless = (
                f"the pooled mean CORE {m:.4f} of {len(pool)} runs is not above the bar {threshold}: "
                f"{runs} more runs like them leave the pool's mean where it is (t = {test.t:.1f})"
            )
        elif test.p_value >= alpha_k:
            hopeless = (
                f"{runs} more runs like the {len(pool)} pooled ones (mean CORE {m:.4f}) would give "
                f"p = {p_text(test.p_value)}, not below alpha {alpha} / {look} = {p_text(alpha_k)}"
            )
    total_hours = None if hours is None else hours * runs
    cost = None if total_hours is None or price is None or not gpus else total_hours * gpus * price
    at_stake = (
        "this entry is verified now: the pooled test at the stricter alpha can end it failed, and unranked"
        if verified
        else None
    )
    return ReverifyPlan(
        used=used,
        allowed=allowed,
        left=None if admin else max(0, allowed - used),
        look=look,
        alpha=alpha_k,
        track_alpha=alpha,
        runs=runs,
        pool_runs=len(pool) + runs,
        hours=total_hours,
        cost_usd=cost,
        price_usd_per_gpu_hour=price,
        at_stake=at_stake,
        hopeless=hopeless,
    )


def reverify_plan(session: Session, detail: EntryDetailPublic, *, admin: bool, today: date) -> ReverifyPlan:
    """The plan of the next re-verification of an entry, from its page's detail."""
    entry, track = detail.entry, detail.track_info
    pool = [r.core for r in detail.verified_runs if r.core is not None]
    hours = entry.hours if entry.hours is not None else entry.claimed_hours
    row = price_on(session, entry.hardware_class, today)
    return plan(
        used=detail.counted_verifications,
        allowed=track.max_verifications,
        admin=admin,
        alpha=track.alpha,
        threshold=track.threshold,
        runs=track.min_runs,
        pool=pool,
        hours=hours,
        gpus=entry.gpus,
        price=None if row is None else row.usd_per_gpu_hour,
        verified=str(entry.status) == "verified",
    )
