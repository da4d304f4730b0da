"""API shapes of tracks and reference prices."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import Field, model_validator

from leaderboard.schemas import Schema
from submissions.schema import Fraction, Sha256, Slug


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
    updated_at: datetime


class TrackUpdate(Schema):
    """An admin's edit of a track; fields left out keep their value."""

    name: str | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    threshold: float | None = Field(default=None, allow_inf_nan=False)
    hardware_classes: list[Slug] | None = Field(default=None, min_length=1)
    gpus_per_node: int | None = Field(default=None, ge=0)
    nodes: int | None = Field(default=None, ge=1)
    min_runs: int | None = Field(default=None, ge=1, le=50)
    alpha: Fraction | None = None
    ranking: Literal["time", "cost"] | None = None
    bundle_sha256: Sha256 | None = None
    max_per_task: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _not_empty(self) -> TrackUpdate:
        if not self.model_fields_set:
            raise ValueError("give at least one field to change")
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
