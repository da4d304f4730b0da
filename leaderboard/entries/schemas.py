"""API shapes of the board: leaderboard rows, entry detail, runs, verifications, progression."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import Field

from contract.schema import Sha256
from leaderboard.artifacts.schemas import ArtifactPublic
from leaderboard.entries.models import EntryStatus
from leaderboard.jobs.schemas import JobPublic
from leaderboard.schemas import Schema
from leaderboard.tracks.schemas import TrackPublic
from leaderboard.urls import AbsoluteUrl, Money

Section = Literal["verified", "reported", "unranked"]
SortKey = Literal["time", "cost", "core", "date", "val_bpb", "p_value"]
StatusFilter = Literal[
    "ranked",
    "all",
    "pending",
    "verified",
    "awaiting_review",
    "failed",
    "inconclusive",
    "rejected",
    "error",
    "retracted",
    "reported",
]


class LeaderboardQuery(Schema):
    """Filters and paging of a leaderboard. ``status='ranked'`` (default) = verified + reported rows."""

    sort: SortKey | None = Field(
        default=None,
        description="time or cost (by rank), or core (high first), date (new first), val_bpb or p_value (low first), "
        "always within each section (verified, reported, unranked); default: the track's ranking",
    )
    q: str | None = Field(default=None, max_length=100, description="only titles or contributors containing this text")
    hardware: str | None = Field(default=None, max_length=64, description="only this hardware class")
    status: StatusFilter = "ranked"
    rules_version: str | None = Field(default=None, max_length=32)
    page: int = Field(default=1, ge=1, le=100_000)
    per_page: int = Field(default=50, ge=1, le=200)


class EntryPublic(Schema):
    """One row of a leaderboard (and the head of an entry page)."""

    id: int
    url: AbsoluteUrl
    track: str
    section: Section
    rank: int | None = Field(description="rank in its section under the current sort")
    rank_time: int | None
    rank_cost: int | None
    status: EntryStatus
    badge: str = Field(description="verified / reported / pending / failed / ... as shown on the row")
    title: str
    contributors: list[str]
    hardware_class: str
    gpus_per_node: int
    nodes: int
    gpus: int
    rules_version: str
    other_rules: bool = Field(description="rules version differs from the track's current one")
    hours: float | None = Field(description="mean verified (or reported) training hours")
    hours_std: float | None
    cost_usd: Money
    price_usd_per_gpu_hour: Money
    core_mean: float | None
    core_std: float | None
    core_n: int | None
    p_value: float | None
    val_bpb: float | None
    claimed_hours: float | None
    claimed_core: float | None
    record_date: date
    commit: str | None
    verified_at: datetime | None
    review_status: Literal["pending", "approved"] | None = Field(
        default=None, description="code review of a fork: pending (unranked until approved) or approved"
    )


class LeaderboardPublic(Schema):
    track: TrackPublic
    sort: SortKey
    hardware: str | None
    status: StatusFilter
    rules_version: str | None
    page: int
    per_page: int
    total: int
    pages: int
    rows: list[EntryPublic]
    hardware_options: list[str]
    rules_versions: list[str]


class RunPublic(Schema):
    id: int
    kind: str
    run_id: str
    seed: int | None
    training_seconds: float | None
    training_hours: float | None
    wall_seconds: float | None
    steps: int | None
    tokens: int | None
    flops: float | None
    val_bpb: float | None
    core: float | None
    core_tasks: dict[str, float] | None
    mfu: float | None
    hardware: dict[str, Any] | None
    result_sha256: str | None
    metrics_sha256: str | None
    verification_id: int | None
    self_reported_training_seconds: float | None = Field(
        default=None, description="speedrun-v2 verified runs: the trainer's own timed region (v1), never ranked"
    )
    clock_disagrees: bool | None = Field(default=None, description="the verifier found the two times apart")
    clock_flagged: bool | None = Field(
        default=None, description="the site finds the two times apart under the track's tolerance (clock_rule)"
    )
    clock_allowed_gap_seconds: float | None = Field(default=None, description="the gap not flagged for this run")
    val_bpb_note: str | None = Field(default=None, description="the result's own note on how val_bpb counts bytes")
    created_at: datetime


class SiteDerivedPublic(Schema):
    """What the site read in one verification (docs/RULES.md): never taken from the report's summary."""

    sealed: bool = Field(description="the verifier ran the submitted code in its sandbox")
    counted: bool = Field(description="its runs joined the entry's pool (not rejected, not an error)")
    rules_version: str | None = None
    pool_runs: int | None = Field(default=None, description="runs in the pool after this verification")
    looks: int | None = Field(default=None, description="counted verifications in the pool (k)")
    alpha_applied: float | None = Field(default=None, description="the track's alpha / k")
    p_value: float | None = Field(default=None, description="one-sided t-test over the pool")
    clock_flagged: bool = Field(default=False, description="self-reported time vs the verifier's clock")
    clock_notes: list[str] = Field(default_factory=list)
    clock_tolerance: float | None = None
    fork_diff: dict[str, Any] | None = Field(
        default=None, description="a fork's diff against the reference (files, lines, artifact sha256), for review"
    )
    accounts: int | None = Field(default=None, description="distinct worker accounts whose runs it holds")
    accounts_required: int | None = Field(
        default=None, description="the track's min_worker_accounts: fewer, and it counts nothing"
    )
    worker_flags: list[str] = Field(
        default_factory=list, description="where one worker account's runs disagree with the others' (for admins)"
    )


class OutcomePublic(Schema):
    """An entry's outcome in one line, from the code that ranks it (``entries/outcome.py``)."""

    kind: str = Field(description="record, ranked, reported, baseline, pending, awaiting_review, failed, retracted")
    headline: str = Field(description="e.g. 'V1 · record on <track> · 28.2% faster than #15', 'failed: p = 0.97'")
    rank_label: str | None = Field(default=None, description="V<n> (verified) or R<n> (reported) when ranked")
    margin_percent: float | None = Field(
        default=None, description="faster (+) than the record it beat, or behind (-) the record, in percent"
    )
    versus_entry_id: int | None = Field(default=None, description="the entry that margin is measured against")


class RunWorkerPublic(Schema):
    run_index: int
    account: str = Field(description="the worker account (its user name)")
    worker_id: str = Field(description="the node as the worker named itself")


class VerificationPublic(Schema):
    id: int
    job_id: int | None
    verifier_id: str
    reported_verdict: str
    verdict: str
    reasons: list[str]
    hours_mean: float | None
    hours_std: float | None
    core_mean: float | None
    core_std: float | None
    core_n: int | None
    p_value: float | None
    val_bpb_mean: float | None
    cost_usd: Money
    deltas: dict[str, Any] | None = Field(description="claim vs verified, computed by the site from the runs")
    site: SiteDerivedPublic | None = Field(description="what the site derived itself from this report")
    report_sha256: str | None
    created_at: datetime
    runs: list[RunPublic] = Field(default_factory=list, description="this verification's own runs")
    workers: list[RunWorkerPublic] = Field(
        default_factory=list, description="which worker account ran each run (run jobs leased one by one)"
    )


class CoreTaskPublic(Schema):
    task: str
    claimed: float | None = Field(description="mean accuracy over the claimed runs")
    verified: float | None = Field(description="mean accuracy over the latest verification's runs")


class CurvePointPublic(Schema):
    step: int | None
    training_seconds: float | None
    loss: float | None
    val_bpb: float | None


class CurvePublic(Schema):
    """Metrics of one run over training time, read from its stored metrics artifact."""

    run_id: str
    kind: str
    seed: int | None
    metrics_sha256: str
    points: list[CurvePointPublic]


class EntryDetailPublic(Schema):
    entry: EntryPublic
    track_info: TrackPublic
    description: str
    owner: str | None
    trainer: str
    recipe: str
    run_config: dict[str, Any]
    plan: dict[str, Any] | None
    claimed_runs: list[RunPublic]
    verified_runs: list[RunPublic] = Field(description="runs of the latest verification")
    reported_runs: list[RunPublic]
    core_tasks: list[CoreTaskPublic] = Field(description="the protocol's tasks only (at most 22)")
    clock_rule: str = Field(default="", description="when a run's self-reported time is flagged against the clock")
    val_bpb_note: str | None = Field(
        default=None, description="how the entry's val_bpb counts bytes (the evaluation code's note)"
    )
    curves: list[CurvePublic]
    hardware: dict[str, Any] | None = Field(description="fingerprint of a verified run, else of a claimed run")
    artifacts: list[ArtifactPublic]
    verifications: list[VerificationPublic]
    jobs: list[JobPublic]
    retracted_reason: str | None
    reviewed_by: str | None = Field(default=None, description="the admin who approved a fork's code")
    reviewed_at: datetime | None = None
    counted_verifications: int = Field(
        default=0, description="verifications whose runs are pooled; owners may ask for track_info.max_verifications"
    )
    created_at: datetime
    outcome: OutcomePublic | None = Field(default=None, description="what happened, in one line (the page's headline)")


class ProgressionPointPublic(Schema):
    entry_id: int
    url: AbsoluteUrl
    title: str
    date: date
    hours: float
    cost_usd: Money
    core_mean: float | None
    section: Section
    hardware_class: str
    gpus: int
    rules_version: str = Field(default="", description="the rules the row was timed under")
    is_record: bool = Field(description="faster than every earlier point")
    flops: float | None
    floor_hours: float | None = Field(description="the run's FLOPs at 100% of the hardware's bf16 peak")


class ProgressionPublic(Schema):
    track: TrackPublic
    points: list[ProgressionPointPublic] = Field(description="verified and reported rows by date")
    records: list[ProgressionPointPublic] = Field(description="the points that set a record, by date")


class RetractRequest(Schema):
    reason: str = Field(min_length=1, max_length=2000)


class ApproveRequest(Schema):
    note: str = Field(default="", max_length=2000, description="what the review covered")
    diff_sha256: Sha256 | None = Field(
        default=None, description="the sha256 of the diff the admin read; 409 when the recorded diff differs"
    )


class MineEntryPublic(Schema):
    entry: EntryPublic
    outcome: OutcomePublic
    verifications_used: int = Field(description="counted verifications (their runs are pooled)")
    verifications_left: int | None = Field(description="re-verifications the owner may still ask for; None: admin")


class QuotaPublic(Schema):
    track: str
    weekly_gpu_runs: int = Field(description="GPU runs one user may ask the verifiers for per 7 days")
    used: int = Field(description="GPU runs asked for in the last 7 days (all tracks)")
    left: int


class MinePublic(Schema):
    """A signed-in user's entries, jobs, verifications left and weekly quota (``GET /api/me/entries``)."""

    user: str
    role: str
    entries: list[MineEntryPublic]
    jobs: list[JobPublic]
    quotas: list[QuotaPublic]


class PreflightPublic(Schema):
    """What ``POST /api/submissions/preflight`` found: every check of a submission passed; nothing stored."""

    ok: bool = True
    track: str
    checks: list[str] = Field(description="the checks that passed, in the order the site runs them")
    verification_runs: int = Field(description="runs the verification would make (the track's min_runs)")
    estimated_hours: float | None = Field(description="those runs at the claimed mean time")
    estimated_cost_usd: Money = Field(description="those hours x GPUs x today's reference price")


class ReverifyRequest(Schema):
    reason: str = Field(default="", max_length=2000)
