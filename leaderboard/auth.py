"""FastAPI dependencies for authentication and roles (the one place routes check them)."""

# SessionDep is re-exported for the routes: the request session, committed before the response.

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leaderboard.db import SessionDep as SessionDep
from leaderboard.users.models import Role, User
from leaderboard.users.service import Principal, authenticate_principal, require_role

_bearer = HTTPBearer(auto_error=False, description="an API token issued by `speedrun admin user create`")


def current_principal(
    request: Request,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    principal = authenticate_principal(session, None if credentials is None else credentials.credentials)
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def current_user(principal: PrincipalDep) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


def role_required(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency that lets through only tokens whose user has one of ``roles`` (else 403)."""

    def check(principal: PrincipalDep) -> Principal:
        require_role(principal.user, *roles)
        return principal

    return check


SubmitterPrincipal = Annotated[Principal, Depends(role_required(Role.submitter, Role.admin))]
WorkerPrincipal = Annotated[Principal, Depends(role_required(Role.worker))]
AdminPrincipal = Annotated[Principal, Depends(role_required(Role.admin))]
