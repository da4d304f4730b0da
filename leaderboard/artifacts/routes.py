"""Artifacts are served by content digest only, with a safe content type, never by a user's path."""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.artifacts.models import EntryArtifact
from leaderboard.artifacts.service import open_artifact
from leaderboard.artifacts.storage import StoreDep
from leaderboard.auth import SessionDep

router = APIRouter(prefix="/api", tags=["artifacts"])

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def download_name(session: Session, sha256: str) -> str:
    """The file name an artifact downloads under: the last part of the name it was uploaded
    with (``run-seed11/metrics.jsonl`` -> ``metrics.jsonl``), reduced to safe characters; the
    digest when no upload names it."""
    name = session.scalar(
        select(EntryArtifact.name).where(EntryArtifact.sha256 == sha256).order_by(EntryArtifact.id).limit(1)
    )
    base = _UNSAFE.sub("_", (name or "").rsplit("/", 1)[-1]).strip("._")[:120]
    return base or sha256


@router.get(
    "/artifacts/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "unknown digest"}},
)
def get_artifact(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], session: SessionDep, store: StoreDep
) -> FileResponse:
    row, path = open_artifact(session, store, sha256)
    filename = download_name(session, sha256)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Disposition": (
            "inline" if row.content_type.startswith(("text/plain", "application/json")) else "attachment"
        )
        + f"; filename=\"{filename}\"; filename*=UTF-8''{quote(filename)}",
    }
    return FileResponse(path, media_type=row.content_type, headers=headers)
