"""Artifacts: bytes stored once by SHA-256 digest, linked to entries under a display name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from leaderboard.db import Base, utcnow


class Artifact(Base):
    __tablename__ = "artifacts"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EntryArtifact(Base):
    """An artifact attached to an entry (by a submission or a verification job)."""

    __tablename__ = "entry_artifacts"
    __table_args__ = (UniqueConstraint("entry_id", "job_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    sha256: Mapped[str] = mapped_column(ForeignKey("artifacts.sha256"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(20), doc="'submission' or 'verification'")
    attached: Mapped[bool] = mapped_column(default=True, doc="False while a job's upload awaits completion")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
