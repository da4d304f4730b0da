"""API shapes of users and tokens."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from leaderboard.schemas import Schema
from leaderboard.users.models import Role


class UserPublic(Schema):
    id: int
    name: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None = None


class UserCreate(Schema):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9@][A-Za-z0-9_.@-]{0,99}$")
    role: Role = Role.submitter
    token_label: str = Field(default="", max_length=100)


class TokenIssued(Schema):
    """A new API token: ``token`` is shown this once and stored only as its digest."""

    user: UserPublic
    token_id: int
    token: str
    prefix: str


class TokenPublic(Schema):
    """An API token as admins see it: never the token itself."""

    id: int
    user_id: int
    prefix: str
    label: str
    created_at: datetime
    revoked_at: datetime | None


class DisableRequest(Schema):
    reason: str = Field(default="", max_length=500)


class RevokeRequest(Schema):
    reason: str = Field(default="", max_length=500)
