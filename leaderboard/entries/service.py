"""The board's rules: reading leaderboards, entries and the record progression; submitting;
re-verification and retraction; applying a verification report and recomputing ranks.

Every read returns a ``*Public`` schema (the ``/api`` JSON twin of a page). Writes flush, audit
admin actions, and bump the board revision; the request's session commits.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from leaderboard.artifacts.models import EntryArtifact
from leaderboard.artifacts.schemas import ArtifactPublic
from leaderboard.artifacts.service import artifact_url, store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.audit.service import record
from leaderboard.cache import cached
from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.metrics import read_curve
from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Submission, Verification
from leaderboard.entries.ranking import Rankable, compute_floor_hours, cost_usd, mean_std, one_sided_p_value, rank
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
    Section,
    VerificationPublic,
)
from leaderboard.errors import Conflict, Forbidden, Invalid, NotFound, RateLimited
from leaderboard.jobs import repository as jobs_repository
from leaderboard.jobs.models import Job, JobStatus
from leaderboard.jobs.schemas import JobPublic
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.tracks.models import Track
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.tracks.service import get_track_row, track_rules
from leaderboard.users.models import Role, User
from leaderboard.users.service import Principal
from submissions.protocol import ENTRY_PAGE, ArtifactRef, SubmissionAccepted
from submissions.schema import RunResult, VerificationReport
from submissions.schema import Submission as SubmissionModel

# ----------------------------------------------------------------------------- reading


def entry_url(entry_id: int) -> str:
    return ENTRY_PAGE.format(entry_id=entry_id)


def _section(status: EntryStatus) -> Section:
    if status == EntryStatus.verified:
        return "verified"
    if status == EntryStatus.reported:
        return "reported"
    return "unranked"


def entry_public(entry: Entry, track: Track, sort: str | None = None) -> EntryPublic:
    sort = sort or track.ranking
    gpus = max(1, entry.gpus_per_node) * entry.nodes if entry.gpus_per_node else 0
    return EntryPublic(
        id=entry.id,
        url=entry_url(entry.id),
        track=track.slug,
        section=_section(entry.status),
        rank=entry.rank_time if sort == "time" else entry.rank_cost,
        rank_time=entry.rank_time,
        rank_cost=entry.rank_cost,
        status=entry.status,
        badge=entry.status.value,
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
    conditions = repository.board_filter(track.id, q.status, q.hardware, q.rules_version)
    total = repository.board_count(session, conditions)
    rows = repository.board_page(session, conditions, sort, q.per_page, (q.page - 1) * q.per_page)
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
        rows=[entry_public(e, track, sort) for e in rows],
        hardware_options=repository.distinct_values(session, track.id, "hardware"),
        rules_versions=repository.distinct_values(session, track.id, "rules"),
    )


def get_entry_row(session: Session, entry_id: int) -> Entry:
    entry = session.get(Entry, entry_id)
    if entry is None:
        raise NotFound(f"no entry {entry_id}")
    return entry


def run_public(run: Run) -> RunPublic:
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
        core_tasks=run.core_tasks,
        mfu=run.mfu,
        hardware=run.hardware,
        result_sha256=run.result_sha256,
        metrics_sha256=run.metrics_sha256,
        verification_id=run.verification_id,
        created_at=run.created_at,
    )


def verification_public(v: Verification) -> VerificationPublic:
    deltas = v.report.get("deltas") if isinstance(v.report, dict) else None
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
        report_sha256=v.report_sha256,
        created_at=v.created_at,
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


def _mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else None


def _core_tasks(claimed: Sequence[Run], verified: Sequence[Run]) -> list[CoreTaskPublic]:
    names: dict[str, None] = {}
    for run in [*claimed, *verified]:
        for task in run.core_tasks or {}:
            names.setdefault(task)

    def mean_of(runs: Sequence[Run], task: str) -> float | None:
        return _mean((r.core_tasks or {}).get(task) for r in runs)

    return [CoreTaskPublic(task=t, claimed=mean_of(claimed, t), verified=mean_of(verified, t)) for t in names]


def entry_detail(session: Session, entry_id: int, store: ArtifactStore | None = None) -> EntryDetailPublic:
    """Everything the entry page shows; curves are read from the stored metrics artifacts."""
    entry = get_entry_row(session, entry_id)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    runs = repository.runs_of(session, entry.id)
    verifications = repository.verifications_of(session, entry.id)
    latest = verifications[0].id if verifications else None
    claimed = [r for r in runs if r.kind == RunKind.claimed]
    verified = [r for r in runs if r.kind == RunKind.verified and r.verification_id == latest]
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
    hardware_run = next((r for r in [*verified, *claimed, *reported] if r.hardware), None)
    return EntryDetailPublic(
        entry=entry_public(entry, track),
        track_info=TrackPublic.model_validate(track),
        description=entry.description,
        owner=None if owner is None else owner.name,
        trainer=entry.trainer,
        recipe=entry.recipe,
        run_config=entry.run_config,
        plan=entry.plan,
        claimed_runs=[run_public(r) for r in claimed],
        verified_runs=[run_public(r) for r in verified],
        reported_runs=[run_public(r) for r in reported],
        core_tasks=_core_tasks(claimed, verified),
        curves=curves,
        hardware=None if hardware_run is None else hardware_run.hardware,
        artifacts=artifacts,
        verifications=[verification_public(v) for v in verifications],
        jobs=jobs,
        retracted_reason=entry.retracted_reason,
        created_at=entry.created_at,
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
        gpus = max(1, e.gpus_per_node) * e.nodes if e.gpus_per_node else 0
        is_record = e.hours < best
        best = min(best, e.hours)
        points.append(
            ProgressionPointPublic(
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
                is_record=is_record,
                flops=e.flops,
                floor_hours=compute_floor_hours(e.flops, e.hardware_class, gpus),
            )
        )
    return ProgressionPublic(
        track=TrackPublic.model_validate(track), points=points, records=[p for p in points if p.is_record]
    )


# ----------------------------------------------------------------------------- submitting


def body_digest(submission: SubmissionModel) -> str:
    return hashlib.sha256(submission.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class SubmitOutcome:
    accepted: SubmissionAccepted
    created: bool  # False: an idempotent replay of an earlier submission


def _accepted(session: Session, submission: Submission, base_url: str) -> SubmissionAccepted:
    entry = repository.entry_of_submission(session, submission.id)
    assert entry is not None, "a submission always has its entry"
    job = jobs_repository.first_job_of_entry(session, entry.id)
    return SubmissionAccepted(
        submission_id=submission.id,
        entry_id=entry.id,
        job_id=None if job is None else job.id,
        status=entry.status.value,
        url=base_url + entry_url(entry.id),
    )


def _prescreen(track: Track, sub: SubmissionModel) -> None:
    """The checks that run before any GPU time is spent; each failure names its field (422)."""
    rules = track_rules(track)
    cfg = sub.run_config
    why = rules.allows_hardware(cfg.hardware_class, cfg.gpus_per_node, cfg.nodes)
    if why is not None:
        raise Invalid("run_config.hardware_class", why)
    for i, result in enumerate(sub.claimed_results):
        if result.rules_version != rules.rules_version:
            raise Invalid(
                f"claimed_results.{i}.rules_version",
                f"track {track.slug} uses rules {rules.rules_version}, this run was timed under {result.rules_version}",
            )
        why = rules.allows_hardware(result.hardware.sku, result.hardware.device_count, result.hardware.nodes)
        if why is not None:
            raise Invalid(f"claimed_results.{i}.hardware", why)
        if rules.bundle_sha256 and result.core is not None and result.core.bundle_sha256 != rules.bundle_sha256:
            raise Invalid(f"claimed_results.{i}.core.bundle_sha256", "not the eval bundle this track pins")
    try:
        cfg.validate_overrides()
    except ValueError as exc:
        raise Invalid("run_config.overrides", str(exc)) from exc
    except ImportError:  # the reference trainer is not installed with this site: the verifier checks it
        pass


def _run_row(entry_id: int, kind: RunKind, result: RunResult, result_sha256: str | None) -> Run:
    return Run(
        entry_id=entry_id,
        kind=kind,
        run_id=result.run_id,
        seed=result.seed,
        training_seconds=result.training_seconds,
        wall_seconds=result.wall_seconds,
        steps=result.steps,
        tokens=result.tokens,
        flops=result.flops,
        val_bpb=result.val_bpb,
        core=result.core_score,
        core_tasks=None if result.core is None else {k: t.accuracy for k, t in result.core.tasks.items()},
        mfu=result.mfu,
        hardware=result.hardware.model_dump(mode="json"),
        result_sha256=result_sha256,
        metrics_sha256=result.digests.metrics_log_sha256,
    )


def submit(
    session: Session,
    principal: Principal,
    sub: SubmissionModel,
    *,
    store: ArtifactStore,
    base_url: str,
    max_attempts: int = 3,
    rate_per_minute: int | None = None,
) -> SubmitOutcome:
    """Store a submission, its entry, claimed runs and logs, and queue its verification.

    The same idempotency key with the same body replays the first reply (``created=False``);
    with another body it is a Conflict (409). Nothing is stored when a check fails.
    """
    user = principal.user
    if user.role not in (Role.submitter, Role.admin):
        raise Forbidden(f"this action needs the role submitter or admin; your token has the role {user.role.value}")
    digest = body_digest(sub)
    existing = repository.submission_by_key(session, user.id, sub.idempotency_key)
    if existing is not None:
        return _replay(session, existing, digest, base_url)
    if rate_per_minute is not None:
        recent = repository.submissions_since(session, principal.token_id, utcnow() - timedelta(minutes=1))
        if recent >= rate_per_minute:
            raise RateLimited(
                f"at most {rate_per_minute} submissions per minute per token; try again in a minute",
                headers={"Retry-After": "60"},
            )
    track = tracks_repository.by_slug(session, sub.track)
    if track is None:
        raise Invalid("track", f"no track {sub.track!r}")
    _prescreen(track, sub)

    log_digests: dict[str, str] = {}
    for log in sub.logs:
        log_digests[log.name] = store_bytes(session, store, log.content.encode(), "log").sha256
    body = sub.model_dump(mode="json")
    body["logs"] = [{"name": name, "sha256": sha} for name, sha in log_digests.items()]

    submission_id = repository.insert_submission_once(
        session,
        user_id=user.id,
        token_id=principal.token_id,
        idempotency_key=sub.idempotency_key,
        body_sha256=digest,
        body=body,
    )
    if submission_id is None:  # a concurrent request with this key won the insert
        existing = repository.submission_by_key(session, user.id, sub.idempotency_key)
        assert existing is not None
        return _replay(session, existing, digest, base_url)

    claimed = sub.claimed_results
    cfg = sub.run_config
    first = claimed[0]
    entry = Entry(
        track_id=track.id,
        submission_id=submission_id,
        owner_id=user.id,
        status=EntryStatus.pending,
        title=sub.title,
        description=sub.description,
        contributors=list(sub.contributors),
        run_config=cfg.model_dump(mode="json"),
        plan=first.plan,
        trainer=cfg.trainer.label(),
        recipe=cfg.recipe,
        hardware_class=cfg.hardware_class,
        gpus_per_node=cfg.gpus_per_node,
        nodes=cfg.nodes,
        rules_version=track.rules_version,
        commit=first.trainer_commit or cfg.trainer.commit,
        record_date=utcnow().date(),
        claimed_hours=_mean(r.training_hours for r in claimed),
        claimed_core=_mean(r.core_score for r in claimed),
        claimed_val_bpb=_mean(r.val_bpb for r in claimed),
        claimed_runs=len(claimed),
        flops=first.flops,
    )
    session.add(entry)
    session.flush()
    for result in claimed:
        art = store_bytes(session, store, result.model_dump_json(indent=2).encode(), "result")
        session.add(_run_row(entry.id, RunKind.claimed, result, art.sha256))
        _link(session, entry.id, None, f"claimed/{result.run_id}/result.json", "result", art.sha256, "submission")
    for name, sha in log_digests.items():
        kind = "metrics" if name.endswith(".jsonl") else "log"
        _link(session, entry.id, None, f"logs/{name}", kind, sha, "submission")
    job = _queue_job(session, entry, track, user, "submission", max_attempts)
    bump_revision(session)
    accepted = SubmissionAccepted(
        submission_id=submission_id,
        entry_id=entry.id,
        job_id=job.id,
        status=entry.status.value,
        url=base_url + entry_url(entry.id),
    )
    return SubmitOutcome(accepted=accepted, created=True)


def _replay(session: Session, existing: Submission, digest: str, base_url: str) -> SubmitOutcome:
    if existing.body_sha256 != digest:
        raise Conflict("this idempotency key was used for a different submission; use a new key")
    return SubmitOutcome(accepted=_accepted(session, existing, base_url), created=False)


def _queue_job(session: Session, entry: Entry, track: Track, user: User, reason: str, max_attempts: int) -> Job:
    """A queued verification job of ``entry``: the track's min_runs runs, up to ``max_attempts`` leases."""
    job = Job(
        entry_id=entry.id,
        track_id=track.id,
        status=JobStatus.queued,
        reason=reason,
        requested_by_id=user.id,
        runs=track.min_runs,
        max_attempts=max_attempts,
    )
    session.add(job)
    session.flush()
    return job


def _link(session: Session, entry_id: int, job_id: int | None, name: str, kind: str, sha: str, source: str) -> None:
    session.add(EntryArtifact(entry_id=entry_id, job_id=job_id, sha256=sha, name=name[:200], kind=kind, source=source))


# ----------------------------------------------------------------------------- owner and admin actions


def can_request_reverification(user: User | None, entry: EntryPublic | Entry, owner_id: int | None = None) -> bool:
    """Whether ``user`` may ask for a re-verification of the entry (its owner, or an admin)."""
    if user is None:
        return False
    status = entry.status
    if status in (EntryStatus.reported, EntryStatus.retracted):
        return False
    if user.role == Role.admin:
        return True
    oid = entry.owner_id if isinstance(entry, Entry) else owner_id
    return user.role == Role.submitter and oid is not None and oid == user.id


def request_reverification(
    session: Session, user: User, entry_id: int, *, reason: str = "", max_attempts: int = 3
) -> JobPublic:
    """Queue a new verification job for an entry (owner or admin; audited)."""
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.reported:
        raise Conflict("imported history is reported, not verifiable here: it has no run config to reproduce")
    if entry.status == EntryStatus.retracted:
        raise Conflict("this entry was retracted")
    if user.role != Role.admin and entry.owner_id != user.id:
        raise Forbidden("only the entry's owner or an admin can request a re-verification")
    if jobs_repository.active_job_of_entry(session, entry.id) is not None:
        raise Conflict("a verification of this entry is already queued or running")
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    job = _queue_job(session, entry, track, user, "reverify", max_attempts)
    record(session, user, "entry.reverify", "entry", entry.id, job_id=job.id, reason=reason)
    bump_revision(session)
    return job_public(job, entry, track.slug)


def retract(session: Session, admin: User, entry_id: int, reason: str) -> EntryPublic:
    """Withdraw an entry from the board (admin; audited); its queued jobs are cancelled."""
    if admin.role != Role.admin:
        raise Forbidden("only an admin can retract an entry")
    entry = get_entry_row(session, entry_id)
    if entry.status == EntryStatus.retracted:
        raise Conflict("this entry is retracted already")
    before = entry.status.value
    entry.status = EntryStatus.retracted
    entry.retracted_reason = reason
    entry.updated_at = utcnow()
    session.execute(
        update(Job)
        .where(Job.entry_id == entry.id, Job.status == JobStatus.queued)
        .values(status=JobStatus.cancelled, finished_at=utcnow(), failure_reason="entry retracted")
    )
    session.execute(
        update(Job).where(Job.entry_id == entry.id, Job.status == JobStatus.running).values(cancel_requested=True)
    )
    session.flush()
    recompute_ranks(session, entry.track_id)
    record(session, admin, "entry.retract", "entry", entry.id, reason=reason, status_before=before)
    bump_revision(session)
    track = tracks_repository.by_id(session, entry.track_id)
    assert track is not None
    return entry_public(entry, track)


# ----------------------------------------------------------------------------- verification and ranks


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


@dataclass(frozen=True)
class VerificationChecks:
    verdict: str
    reasons: list[str]


def _run_config_without_seed(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg.items() if k != "seed"}


def check_report(track: Track, entry: Entry, report: VerificationReport) -> VerificationChecks:
    """The site's own reading of a report: it never upgrades a verdict, and downgrades a
    'verified' that breaks a rule (too few runs, repeated seeds, wrong hardware, p >= alpha)."""
    rules = track_rules(track)
    reasons = list(report.reasons)
    problems: list[str] = []
    inconclusive: list[str] = []
    if report.track != track.slug:
        problems.append(f"report is for track {report.track}, the entry is on {track.slug}")
    if _run_config_without_seed(report.run_config.model_dump(mode="json")) != _run_config_without_seed(
        entry.run_config
    ):
        problems.append("report.run_config differs from the entry's run config")
    runs = report.runs
    seeds = [r.seed for r in runs]
    if len(set(seeds)) != len(seeds):
        inconclusive.append(f"seeds repeat across runs: {seeds}")
    if len(runs) < rules.min_runs:
        inconclusive.append(f"{len(runs)} verified runs, the track needs {rules.min_runs}")
    for i, r in enumerate(runs):
        if r.rules_version != rules.rules_version:
            problems.append(f"runs[{i}] timed under {r.rules_version}, the track uses {rules.rules_version}")
        why = rules.allows_hardware(r.hardware.sku, r.hardware.device_count, r.hardware.nodes)
        if why is not None:
            problems.append(f"runs[{i}]: {why}")
    cores = [r.core_score for r in runs]
    if runs and any(c is None for c in cores):
        inconclusive.append("some verified runs have no CORE score")
    values = [c for c in cores if c is not None]
    if values and len(values) >= 2 and not inconclusive:
        p = one_sided_p_value(values, rules.threshold)
        mean, _ = mean_std(values)
        if p is None or p >= rules.alpha or mean <= rules.threshold:
            problems.append(f"mean CORE {mean:.4f} vs threshold {rules.threshold}: p = {p} is not below {rules.alpha}")
    verdict = report.verdict.value
    if verdict != "verified":  # the site never upgrades; the verifier's own reasons stand
        return VerificationChecks(verdict=verdict, reasons=reasons)
    if problems:
        verdict = "failed"
    elif inconclusive:
        verdict = "inconclusive"
    site_reasons = [f"site check: {m}" for m in [*problems, *inconclusive]]
    return VerificationChecks(verdict=verdict, reasons=reasons + site_reasons)


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
    val_bpb = _mean(r.val_bpb for r in runs)
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
        _link(session, entry.id, job.id, name, "report", report_art.sha256, "verification")
    for result in runs:
        art = store_bytes(session, store, result.model_dump_json(indent=2).encode(), "result")
        run = _run_row(entry.id, RunKind.verified, result, art.sha256)
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
