"""/api routes of users: who am I, and the admin's user management and audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from leaderboard.audit.schemas import AuditEventPublic
from leaderboard.auth import AdminPrincipal, CurrentUser, SessionDep
from leaderboard.users import service
from leaderboard.users.schemas import DisableRequest, RevokeRequest, TokenIssued, TokenPublic, UserCreate, UserPublic

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


UserName = Annotated[str, Path(min_length=1, max_length=100)]


@router.get("/admin/users/{name}/tokens", response_model=list[TokenPublic], tags=["admin"])
def list_tokens(name: UserName, session: SessionDep, _admin: AdminPrincipal) -> list[TokenPublic]:
    """A user's API tokens (prefix, label, revocation), never the tokens themselves."""
    return service.list_tokens(session, name)


@router.post("/admin/tokens/{token_id}/revoke", response_model=TokenPublic, tags=["admin"])
def revoke_token(
    token_id: Annotated[int, Path(ge=1, le=2**62)], body: RevokeRequest, session: SessionDep, admin: AdminPrincipal
) -> TokenPublic:
    """Revoke an API token (audited): refused from the next request on, with its web sessions."""
    return service.revoke_token(session, token_id, actor=admin.user, reason=body.reason)


@router.post("/admin/users/{name}/disable", response_model=UserPublic, tags=["admin"])
def disable_user(name: UserName, body: DisableRequest, session: SessionDep, admin: AdminPrincipal) -> UserPublic:
    """Disable a user (audited): all their tokens and web sessions stop working on the next request."""
    return service.set_disabled(session, name, True, actor=admin.user, reason=body.reason)


@router.post("/admin/users/{name}/enable", response_model=UserPublic, tags=["admin"])
def enable_user(name: UserName, body: DisableRequest, session: SessionDep, admin: AdminPrincipal) -> UserPublic:
    """Enable a disabled user again (audited); revoked tokens stay revoked."""
    return service.set_disabled(session, name, False, actor=admin.user, reason=body.reason)


@router.get("/admin/audit", response_model=list[AuditEventPublic], tags=["admin"])
def audit(
    session: SessionDep,
    _admin: AdminPrincipal,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[AuditEventPublic]:
    return service.list_audit_events(session, limit=limit, offset=offset)
