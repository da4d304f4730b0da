"""board data: what a run's result said beside the verifier's figures

Runs keep the trainer's self-reported timed region (speedrun-v1) beside the verifier's clock,
the verifier's own clock flag, and the result's note on how val_bpb counts bytes, so the entry
page shows them without re-reading the stored report or submission JSON.

Revision ID: 20261201_0003
Revises: 20261201_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_0003"
down_revision: str | None = "20261201_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("self_reported_training_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("clock_disagrees", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("val_bpb_note", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("val_bpb_note")
        batch.drop_column("clock_disagrees")
        batch.drop_column("self_reported_training_seconds")
