"""API shapes of tracks and reference prices."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from contract.schema import Sha256, Slug
from contract.tracks import Alpha, GpusPerNode, HardwareClasses, MaxPerTask, MinRuns, Nodes, Threshold
from leaderboard.schemas import Schema


class TrackPublic(Schema):
    id: int
    slug: str
    name: str
    description: str
    metric: str
    threshold: float
    protocol: str
    rules_version: str
    hardware_classes: list[str]
    gpus_per_node: int | None
    nodes: int | None
    min_runs: int
    alpha: float
    ranking: Literal["time", "cost"]
    bundle_sha256: str | None
    max_per_task: int | None
    require_sealed: bool = Field(description="the site refuses reports that did not run sealed")
    fork_review: Literal["required", "none"] = Field(description="required: a verified fork waits for approval")
    clock_tolerance: float = Field(description="self-reported (v1) vs verifier clock (v2) gap that is flagged")
    max_verifications: int = Field(description="counted verifications an owner may ask for (runs pooled)")
    weekly_gpu_runs: int | None = Field(description="GPU runs one user may ask for per 7 days; None = no quota")
    core_examples: int | None = Field(description="examples a full CORE pass scores; None = not checked")
    max_job_seconds: int | None = Field(
        default=None, description="longest lease of one verification job; None = the site's default (max_job_seconds)"
    )
    min_worker_accounts: int = Field(
        default=1, description="distinct worker accounts whose runs one verification needs before it counts"
    )
    updated_at: datetime


NULLABLE = frozenset(
    {"gpus_per_node", "nodes", "bundle_sha256", "max_per_task", "weekly_gpu_runs", "core_examples", "max_job_seconds"}
)
MIN_JOB_SECONDS, MAX_JOB_SECONDS = 60, 30 * 86_400  # as Settings.max_job_seconds
MAX_WORKER_ACCOUNTS = 10  # never more accounts than a verification has runs: the lease rule spreads runs
# edits that change what a verified record means: the track's entries are re-read after them
RULE_FIELDS = frozenset(
    {
        "threshold", "hardware_classes", "gpus_per_node", "nodes", "min_runs", "alpha", "bundle_sha256",
        "max_per_task", "require_sealed", "fork_review", "clock_tolerance", "core_examples", "min_worker_accounts",
    }
)  # fmt: skip


class TrackUpdate(Schema):
    """An admin's edit of a track; fields left out keep their value. Bounded like the contract
    (a value out of range is a 422 naming the field; numbers must be JSON numbers, as in the
    contract); a rule change re-reads the track's entries."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    threshold: Threshold | None = None
    hardware_classes: HardwareClasses | None = None
    gpus_per_node: GpusPerNode | None = None
    nodes: Nodes | None = None
    min_runs: MinRuns | None = None
    alpha: Alpha | None = None
    ranking: Literal["time", "cost"] | None = None
    bundle_sha256: Sha256 | None = None
    max_per_task: MaxPerTask | None = None
    require_sealed: bool | None = None
    fork_review: Literal["required", "none"] | None = None
    clock_tolerance: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_verifications: int | None = Field(default=None, ge=1, le=20)
    weekly_gpu_runs: int | None = Field(default=None, ge=1, le=10_000)
    core_examples: int | None = Field(default=None, ge=1, le=10_000_000)
    max_job_seconds: int | None = Field(
        default=None, ge=MIN_JOB_SECONDS, le=MAX_JOB_SECONDS, description="null: the site's default"
    )
    min_worker_accounts: int | None = Field(default=None, ge=1, le=MAX_WORKER_ACCOUNTS)

    @model_validator(mode="after")
    def _not_empty(self) -> TrackUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
        nulls = sorted(k for k in self.model_fields_set if getattr(self, k) is None and k not in NULLABLE)
        if nulls:
            raise ValueError(f"{', '.join(nulls)}: may not be null")
        return self


class PricePublic(Schema):
    id: int
    sku: str
    usd_per_gpu_hour: float
    effective_date: date
    note: str
    table_version: int
    created_at: datetime


class PriceCreate(Schema):
    sku: Slug
    usd_per_gpu_hour: float = Field(gt=0, le=1000, allow_inf_nan=False)
    effective_date: date
    note: str = Field(default="", max_length=500)
