"""Applying a verification report: the verdict, the runs, the figures and the ranks."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy.orm import Session

from leaderboard.artifacts.service import store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.checks import check_report
from leaderboard.entries.models import EntryStatus, RunKind, Verification
from leaderboard.entries.ranking import cost_usd, mean_std, one_sided_p_value
from leaderboard.entries.records import link_artifact, mean_of_present, run_row
from leaderboard.entries.standing import recompute_ranks
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from submissions.protocol import ArtifactRef
from submissions.schema import VerificationReport


def apply_verification(
    session: Session,
    job: Job,
    report: VerificationReport,
    artifacts: Sequence[ArtifactRef],
    *,
    store: ArtifactStore,
) -> Verification:
    """Store a verifier's report, its runs and artifacts; set the entry's verdict and figures; re-rank."""
    entry = get_entry_row(session, job.entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    checks = check_report(track, entry, report)
    runs = report.runs
    hours_stat = mean_std([r.training_hours for r in runs]) if runs else None
    core_values = [r.core_score for r in runs if r.core_score is not None]
    core_stat = mean_std(core_values) if core_values else None
    p_value = one_sided_p_value(core_values, track.threshold) if core_values else None
    val_bpb = mean_of_present(r.val_bpb for r in runs)
    now = utcnow()
    gpus = entry.gpus_per_node * entry.nodes
    sku = runs[0].hardware.sku if runs else entry.hardware_class
    price = tracks_repository.price_on(session, sku, now.date()) if gpus > 0 else None
    cost = cost_usd(hours_stat[0], gpus, price.usd_per_gpu_hour) if (hours_stat and price is not None) else None
    report_art = store_bytes(session, store, report.model_dump_json(indent=2).encode(), "report")
    verification = Verification(
        entry_id=entry.id,
        job_id=job.id,
        verifier_id=report.verifier.id,
        reported_verdict=report.verdict.value,
        verdict=checks.verdict,
        reasons=checks.reasons,
        hours_mean=None if hours_stat is None else hours_stat[0],
        hours_std=None if hours_stat is None else hours_stat[1],
        core_mean=None if core_stat is None else core_stat[0],
        core_std=None if core_stat is None else core_stat[1],
        core_n=len(core_values) or None,
        p_value=p_value,
        val_bpb_mean=val_bpb,
        cost_usd=cost,
        report=json.loads(report.model_dump_json()),
        report_sha256=report_art.sha256,
    )
    session.add(verification)
    session.flush()
    if not any(a.kind == "report" for a in artifacts):  # else the worker's own report.json is shown
        name = f"verification-{verification.id}/report.json"
        link_artifact(session, entry.id, job.id, name, "report", report_art.sha256, "verification")
    for result in runs:
        art = store_bytes(session, store, result.model_dump_json(indent=2).encode(), "result")
        run = run_row(entry.id, RunKind.verified, result, art.sha256)
        run.verification_id = verification.id
        session.add(run)
    jobs_repository.attach_job_artifacts(session, job.id, [a.sha256 for a in artifacts])
    if entry.status != EntryStatus.retracted:
        entry.status = EntryStatus(checks.verdict)
        entry.hours = verification.hours_mean
        entry.hours_std = verification.hours_std
        entry.core_mean = verification.core_mean
        entry.core_std = verification.core_std
        entry.core_n = verification.core_n
        entry.p_value = p_value
        entry.val_bpb = val_bpb
        entry.cost_usd = cost
        entry.price_usd_per_gpu_hour = None if price is None else price.usd_per_gpu_hour
        entry.price_sku = None if price is None else price.sku
        entry.price_date = None if price is None else price.effective_date
        entry.flops = runs[0].flops if runs else entry.flops
        entry.verified_at = now if checks.verdict == "verified" else entry.verified_at
        entry.updated_at = now
    session.flush()
    recompute_ranks(session, entry.track_id)
    bump_revision(session)
    return verification


def mark_unverifiable(session: Session, entry_id: int) -> None:
    """A job for a pending entry failed for good: the entry shows 'error' with the reason."""
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.pending:
        entry.status = EntryStatus.error
        entry.updated_at = utcnow()
        session.flush()
        bump_revision(session)
