"""queue fairness, sessions, quotas (slot reserved; filled by the queue/accounts work)

Revision ID: 20261201_0002
Revises: 20261201_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "20261201_0002"
down_revision: str | None = "20261201_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
