"""Verification jobs: the queue that GPU workers lease from."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leaderboard.db import Base, utcnow


class JobStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


class Job(Base):
    """A verification job (k runs), or one of its run jobs: workers lease runs, never the job.

    A verification job has ``run_index`` None and ``runs`` = k; each of its k run jobs has its
    ``parent_id``, its ``run_index`` in 0..k-1, ``runs`` = 1 and the seed the site picked for it.
    A run job holds the lease while a worker trains and scores that one run, then keeps the
    worker's report of it (``report``) until all k are in and the site pools them."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), default=None, index=True, doc="the verification job of a run job"
    )
    run_index: Mapped[int | None] = mapped_column(default=None, doc="0-based run of the verification (run jobs)")
    seed: Mapped[int | None] = mapped_column(default=None, doc="the seed the site picked for this run (run jobs)")
    report: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, doc="a run job's completed report and artifact refs, until the verification is pooled"
    )
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id"))
    status: Mapped[JobStatus] = mapped_column(Enum(JobStatus, native_enum=False, length=20, validate_strings=True))
    reason: Mapped[str] = mapped_column(String(30), doc="'submission' or 'reverify'")
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    runs: Mapped[int] = mapped_column(doc="k: runs with distinct seeds")
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None, doc="worker_id of the lease")
    lease_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    lease_token_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    leased_at: Mapped[datetime | None] = mapped_column(default=None, doc="when the current lease began")
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    failure_reason: Mapped[str | None] = mapped_column(Text, default=None)
    log_tail: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class LeaseOutcome(StrEnum):
    completed = "completed"
    failed = "failed"  # the worker gave the run back (retryable: shutting down, other hardware)
    errored = "errored"  # the worker found the run broken (an error report, or a failure not retryable)
    abandoned = "abandoned"  # the lease expired without a word from the worker
    timed_out = "timed_out"  # the job ran past its track's maximum duration


class LeaseRecord(Base):
    """One lease of a job: who held it and how it ended (the job's attempt history)."""

    __tablename__ = "job_leases"

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    worker_id: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    leased_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[LeaseOutcome | None] = mapped_column(
        Enum(LeaseOutcome, native_enum=False, length=20, validate_strings=True), default=None
    )


class WorkerAccount(Base):
    """A worker token's standing in the queue: abandoned leases, and the pause admins can lift."""

    __tablename__ = "worker_accounts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    abandoned: Mapped[int] = mapped_column(
        default=0, doc="leases in a row that failed or expired without a word (a completed one resets it)"
    )
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    paused_reason: Mapped[str | None] = mapped_column(Text, default=None)
    last_worker_id: Mapped[str | None] = mapped_column(String(100), default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
