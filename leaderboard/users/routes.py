"""/api routes of users: who am I, and the admin's user management and audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from leaderboard.audit.schemas import AuditEventPublic
from leaderboard.audit.service import list_events
from leaderboard.auth import AdminPrincipal, CurrentUser, SessionDep
from leaderboard.users import service
from leaderboard.users.schemas import TokenIssued, UserCreate, UserPublic

router = APIRouter(prefix="/api", tags=["users"])


@router.get("/me", response_model=UserPublic)
def me(user: CurrentUser) -> UserPublic:
    return UserPublic.model_validate(user)


@router.post("/admin/users", response_model=TokenIssued, status_code=status.HTTP_201_CREATED, tags=["admin"])
def create_user(data: UserCreate, session: SessionDep, admin: AdminPrincipal) -> TokenIssued:
    """Create a user and its first API token (shown once in this reply, stored only as a digest)."""
    return service.create_user(session, data, actor=admin.user)


@router.get("/admin/users", response_model=list[UserPublic], tags=["admin"])
def list_users(session: SessionDep, _admin: AdminPrincipal) -> list[UserPublic]:
    return service.list_users(session)


@router.get("/admin/audit", response_model=list[AuditEventPublic], tags=["admin"])
def audit(
    session: SessionDep,
    _admin: AdminPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[AuditEventPublic]:
    return list_events(session, limit=limit, offset=offset)
