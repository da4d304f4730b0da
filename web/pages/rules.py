"""The rules page (``/about``), generated from the rules in force: every setting of every track as
stored (``TrackPublic``: a setting added to a track shows here, or the page's test fails), the
rules versions side by side with the tracks that use each, the pooling rule and the cap, the
quotas, sealing, fork review, the pre-flight, and the prices a cost can come from (the reference
table, a price its authors reported, and the hardware that has none)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.schema import RANKED_RULES_VERSION, SELF_TIMED_RULES_VERSION
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.formatting import hms
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.tracks.service import list_prices, list_tracks

# what each rules version means (docs/RULES.md); which tracks use it is read from the tracks
RULES_VERSIONS: dict[str, dict[str, str]] = {
    SELF_TIMED_RULES_VERSION: {
        "clock": "the trainer's own timed region: every training step, synchronized with the device, after an "
        "untimed compile warm-up whose state is reset",
        "scored by": "the run's own CORE and val_bpb, as its result.json reports them",
        "code": "the submitted trainer, run by the verifier as it is",
        "ranked": "entries verified under it keep that label and are ranked under it; it is shown beside the v2 clock",
    },
    RANKED_RULES_VERSION: {
        "clock": "the verifier's clock over the sandboxed training process: from its launch to the last change "
        "of its final model.pt",
        "scored by": "the verifier's own code on the checkpoint, in a separate sandbox that alone sees the eval bundle",
        "code": "sealed: no network, no credentials, bounded time, memory, processes and disk",
        "ranked": "the ranked time; the trainer's own (v1) time is shown beside it and flagged when far off",
    },
}

# how each track setting reads for people; the page shows every field of TrackPublic (a test checks)
SETTINGS: dict[str, str] = {
    "metric": "metric",
    "threshold": "CORE bar (mean CORE must be above it)",
    "alpha": "alpha (one-sided t-test, first look)",
    "min_runs": "runs per verification (k)",
    "ranking": "ranked by",
    "hardware_classes": "hardware classes",
    "gpus_per_node": "GPUs per node",
    "nodes": "nodes",
    "rules_version": "rules version",
    "protocol": "eval protocol",
    "core_examples": "CORE examples a full pass scores",
    "max_per_task": "CORE subsample per task",
    "bundle_sha256": "eval bundle (sha256)",
    "require_sealed": "sealed execution required",
    "fork_review": "code review of forks",
    "clock_tolerance": "clock tolerance (v1 vs v2 gap flagged)",
    "max_verifications": "verifications an owner may ask for",
    "weekly_gpu_runs": "GPU runs per user per 7 days",
    "max_job_seconds": "longest verification job",
    "min_worker_accounts": "worker accounts per verification",
    "updated_at": "settings last changed",
}
NOT_SETTINGS = frozenset({"id", "slug", "name", "description"})


def setting_text(track: TrackPublic, field: str, default_job_seconds: int) -> str:
    v = getattr(track, field)
    if field == "max_job_seconds":
        return hms((v or default_job_seconds) / 3600) + (" (site default)" if v is None else "")
    if field == "ranking":
        return "training time" if v == "time" else "dollars"
    if field == "hardware_classes":
        return ", ".join(v)
    if field == "require_sealed":
        return "yes: a report that did not run sealed is rejected" if v else "no"
    if field == "fork_review":
        return "required: a verified fork is unranked until an admin approves it" if v == "required" else "none"
    if field == "weekly_gpu_runs":
        return "no quota" if v is None else f"{v}"
    if field == "min_worker_accounts":
        return (
            "one worker account may verify alone"
            if v == 1
            else (f"{v}: a verification counts only when its runs come from {v} different worker accounts")
        )
    if field == "core_examples":
        return "not checked" if v is None else f"{v:,}"
    if field in ("max_per_task", "gpus_per_node", "nodes"):
        return "any" if v is None and field != "max_per_task" else ("every example" if v is None else str(v))
    if field == "bundle_sha256":
        return "not pinned" if v is None else f"{v[:16]}…"
    if field == "updated_at":
        return f"{v:%Y-%m-%d %H:%M} UTC"
    if field == "clock_tolerance":
        return f"120 s + {v} × the clock"
    return str(v)


def reported_prices(session: Session) -> list[tuple[str, float, str]]:
    """Prices a cost on the board came from that are not in the reference table: (sku, $/h, whose)."""
    rows = session.execute(
        select(Entry.hardware_class, Entry.price_usd_per_gpu_hour, Entry.title)
        .where(
            Entry.status == EntryStatus.reported, Entry.price_sku.is_(None), Entry.price_usd_per_gpu_hour.is_not(None)
        )
        .order_by(Entry.record_date, Entry.id)
    ).all()
    seen: dict[str, tuple[str, float, str]] = {}
    for sku, price, title in rows:
        if price is None:
            continue
        seen.setdefault(str(sku), (str(sku), float(price), str(title)))
    return list(seen.values())


def rules_context(session: Session, default_job_seconds: int, submit_rate_per_minute: int) -> dict[str, Any]:
    tracks = list_tracks(session)
    prices = list_prices(session)
    priced = {p.sku for p in prices}
    reported = [r for r in reported_prices(session) if r[0] not in priced]
    unpriced = sorted({h for t in tracks for h in t.hardware_classes} - priced - {r[0] for r in reported})
    fields = [f for f in TrackPublic.model_fields if f not in NOT_SETTINGS]
    versions = sorted({t.rules_version for t in tracks} | set(RULES_VERSIONS))
    return {
        "tracks": tracks,
        "settings": [(f, SETTINGS.get(f, f.replace("_", " "))) for f in fields],
        "setting_text": lambda t, f: setting_text(t, f, default_job_seconds),
        "versions": [(v, RULES_VERSIONS.get(v, {}), [t for t in tracks if t.rules_version == v]) for v in versions],
        "version_rows": ["clock", "scored by", "code", "ranked"],
        "prices": prices,
        "reported_prices": reported,
        "unpriced": unpriced,
        "submit_rate_per_minute": submit_rate_per_minute,
    }
