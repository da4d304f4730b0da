"""Submissions (what came in), entries (what the board shows), runs and verifications."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, Enum, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from leaderboard.db import Base, utcnow


class EntryStatus(StrEnum):
    pending = "pending"  # submitted, waiting for (or under) verification
    verified = "verified"  # the verifier's runs pass the track's rule: ranked
    failed = "failed"  # the verifier's runs completed and the rule does not hold
    inconclusive = "inconclusive"  # too few runs or repeated seeds to decide
    error = "error"  # verification could not produce valid runs
    rejected = "rejected"  # the report broke a rule of the site (its runs are not the entry's runs)
    awaiting_review = "awaiting_review"  # verified fork on a track that reviews code: unranked until approved
    retracted = "retracted"  # withdrawn by an admin
    reported = "reported"  # imported public history: shown, marked, never verified here


class RunKind(StrEnum):
    claimed = "claimed"  # in the submission
    verified = "verified"  # produced by a verification job
    reported = "reported"  # imported history


class Submission(Base):
    __tablename__ = "submissions"
    __table_args__ = (UniqueConstraint("user_id", "idempotency_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(128))
    body_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the Submission, without the log contents")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        Index("ix_entries_board_time", "track_id", "status", "rank_time"),
        Index("ix_entries_board_cost", "track_id", "status", "rank_cost"),
        Index("ix_entries_claimed", "track_id", "claimed_hours"),  # duplicates of a claim (entry pages)
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id"), index=True)
    submission_id: Mapped[int | None] = mapped_column(ForeignKey("submissions.id", ondelete="SET NULL"), unique=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    status: Mapped[EntryStatus] = mapped_column(Enum(EntryStatus, native_enum=False, length=20, validate_strings=True))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contributors: Mapped[list[str]] = mapped_column(JSON)
    run_config: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None, doc="resolved plan of the claim")
    trainer: Mapped[str] = mapped_column(String(600), default="")
    recipe: Mapped[str] = mapped_column(String(64), default="")
    hardware_class: Mapped[str] = mapped_column(String(64))
    gpus_per_node: Mapped[int] = mapped_column(default=0)
    nodes: Mapped[int] = mapped_column(default=1)
    rules_version: Mapped[str] = mapped_column(String(32))
    commit: Mapped[str | None] = mapped_column(String(40), default=None)
    record_date: Mapped[date] = mapped_column(Date, doc="submission date, or the reported date")
    # what the submitter claimed (means over the claimed runs)
    claimed_hours: Mapped[float | None] = mapped_column(Float, default=None)
    claimed_core: Mapped[float | None] = mapped_column(Float, default=None)
    claimed_val_bpb: Mapped[float | None] = mapped_column(Float, default=None)
    claimed_runs: Mapped[int] = mapped_column(default=0)
    # what counts: the latest verification's figures (or the reported figures of imported history)
    hours: Mapped[float | None] = mapped_column(Float, default=None)
    hours_std: Mapped[float | None] = mapped_column(Float, default=None)
    core_mean: Mapped[float | None] = mapped_column(Float, default=None)
    core_std: Mapped[float | None] = mapped_column(Float, default=None)
    core_n: Mapped[int | None] = mapped_column(default=None)
    p_value: Mapped[float | None] = mapped_column(Float, default=None)
    val_bpb: Mapped[float | None] = mapped_column(Float, default=None)
    flops: Mapped[float | None] = mapped_column(Float, default=None, doc="FLOPs of one run")
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    price_usd_per_gpu_hour: Mapped[float | None] = mapped_column(Float, default=None)
    price_sku: Mapped[str | None] = mapped_column(String(64), default=None)
    price_date: Mapped[date | None] = mapped_column(Date, default=None)
    reported_cost_note: Mapped[str | None] = mapped_column(String(200), default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    rank_time: Mapped[int | None] = mapped_column(default=None, doc="rank in its section by hours")
    rank_cost: Mapped[int | None] = mapped_column(default=None, doc="rank in its section by dollars")
    retracted_reason: Mapped[str | None] = mapped_column(Text, default=None)
    pool: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, doc="the counted verifications and what the site derived from them (pool.py)"
    )
    # code review of a fork (tracks with fork_review 'required'): None (not needed), 'pending', 'approved'
    review_status: Mapped[str | None] = mapped_column(String(20), default=None)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    reviewed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Verification(Base):
    """One verification report received for an entry (the history of its verdicts)."""

    __tablename__ = "verifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    verifier_id: Mapped[str] = mapped_column(String(100))
    reported_verdict: Mapped[str] = mapped_column(String(20), doc="what the verifier said")
    verdict: Mapped[str] = mapped_column(String(20), doc="what the site decided after its own checks")
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    hours_mean: Mapped[float | None] = mapped_column(Float, default=None)
    hours_std: Mapped[float | None] = mapped_column(Float, default=None)
    core_mean: Mapped[float | None] = mapped_column(Float, default=None)
    core_std: Mapped[float | None] = mapped_column(Float, default=None)
    core_n: Mapped[int | None] = mapped_column(default=None)
    p_value: Mapped[float | None] = mapped_column(Float, default=None)
    val_bpb_mean: Mapped[float | None] = mapped_column(Float, default=None)
    cost_usd: Mapped[float | None] = mapped_column(Float, default=None)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    site: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, doc="what the site derived itself: pool, alpha applied, deltas, clock, sealed"
    )
    report_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    workers: Mapped[dict[str, Any] | None] = mapped_column(
        JSON, default=None, doc="which worker account ran each run, and where accounts disagree (jobs.runs)"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    verification_id: Mapped[int | None] = mapped_column(
        ForeignKey("verifications.id", ondelete="CASCADE"), default=None, index=True
    )
    kind: Mapped[RunKind] = mapped_column(Enum(RunKind, native_enum=False, length=20, validate_strings=True))
    run_id: Mapped[str] = mapped_column(String(100), default="")
    seed: Mapped[int | None] = mapped_column(default=None)
    training_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    wall_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    steps: Mapped[int | None] = mapped_column(BigInteger, default=None)
    tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    flops: Mapped[float | None] = mapped_column(Float, default=None)
    val_bpb: Mapped[float | None] = mapped_column(Float, default=None)
    core: Mapped[float | None] = mapped_column(Float, default=None)
    core_tasks: Mapped[dict[str, float] | None] = mapped_column(JSON, default=None, doc="task -> accuracy")
    mfu: Mapped[float | None] = mapped_column(Float, default=None)
    hardware: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    metrics_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    # speedrun-v2 verified runs: the trainer's own timed region (v1) beside the verifier's clock
    # (training_seconds), and whether the VERIFIER found them apart (the site judges again on display)
    self_reported_training_seconds: Mapped[float | None] = mapped_column(Float, default=None)
    clock_disagrees: Mapped[bool | None] = mapped_column(default=None)
    val_bpb_note: Mapped[str | None] = mapped_column(
        String(300), default=None, doc="the result's software['val_bpb']: how its val_bpb counts bytes"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
