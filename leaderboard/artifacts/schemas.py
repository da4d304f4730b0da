"""API shape of an artifact attached to an entry."""

from __future__ import annotations

from datetime import datetime

from leaderboard.schemas import Schema
from leaderboard.urls import AbsoluteUrl


class ArtifactPublic(Schema):
    name: str
    kind: str
    sha256: str
    size_bytes: int
    content_type: str
    source: str
    job_id: int | None
    url: AbsoluteUrl
    created_at: datetime
