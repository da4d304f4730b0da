"""Reading the board: leaderboards, entry pages and the record progression, as ``*Public`` schemas
(the ``/api`` JSON twins of the pages), cached per board revision."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from contract.core_v1 import CORE_V1_LABELS
from contract.hardware import floor_seconds
from contract.protocol import ENTRY_PAGE
from contract.schema import MAX_CORE_TASKS, VAL_BPB_NOTE
from contract.tracks import clock_disagrees, clock_gap_allowed, clock_rule
from leaderboard.artifacts.schemas import ArtifactPublic
from leaderboard.artifacts.service import artifact_url
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.cache import cached
from leaderboard.entries import repository
from leaderboard.entries.metrics import read_curve
from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Verification
from leaderboard.entries.records import mean_of_present
from leaderboard.entries.schemas import (
    CoreTaskPublic,
    CurvePublic,
    EntryDetailPublic,
    EntryPublic,
    LeaderboardPublic,
    LeaderboardQuery,
    ProgressionPointPublic,
    ProgressionPublic,
    RunPublic,
    RunWorkerPublic,
    Section,
    SiteDerivedPublic,
    VerificationPublic,
)
from leaderboard.errors import NotFound
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job
from leaderboard.jobs.schemas import JobPublic
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.tracks.service import get_track_row
from leaderboard.users.models import User

BADGES = {EntryStatus.awaiting_review: "verified, awaiting code review"}


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600.0


def entry_url(entry_id: int) -> str:
    return ENTRY_PAGE.format(entry_id=entry_id)


def _section(status: EntryStatus) -> Section:
    if status == EntryStatus.verified:
        return "verified"
    if status == EntryStatus.reported:
        return "reported"
    return "unranked"


def waiting_badges(session: Session, entries: list[Entry]) -> dict[int, str]:
    """Pending entries whose job waits for another worker account: 'pending · runs from 1 of 2
    workers' (one query over their active jobs' progress, which ``jobs.runs.sync`` keeps)."""
    pending = [e.id for e in entries if e.status == EntryStatus.pending]
    if not pending:
        return {}
    rows = session.execute(
        select(Job.entry_id, Job.progress).where(
            Job.entry_id.in_(pending), jobs_repository.IS_VERIFICATION, Job.status.in_(jobs_repository.ACTIVE)
        )
    ).all()
    out: dict[int, str] = {}
    for entry_id, progress in rows:
        p = progress or {}
        have, need = p.get("accounts"), p.get("min_accounts")
        if isinstance(have, int) and isinstance(need, int) and have < need and p.get("runs_done"):
            out[int(entry_id)] = f"pending · runs from {have} of {need} workers"
    return out


def entry_public(entry: Entry, track: Track, sort: str | None = None, badge: str | None = None) -> EntryPublic:
    sort = sort or track.ranking
    gpus = max(1, entry.gpus_per_node) * entry.nodes if entry.gpus_per_node else 0
    return EntryPublic(
        id=entry.id,
        url=entry_url(entry.id),
        track=track.slug,
        section=_section(entry.status),
        rank=entry.rank_cost if sort == "cost" else entry.rank_time,
        rank_time=entry.rank_time,
        rank_cost=entry.rank_cost,
        status=entry.status,
        badge=badge or BADGES.get(entry.status, entry.status.value),
        title=entry.title,
        contributors=list(entry.contributors),
        hardware_class=entry.hardware_class,
        gpus_per_node=entry.gpus_per_node,
        nodes=entry.nodes,
        gpus=gpus,
        rules_version=entry.rules_version,
        other_rules=entry.rules_version != track.rules_version,
        hours=entry.hours,
        hours_std=entry.hours_std,
        cost_usd=entry.cost_usd,
        price_usd_per_gpu_hour=entry.price_usd_per_gpu_hour,
        core_mean=entry.core_mean,
        core_std=entry.core_std,
        core_n=entry.core_n,
        p_value=entry.p_value,
        val_bpb=entry.val_bpb,
        claimed_hours=entry.claimed_hours,
        claimed_core=entry.claimed_core,
        record_date=entry.record_date,
        commit=entry.commit,
        verified_at=entry.verified_at,
        review_status=entry.review_status,
    )


def leaderboard(session: Session, track_slug: str, query: LeaderboardQuery | None = None) -> LeaderboardPublic:
    """One page of a track's board: verified rows ranked first, then reported rows (ranked apart,
    per rules version), then, when the status filter asks for them, unranked rows."""
    q = query or LeaderboardQuery()
    return cached(
        session, ("leaderboard", track_slug, q.model_dump_json()), lambda: _leaderboard(session, track_slug, q)
    )


def leaderboard_json_key(track_slug: str, query: LeaderboardQuery | None = None) -> tuple[str, str, str]:
    """The read-cache key of ``leaderboard_json`` (for ``leaderboard.cache.peek_current``)."""
    return ("leaderboard.json", track_slug, (query or LeaderboardQuery()).model_dump_json())


def leaderboard_json(session: Session, track_slug: str, query: LeaderboardQuery | None = None) -> bytes:
    """``leaderboard()`` serialized once per board revision: the JSON twin's hot path."""
    q = query or LeaderboardQuery()
    return cached(
        session,
        leaderboard_json_key(track_slug, q),
        lambda: _leaderboard(session, track_slug, q).model_dump_json().encode(),
    )


def _leaderboard(session: Session, track_slug: str, q: LeaderboardQuery) -> LeaderboardPublic:
    track = get_track_row(session, track_slug)
    sort = q.sort or track.ranking
    conditions = repository.board_filter(track.id, q.status, q.hardware, q.rules_version, q.q)
    total = repository.board_count(session, conditions)
    rows = repository.board_page(session, conditions, sort, q.per_page, (q.page - 1) * q.per_page)
    waiting = waiting_badges(session, list(rows))
    return LeaderboardPublic(
        track=TrackPublic.model_validate(track),
        sort=sort,
        hardware=q.hardware,
        status=q.status,
        rules_version=q.rules_version,
        page=q.page,
        per_page=q.per_page,
        total=total,
        pages=max(1, math.ceil(total / q.per_page)),
        rows=[entry_public(e, track, sort, waiting.get(e.id)) for e in rows],
        hardware_options=repository.distinct_values(session, track.id, "hardware"),
        rules_versions=repository.distinct_values(session, track.id, "rules"),
    )


def get_entry_row(session: Session, entry_id: int) -> Entry:
    entry = session.get(Entry, entry_id)
    if entry is None:
        raise NotFound(f"no entry {entry_id}")
    return entry


def protocol_tasks(tasks: dict[str, float] | None) -> dict[str, float] | None:
    """A run's per-task CORE as shown: only the protocol's tasks (at most MAX_CORE_TASKS), in the
    protocol's order. A row stored before the contract was bounded may hold any number of names;
    the page stays bounded whatever it holds."""
    if not isinstance(tasks, dict):
        return None
    kept: dict[str, float] = {}
    for task in CORE_V1_LABELS:
        v = tasks.get(task)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            kept[task] = float(v)
    return dict(list(kept.items())[:MAX_CORE_TASKS])


def run_public(run: Run, clock_tolerance: float | None = None) -> RunPublic:
    """One run; ``clock_tolerance`` (the track's) judges its self-reported time against the clock."""
    own, clock = run.self_reported_training_seconds, run.training_seconds
    flagged, allowed = None, None
    if own is not None and clock is not None and clock_tolerance is not None:
        flagged, allowed = clock_disagrees(own, clock, clock_tolerance), clock_gap_allowed(clock, clock_tolerance)
    return RunPublic(
        id=run.id,
        kind=run.kind.value,
        run_id=run.run_id,
        seed=run.seed,
        training_seconds=run.training_seconds,
        training_hours=None if run.training_seconds is None else run.training_seconds / 3600.0,
        wall_seconds=run.wall_seconds,
        steps=run.steps,
        tokens=run.tokens,
        flops=run.flops,
        val_bpb=run.val_bpb,
        core=run.core,
        core_tasks=protocol_tasks(run.core_tasks),
        mfu=run.mfu,
        hardware=run.hardware,
        result_sha256=run.result_sha256,
        metrics_sha256=run.metrics_sha256,
        verification_id=run.verification_id,
        self_reported_training_seconds=own,
        clock_disagrees=run.clock_disagrees,
        clock_flagged=flagged,
        clock_allowed_gap_seconds=allowed,
        val_bpb_note=run.val_bpb_note,
        created_at=run.created_at,
    )


def verification_public(v: Verification, runs: Sequence[RunPublic] = ()) -> VerificationPublic:
    site = v.site if isinstance(v.site, dict) else None
    deltas = site.get("deltas") if site is not None else None
    return VerificationPublic(
        id=v.id,
        job_id=v.job_id,
        verifier_id=v.verifier_id,
        reported_verdict=v.reported_verdict,
        verdict=v.verdict,
        reasons=list(v.reasons),
        hours_mean=v.hours_mean,
        hours_std=v.hours_std,
        core_mean=v.core_mean,
        core_std=v.core_std,
        core_n=v.core_n,
        p_value=v.p_value,
        val_bpb_mean=v.val_bpb_mean,
        cost_usd=v.cost_usd,
        deltas=deltas if isinstance(deltas, dict) else None,
        site=None
        if site is None
        else SiteDerivedPublic.model_validate({k: site[k] for k in SiteDerivedPublic.model_fields if k in site}),
        report_sha256=v.report_sha256,
        created_at=v.created_at,
        runs=list(runs),
        workers=[
            RunWorkerPublic.model_validate({k: w.get(k) for k in ("run_index", "account", "worker_id")})
            for w in (v.workers or {}).get("runs", [])
        ],
    )


def job_public(job: Job, entry: Entry, track_slug: str) -> JobPublic:
    return JobPublic(
        id=job.id,
        entry_id=entry.id,
        entry_title=entry.title,
        entry_url=entry_url(entry.id),
        track=track_slug,
        status=job.status,
        reason=job.reason,
        runs=job.runs,
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        failure_reason=job.failure_reason,
        progress=job.progress,
        lease_owner=job.lease_owner,
        lease_expires_at=job.lease_expires_at,
        heartbeat_at=job.heartbeat_at,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )


def _core_tasks(claimed: Sequence[RunPublic], verified: Sequence[RunPublic]) -> list[CoreTaskPublic]:
    """Mean accuracy per protocol task over each side's runs (the runs' tasks already bounded)."""
    present = {t for run in [*claimed, *verified] for t in run.core_tasks or {}}
    names = [t for t in CORE_V1_LABELS if t in present]

    def mean_of(runs: Sequence[RunPublic], task: str) -> float | None:
        return mean_of_present((r.core_tasks or {}).get(task) for r in runs)

    return [CoreTaskPublic(task=t, claimed=mean_of(claimed, t), verified=mean_of(verified, t)) for t in names]


def val_bpb_note(entry: Entry, verified: Sequence[Run]) -> str | None:
    """How the entry's val_bpb counts bytes: verified runs are scored by this project's evaluation
    code (``trainer.evaluation.bpb``), whose note says how it compares with the record's log;
    reported history carries its authors' own figure, and an unverified entry shows none."""
    if entry.val_bpb is None or entry.status == EntryStatus.reported or not verified:
        return None
    return VAL_BPB_NOTE


def entry_detail(session: Session, entry_id: int, store: ArtifactStore | None = None) -> EntryDetailPublic:
    """Everything the entry page shows; curves are read from the stored metrics artifacts."""
    entry = get_entry_row(session, entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    runs = repository.runs_of(session, entry.id)
    verifications = repository.verifications_of(session, entry.id, with_report=False)
    counted = (entry.pool or {}).get("counted_verification_ids")
    latest = set(counted) if isinstance(counted, list) and counted else {verifications[0].id if verifications else None}
    claimed = [r for r in runs if r.kind == RunKind.claimed]
    verified = [r for r in runs if r.kind == RunKind.verified and r.verification_id in latest]
    reported = [r for r in runs if r.kind == RunKind.reported]
    curves: list[CurvePublic] = []
    if store is not None:
        for run in [*verified, *claimed]:
            if run.metrics_sha256:
                sha = run.metrics_sha256
                points = cached(session, ("curve", sha), partial(read_curve, store, sha))
                if points:
                    curves.append(
                        CurvePublic(
                            run_id=run.run_id,
                            kind=run.kind.value,
                            seed=run.seed,
                            metrics_sha256=run.metrics_sha256,
                            points=points,
                        )
                    )
    artifacts = [
        ArtifactPublic(
            name=link.name,
            kind=link.kind,
            sha256=link.sha256,
            size_bytes=art.size_bytes,
            content_type=art.content_type,
            source=link.source,
            job_id=link.job_id,
            url=artifact_url(link.sha256),
            created_at=link.created_at,
        )
        for link, art in jobs_repository.entry_artifacts(session, entry.id)
    ]
    jobs = [job_public(j, entry, track.slug) for j in jobs_repository.jobs_of_entry(session, entry.id)]
    owner = session.get(User, entry.owner_id) if entry.owner_id is not None else None
    reviewer = session.get(User, entry.reviewed_by_id) if entry.reviewed_by_id is not None else None
    hardware_run = next((r for r in [*verified, *claimed, *reported] if r.hardware), None)
    claimed_public = [run_public(r) for r in claimed]
    verified_public = [run_public(r, track.clock_tolerance) for r in verified]
    return EntryDetailPublic(
        entry=entry_public(entry, track),
        track_info=TrackPublic.model_validate(track),
        description=entry.description,
        owner=None if owner is None else owner.name,
        trainer=entry.trainer,
        recipe=entry.recipe,
        run_config=entry.run_config,
        plan=entry.plan,
        claimed_runs=claimed_public,
        verified_runs=verified_public,
        reported_runs=[run_public(r) for r in reported],
        core_tasks=_core_tasks(claimed_public, verified_public),
        clock_rule=clock_rule(track.clock_tolerance),
        val_bpb_note=val_bpb_note(entry, verified),
        curves=curves,
        hardware=None if hardware_run is None else hardware_run.hardware,
        artifacts=artifacts,
        verifications=[
            verification_public(
                v,
                [
                    run_public(r, track.clock_tolerance)
                    for r in runs
                    if r.verification_id == v.id and r.kind == RunKind.verified
                ],
            )
            for v in verifications
        ],
        jobs=jobs,
        retracted_reason=entry.retracted_reason,
        reviewed_by=None if reviewer is None else reviewer.name,
        reviewed_at=entry.reviewed_at,
        counted_verifications=len(counted) if isinstance(counted, list) else 0,
        created_at=entry.created_at,
    )


def progression_point(e: Entry, *, is_record: bool) -> ProgressionPointPublic:
    """One ranked row (verified or reported, with hours) as a point of the progression."""
    assert e.hours is not None
    gpus = max(1, e.gpus_per_node) * e.nodes if e.gpus_per_node else 0
    return ProgressionPointPublic(
        entry_id=e.id,
        url=entry_url(e.id),
        title=e.title,
        date=e.record_date,
        hours=e.hours,
        cost_usd=e.cost_usd,
        core_mean=e.core_mean,
        section=_section(e.status),
        hardware_class=e.hardware_class,
        gpus=gpus,
        rules_version=e.rules_version,
        is_record=is_record,
        flops=e.flops,
        floor_hours=None if e.flops is None else _hours(floor_seconds(e.flops, e.hardware_class, gpus)),
    )


def progression(session: Session, track_slug: str) -> ProgressionPublic:
    """The record over time: every ranked row with hours, by date; a record beats all earlier ones."""
    return cached(session, ("progression", track_slug), lambda: _progression(session, track_slug))


def _progression(session: Session, track_slug: str) -> ProgressionPublic:
    track = get_track_row(session, track_slug)
    points: list[ProgressionPointPublic] = []
    best = math.inf
    for e in repository.board_points(session, track.id):
        assert e.hours is not None
        points.append(progression_point(e, is_record=e.hours < best))
        best = min(best, e.hours)
    return ProgressionPublic(
        track=TrackPublic.model_validate(track), points=points, records=[p for p in points if p.is_record]
    )
