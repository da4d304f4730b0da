"""/api/admin routes of the queue: worker accounts, their standing, pause and resume (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from leaderboard.auth import AdminPrincipal, SessionDep
from leaderboard.jobs import workers
from leaderboard.jobs.schemas import WorkerPause, WorkerPublic

router = APIRouter(prefix="/api/admin/workers", tags=["admin"])

WorkerName = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("", response_model=list[WorkerPublic])
def list_workers(session: SessionDep, _admin: AdminPrincipal) -> list[WorkerPublic]:
    """Worker accounts that leased jobs: abandoned leases in a row, pause, active leases (paused first)."""
    return workers.list_workers(session)


@router.post("/{name}/pause", response_model=WorkerPublic)
def pause(name: WorkerName, body: WorkerPause, session: SessionDep, admin: AdminPrincipal) -> WorkerPublic:
    """Stop a worker account from leasing (its current lease runs on until it ends)."""
    return workers.set_paused(session, name, True, actor=admin.user, reason=body.reason)


@router.post("/{name}/resume", response_model=WorkerPublic)
def resume(name: WorkerName, body: WorkerPause, session: SessionDep, admin: AdminPrincipal) -> WorkerPublic:
    """Let a paused worker account lease again; its count of abandoned leases restarts at 0."""
    return workers.set_paused(session, name, False, actor=admin.user, reason=body.reason)
