"""Storing artifacts by digest and choosing the (safe) content type they are served with."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from leaderboard.artifacts.models import Artifact
from leaderboard.artifacts.storage import ArtifactStore
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
        row = Artifact(sha256=digest, size_bytes=len(data), content_type=content_type_for(kind))
        session.add(row)
        session.flush()
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
