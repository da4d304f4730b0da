"""Storing artifacts by digest and choosing the (safe) content type they are served with."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from leaderboard.artifacts.models import Artifact
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import utcnow
from leaderboard.errors import NotFound

# Served types never include HTML or SVG: nothing a user uploads can run in the site's origin.
SAFE_CONTENT_TYPES = {
    "result": "application/json",
    "report": "application/json",
    "metrics": "text/plain; charset=utf-8",
    "log": "text/plain; charset=utf-8",
    "other": "application/octet-stream",
}


def content_type_for(kind: str) -> str:
    return SAFE_CONTENT_TYPES.get(kind, "application/octet-stream")


def artifact_url(sha256: str) -> str:
    return f"/api/artifacts/{sha256}"


def store_bytes(session: Session, store: ArtifactStore, data: bytes, kind: str) -> Artifact:
    """Write ``data`` to the store (by digest) and make sure its row exists."""
    digest = store.put(data)
    row = session.get(Artifact, digest)
    if row is None:
        # INSERT ... ON CONFLICT DO NOTHING: two requests storing the same bytes at once both succeed
        values = {
            "sha256": digest,
            "size_bytes": len(data),
            "content_type": content_type_for(kind),
            "created_at": utcnow(),
        }
        if session.get_bind().dialect.name == "postgresql":
            session.execute(pg_insert(Artifact).values(**values).on_conflict_do_nothing())
        else:
            session.execute(sqlite_insert(Artifact).values(**values).on_conflict_do_nothing())
        row = session.get(Artifact, digest)
        assert row is not None
    return row


def open_artifact(session: Session, store: ArtifactStore, sha256: str) -> tuple[Artifact, Path]:
    """The row and file of a stored artifact; NotFound when either is missing."""
    row = session.get(Artifact, sha256)
    if row is None:
        raise NotFound(f"no artifact {sha256}")
    path = store.path(sha256)
    if not path.exists():
        raise NotFound(f"artifact {sha256} is registered but its file is missing")
    return row, path
