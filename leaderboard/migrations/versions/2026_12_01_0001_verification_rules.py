"""verification rules: site-side checks, re-verification policy, review (slot reserved; filled by the verification work)

Revision ID: 20261201_0001
Revises: 20261121_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "20261201_0001"
down_revision: str | None = "20261121_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
