"""Artifacts are served by content digest only, with a safe content type, never by a user's path."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import FileResponse

from leaderboard.artifacts.service import open_artifact
from leaderboard.auth import SessionDep
from leaderboard.deps import StoreDep

router = APIRouter(prefix="/api", tags=["artifacts"])


@router.get(
    "/artifacts/{sha256}",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {"description": "unknown digest"}},
)
def get_artifact(
    sha256: Annotated[str, Path(pattern=r"^[0-9a-f]{64}$")], session: SessionDep, store: StoreDep
) -> FileResponse:
    row, path = open_artifact(session, store, sha256)
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "public, max-age=31536000, immutable",
        "Content-Disposition": f'inline; filename="{sha256}"'
        if row.content_type.startswith(("text/plain", "application/json"))
        else f'attachment; filename="{sha256}"',
    }
    return FileResponse(path, media_type=row.content_type, headers=headers)
