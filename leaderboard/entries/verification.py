"""Applying a verification report, and re-reading an entry's verifications when the rules change.

The report, its runs and artifacts are stored as they came (the history); the verdict and every
ranked figure are the site's own (``pool.evaluate`` over all the entry's verifications). Cost is
the pool's mean hours x the ENTRY's GPUs x the reference price of the ENTRY's hardware class on
the day of the counted verification, never a run's fingerprint or a report's summary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from contract.protocol import ArtifactRef
from contract.schema import RunResult, VerificationReport
from leaderboard.artifacts.service import store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.models import Entry, EntryStatus, RunKind, Submission, Verification
from leaderboard.entries.pool import Evaluation, StoredVerification, evaluate
from leaderboard.entries.ranking import cost_usd
from leaderboard.entries.records import link_artifact, run_row
from leaderboard.entries.standing import recompute_ranks
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track

FIXED = (EntryStatus.retracted, EntryStatus.reported)


def is_fork(entry: Entry) -> bool:
    trainer = entry.run_config.get("trainer") if isinstance(entry.run_config, dict) else None
    return isinstance(trainer, dict) and trainer.get("kind") == "git"


def needs_review(track: Track, entry: Entry) -> bool:
    """A fork on a track whose ``fork_review`` is 'required', not approved yet."""
    return track.fork_review == "required" and is_fork(entry) and entry.review_status != "approved"


def claimed_results(session: Session, entry: Entry) -> list[RunResult]:
    sub = session.get(Submission, entry.submission_id) if entry.submission_id is not None else None
    body = sub.body.get("claimed_results", []) if sub is not None else []
    return [RunResult.model_validate(r) for r in body]


def evaluate_entry(session: Session, track: Track, entry: Entry) -> Evaluation:
    asked = {j.id: j.runs for j in jobs_repository.jobs_of_entry(session, entry.id)}
    stored = [
        StoredVerification(
            v.id,
            v.created_at,
            v.report,
            None if v.job_id is None else asked.get(v.job_id),
            accounts=int((v.workers or {}).get("accounts") or 1),
            flags=list((v.workers or {}).get("flags") or []),
        )
        for v in reversed(repository.verifications_of(session, entry.id))  # oldest first
    ]
    return evaluate(track, entry.run_config, entry.rules_version, claimed_results(session, entry), stored)


def settle_entry(session: Session, track: Track, entry: Entry, evaluation: Evaluation) -> dict[str, Any]:
    """Set the entry's status and figures from ``evaluation``; returns what changed (for the audit)."""
    look = evaluation.current
    before = {"status": entry.status.value, "hours": entry.hours, "cost_usd": entry.cost_usd}
    if look is None or entry.status in FIXED:
        return {}
    status = look.verdict
    if status == "verified" and needs_review(track, entry):
        status = EntryStatus.awaiting_review.value
        entry.review_status = "pending"
    elif entry.review_status == "pending":  # the track stopped reviewing forks
        entry.review_status = None
    entry.status = EntryStatus(status)
    figures = look.pool
    gpus = entry.gpus_per_node * entry.nodes
    if figures is not None:
        price = tracks_repository.price_on(session, entry.hardware_class, look.created_at.date()) if gpus else None
        entry.hours, entry.hours_std = figures.hours_mean, figures.hours_std
        entry.core_mean, entry.core_std = figures.core_mean, figures.core_std
        entry.core_n = figures.runs if figures.core_mean is not None else None
        entry.p_value, entry.val_bpb, entry.flops = figures.p_value, figures.val_bpb, figures.flops
        entry.cost_usd = None if price is None else cost_usd(figures.hours_mean, gpus, price.usd_per_gpu_hour)
        entry.price_usd_per_gpu_hour = None if price is None else price.usd_per_gpu_hour
        entry.price_sku = None if price is None else price.sku
        entry.price_date = None if price is None else price.effective_date
        if evaluation.rules_version is not None:
            entry.rules_version = evaluation.rules_version
        if status in ("verified", EntryStatus.awaiting_review.value) and entry.verified_at is None:
            entry.verified_at = look.created_at
    entry.pool = {
        "counted_verification_ids": evaluation.counted_ids,
        "current_verification_id": look.verification_id,
        **look.site,
    }
    entry.updated_at = utcnow()
    after = {"status": entry.status.value, "hours": entry.hours, "cost_usd": entry.cost_usd}
    return {} if after == before else {"before": before, "after": after}


def apply_verification(
    session: Session,
    job: Job,
    report: VerificationReport,
    artifacts: Sequence[ArtifactRef],
    *,
    store: ArtifactStore,
    workers: dict[str, Any] | None = None,
    artifact_jobs: Sequence[int] = (),
) -> Verification:
    """Store a verifier's report, its runs and artifacts; the site decides the verdict; re-rank.

    ``workers``: who ran which run (``entries.pooling``); ``artifact_jobs``: the run jobs whose
    uploads ``artifacts`` are (default: ``job``'s own)."""
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    report_art = store_bytes(session, store, report.model_dump_json(indent=2).encode(), "report")
    verification = Verification(
        entry_id=entry.id,
        job_id=job.id,
        verifier_id=report.verifier.id,
        reported_verdict=report.verdict.value,
        verdict="pending",
        reasons=list(report.reasons),
        report=json.loads(report.model_dump_json()),
        report_sha256=report_art.sha256,
        workers=workers,
        created_at=utcnow(),
    )
    session.add(verification)
    session.flush()
    if not any(a.kind == "report" and "/" not in a.name for a in artifacts):  # else the worker's report.json is shown
        name = f"verification-{verification.id}/report.json"
        link_artifact(session, entry.id, job.id, name, "report", report_art.sha256, "verification")
    for result in report.runs:
        art = store_bytes(session, store, result.model_dump_json(indent=2).encode(), "result")
        run = run_row(entry.id, RunKind.verified, result, art.sha256)
        run.verification_id = verification.id
        session.add(run)
    for job_id in artifact_jobs or [job.id]:
        jobs_repository.attach_job_artifacts(session, job_id, [a.sha256 for a in artifacts])
    evaluation = evaluate_entry(session, track, entry)
    look = next(lk for lk in evaluation.looks if lk.verification_id == verification.id)
    verification.verdict = look.verdict
    verification.reasons = [*report.reasons, *look.reasons]
    verification.site = look.site
    if look.pool is not None:
        verification.hours_mean, verification.hours_std = look.pool.hours_mean, look.pool.hours_std
        verification.core_mean, verification.core_std = look.pool.core_mean, look.pool.core_std
        verification.core_n = look.pool.runs
        verification.p_value, verification.val_bpb_mean = look.pool.p_value, look.pool.val_bpb
    settle_entry(session, track, entry, evaluation)
    verification.cost_usd = entry.cost_usd if look.pool is not None else None
    session.flush()
    recompute_ranks(session, entry.track_id)
    bump_revision(session)
    return verification


def reevaluate_track(session: Session, track: Track) -> list[dict[str, Any]]:
    """Re-read every verified entry of a track under its current rules; returns the changes."""
    changes: list[dict[str, Any]] = []
    for entry in repository.entries_with_verifications(session, track.id):
        change = settle_entry(session, track, entry, evaluate_entry(session, track, entry))
        if change:
            changes.append({"entry_id": entry.id, **change})
    session.flush()
    recompute_ranks(session, track.id)
    return changes


def mark_unverifiable(session: Session, entry_id: int) -> None:
    """A job for a pending entry failed for good: the entry shows 'error' with the reason."""
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.pending:
        entry.status = EntryStatus.error
        entry.updated_at = utcnow()
        session.flush()
        bump_revision(session)
