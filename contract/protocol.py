"""The HTTP protocol between `speedrun submit` / `speedrun worker` and the leaderboard service.

Both sides import these paths and bodies; the site implements them, the client speaks them.
Auth: ``Authorization: Bearer <token>`` on every call below. Errors come back as
``{"error": <code>, "detail": <message or list>}`` with a 4xx/5xx status.

Submitting (role submitter or admin):
  POST {SUBMISSIONS}                 body Submission          -> 201 SubmissionAccepted
                                     (same idempotency key + same body again -> 200, same reply;
                                      same key, other body -> 409)
Worker (role worker):
  POST {LEASE}                       body LeaseRequest        -> 200 JobLease | 204 no job
  POST {HEARTBEAT}                   body Heartbeat           -> 200 HeartbeatReply
                                     (409 when the lease expired or was taken over)
  POST {ARTIFACTS}?name=&kind=       raw bytes, header X-Lease-Token -> 201 ArtifactRef
  POST {COMPLETE}                    body JobComplete         -> 200 JobState
  POST {FAIL}                        body JobFail             -> 200 JobState
                                     A lease is ONE run of a verification job: the worker trains and
                                     scores run run_index with the site's seed and completes it with a
                                     one-run report; the site pools the k runs when all are in, and counts
                                     them when they come from the track's min_worker_accounts accounts.
Public:
  GET  {ARTIFACT}                    -> the bytes, by sha256 content digest
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from contract.schema import (
    Contract,
    Count,
    Document,
    HardwareFingerprint,
    RunConfig,
    RunResult,
    Sha256,
    VerificationReport,
)
from contract.tracks import TrackRules

SUBMISSIONS = "/api/submissions"
LEASE = "/api/worker/lease"
HEARTBEAT = "/api/worker/jobs/{job_id}/heartbeat"
ARTIFACTS = "/api/worker/jobs/{job_id}/artifacts"
COMPLETE = "/api/worker/jobs/{job_id}/complete"
FAIL = "/api/worker/jobs/{job_id}/fail"
ARTIFACT = "/api/artifacts/{sha256}"
ENTRY_PAGE = "/entries/{entry_id}"

LEASE_TOKEN_HEADER = "X-Lease-Token"
MAX_ARTIFACT_BYTES = 64 * 1024 * 1024

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ArtifactKind = Literal["result", "metrics", "log", "report", "other"]


class SubmissionAccepted(Contract):
    submission_id: int
    entry_id: int
    job_id: int | None = Field(description="the verification job queued for it")
    status: str
    url: str = Field(description="absolute URL of the entry page")


class LeaseRequest(Document):
    worker_id: str = Field(min_length=1, max_length=100)
    fingerprint: HardwareFingerprint
    tracks: list[str] | None = Field(default=None, description="only lease jobs of these tracks")


class JobLease(Contract):
    job_id: int
    lease_token: str
    lease_expires_at: datetime = Field(strict=False)
    lease_seconds: int = Field(gt=0)
    attempt: int = Field(ge=1)
    entry_id: int
    track: TrackRules
    run_config: RunConfig
    runs: int = Field(ge=1, description="k: how many runs with distinct seeds")
    claimed_results: list[RunResult]
    run_index: int | None = Field(
        default=None, ge=0, le=10_000, description="this lease is run run_index of the k (train and score only it)"
    )
    seed: int | None = Field(default=None, ge=0, lt=2**31, description="the seed the site picked for this run")
    verification_job_id: int | None = Field(default=None, description="the job this run belongs to (the queue's)")


class JobProgress(Contract):
    run_index: int = Field(ge=0, le=10_000, description="0-based index of the run in progress")
    runs: int = Field(ge=1, le=10_000)
    step: Count | None = None
    steps: Count | None = None
    eta_seconds: float | None = Field(default=None, ge=0, le=1e12, allow_inf_nan=False)
    message: str = Field(default="", max_length=500)


class Heartbeat(Document):
    lease_token: str
    progress: JobProgress


class HeartbeatReply(Contract):
    lease_expires_at: datetime = Field(strict=False)
    cancel: bool = False


class ArtifactRef(Contract):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$")
    kind: ArtifactKind
    sha256: Sha256
    size_bytes: Count
    content_type: str = "application/octet-stream"


class JobComplete(Document):
    lease_token: str
    report: VerificationReport
    artifacts: list[ArtifactRef] = Field(default_factory=list)


class JobFail(Document):
    lease_token: str
    reason: str = Field(min_length=1, max_length=2000)
    log_tail: str = Field(default="", max_length=64_000)
    retryable: bool = Field(default=False, description="True: requeue (e.g. worker shutting down)")


class JobState(Contract):
    job_id: int
    status: JobStatus
    attempts: int
    failure_reason: str | None = None
