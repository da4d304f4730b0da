"""Tracks (what a record means) and the dated reference price table."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from leaderboard.db import Base, utcnow


class Track(Base):
    __tablename__ = "tracks"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    metric: Mapped[str] = mapped_column(String(20), default="core")
    threshold: Mapped[float] = mapped_column(Float)
    protocol: Mapped[str] = mapped_column(String(20))
    rules_version: Mapped[str] = mapped_column(String(32))
    hardware_classes: Mapped[list[str]] = mapped_column(JSON)
    gpus_per_node: Mapped[int | None] = mapped_column(default=None)
    nodes: Mapped[int | None] = mapped_column(default=None)
    min_runs: Mapped[int]
    alpha: Mapped[float] = mapped_column(Float)
    ranking: Mapped[str] = mapped_column(String(10))
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), default=None)
    max_per_task: Mapped[int | None] = mapped_column(default=None)
    max_job_seconds: Mapped[int | None] = mapped_column(default=None, doc="a verification job's longest run time")
    position: Mapped[int] = mapped_column(default=0, doc="display order")
    # the site's own rules (never sent to a verifier; docs/RULES.md)
    require_sealed: Mapped[bool] = mapped_column(Boolean, default=False, doc="refuse reports not run sealed")
    fork_review: Mapped[str] = mapped_column(String(20), default="none", doc="'required': forks wait for approval")
    clock_tolerance: Mapped[float] = mapped_column(Float, default=0.5, doc="v1 self-report vs v2 clock, flagged")
    max_verifications: Mapped[int] = mapped_column(default=3, doc="pooled looks an owner may ask for")
    weekly_gpu_runs: Mapped[int | None] = mapped_column(default=None, doc="GPU runs per user per 7 days")
    core_examples: Mapped[int | None] = mapped_column(default=None, doc="examples a full CORE pass scores")
    min_worker_accounts: Mapped[int] = mapped_column(
        default=1, doc="distinct worker accounts whose runs a verification needs to count"
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def rules_dict(self) -> dict[str, Any]:
        return {
            "slug": self.slug,
            "name": self.name,
            "description": self.description,
            "metric": self.metric,
            "threshold": self.threshold,
            "protocol": self.protocol,
            "rules_version": self.rules_version,
            "hardware_classes": list(self.hardware_classes),
            "gpus_per_node": self.gpus_per_node,
            "nodes": self.nodes,
            "min_runs": self.min_runs,
            "alpha": self.alpha,
            "ranking": self.ranking,
            "bundle_sha256": self.bundle_sha256,
            "max_per_task": self.max_per_task,
        }

    def site_settings(self) -> dict[str, Any]:
        """The site's own rules of this track (``SITE_SETTINGS_FIELDS``)."""
        return {k: getattr(self, k) for k in SITE_SETTINGS_FIELDS}


SITE_SETTINGS_FIELDS = (
    "require_sealed",
    "fork_review",
    "clock_tolerance",
    "max_verifications",
    "weekly_gpu_runs",
    "core_examples",
    "max_job_seconds",
    "min_worker_accounts",
)


class Price(Base):
    """A reference price of one GPU SKU from ``effective_date`` on (the latest row on a date wins)."""

    __tablename__ = "prices"
    __table_args__ = (Index("ix_prices_sku_date", "sku", "effective_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str] = mapped_column(String(64))
    usd_per_gpu_hour: Mapped[float] = mapped_column(Float)
    effective_date: Mapped[date] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    table_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
