"""Submitting: the pre-screen before any GPU time, the idempotent insert of a submission, its entry,
claimed runs and logs, and its first verification job."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from contract.protocol import SubmissionAccepted
from contract.schema import Submission as SubmissionModel
from leaderboard.artifacts.service import store_bytes
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.entries import repository
from leaderboard.entries.board import entry_url
from leaderboard.entries.models import Entry, EntryStatus, RunKind, Submission
from leaderboard.entries.preflight import preflight
from leaderboard.entries.records import link_artifact, mean_of_present, queue_job, run_row
from leaderboard.entries.schemas import PreflightPublic
from leaderboard.errors import Conflict, Forbidden, Invalid, RateLimited
from leaderboard.jobs import repository as jobs_repository
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository as tracks_repository
from leaderboard.users.models import Role
from leaderboard.users.ratelimit import take
from leaderboard.users.service import Principal


def body_digest(submission: SubmissionModel) -> str:
    """SHA-256 of the submission as canonical JSON (sorted keys, no spaces): the same document sent
    again with its keys in another order or other whitespace replays instead of conflicting."""
    canonical = json.dumps(submission.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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


def _submitter(principal: Principal) -> None:
    if principal.user.role not in (Role.submitter, Role.admin):
        role = principal.user.role.value
        raise Forbidden(f"this action needs the role submitter or admin; your token has the role {role}")


def dry_run(
    session: Session, principal: Principal, sub: SubmissionModel, *, allow_local_git_urls: bool = False
) -> PreflightPublic:
    """Every check ``submit`` runs before storing anything, and nothing stored: what
    ``speedrun submit --dry-run`` asks of the site (the same refusals, the same statuses)."""
    _submitter(principal)
    track = tracks_repository.by_slug(session, sub.track)
    if track is None:
        raise Invalid("track", f"no track {sub.track!r}")
    return preflight(session, principal.user, track, sub, allow_local=allow_local_git_urls)


def submit(
    session: Session,
    principal: Principal,
    sub: SubmissionModel,
    *,
    store: ArtifactStore,
    base_url: str,
    max_attempts: int = 3,
    rate_per_minute: int | None = None,
    allow_local_git_urls: bool = False,
) -> SubmitOutcome:
    """Store a submission, its entry, claimed runs and logs, and queue its verification.

    The same idempotency key with the same body replays the first reply (``created=False``);
    with another body it is a Conflict (409). Nothing is stored when a check fails.
    """
    user = principal.user
    _submitter(principal)
    digest = body_digest(sub)
    existing = repository.submission_by_key(session, user.id, sub.idempotency_key)
    if existing is not None:
        return _replay(session, existing, sub, digest, base_url)
    # one atomic database counter per token, correct across processes (every attempt counts)
    if rate_per_minute is not None and not take(
        session, f"submit:{principal.token_id}", limit=rate_per_minute, window_seconds=60
    ):
        raise RateLimited(
            f"at most {rate_per_minute} submissions per minute per token; try again in a minute",
            headers={"Retry-After": "60"},
        )
    track = tracks_repository.by_slug(session, sub.track)
    if track is None:
        raise Invalid("track", f"no track {sub.track!r}")
    preflight(session, user, track, sub, allow_local=allow_local_git_urls)

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
        return _replay(session, existing, sub, digest, base_url)

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
        claimed_hours=mean_of_present(r.training_hours for r in claimed),
        claimed_core=mean_of_present(r.core_score for r in claimed),
        claimed_val_bpb=mean_of_present(r.val_bpb for r in claimed),
        claimed_runs=len(claimed),
        flops=first.flops,
    )
    session.add(entry)
    session.flush()
    for result in claimed:
        art = store_bytes(session, store, result.model_dump_json(indent=2).encode(), "result")
        session.add(run_row(entry.id, RunKind.claimed, result, art.sha256))
        link_artifact(
            session, entry.id, None, f"claimed/{result.run_id}/result.json", "result", art.sha256, "submission"
        )
    for name, sha in log_digests.items():
        kind = "metrics" if name.endswith(".jsonl") else "log"
        link_artifact(session, entry.id, None, f"logs/{name}", kind, sha, "submission")
    job = queue_job(session, entry, track, user, "submission", max_attempts)
    bump_revision(session)
    accepted = SubmissionAccepted(
        submission_id=submission_id,
        entry_id=entry.id,
        job_id=job.id,
        status=entry.status.value,
        url=base_url + entry_url(entry.id),
    )
    return SubmitOutcome(accepted=accepted, created=True)


def _replay(session: Session, existing: Submission, sub: SubmissionModel, digest: str, base_url: str) -> SubmitOutcome:
    # rows stored before the digest was canonical hold the digest of the model's own serialization
    legacy = hashlib.sha256(sub.model_dump_json().encode()).hexdigest()
    if existing.body_sha256 not in (digest, legacy):
        raise Conflict("this idempotency key was used for a different submission; use a new key")
    return SubmitOutcome(accepted=_accepted(session, existing, base_url), created=False)
