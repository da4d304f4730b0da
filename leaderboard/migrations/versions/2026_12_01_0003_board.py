"""board data: what a run's result said beside the verifier's figures

Runs keep the trainer's self-reported timed region (speedrun-v1) beside the verifier's clock,
the verifier's own clock flag, and the result's note on how val_bpb counts bytes, so the entry
page shows them without re-reading the stored report or submission JSON. Entries gain an index
on (track_id, claimed_hours): an entry page looks up duplicates of its claim without a track scan.

Revision ID: 20261201_0003
Revises: 20261201_0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
    with op.batch_alter_table("entries") as batch:
        batch.create_index("ix_entries_claimed", ["track_id", "claimed_hours"], unique=False)
    _backfill(op.get_bind())


_RUNS = sa.table(
    "runs",
    sa.column("id", sa.Integer()),
    sa.column("verification_id", sa.Integer()),
    sa.column("self_reported_training_seconds", sa.Float()),
    sa.column("clock_disagrees", sa.Boolean()),
    sa.column("val_bpb_note", sa.String()),
)
_VERIFICATIONS = sa.table("verifications", sa.column("id", sa.Integer()), sa.column("report", sa.JSON()))


def _backfill(conn: sa.Connection) -> None:
    """Verified runs stored before this revision: their fields from the stored report, whose runs
    were stored in the report's order (ascending run ids of the verification)."""
    for vid, report in conn.execute(sa.select(_VERIFICATIONS.c.id, _VERIFICATIONS.c.report)):
        results = report.get("runs") if isinstance(report, dict) else None
        if not isinstance(results, list):
            continue
        ids = conn.scalars(sa.select(_RUNS.c.id).where(_RUNS.c.verification_id == vid).order_by(_RUNS.c.id)).all()
        for run_id, result in zip(ids, results, strict=False):
            if isinstance(result, dict):
                conn.execute(sa.update(_RUNS).where(_RUNS.c.id == run_id).values(**_fields(result)))


def _fields(result: dict[str, Any]) -> dict[str, Any]:
    own, disagrees = result.get("self_reported_training_seconds"), result.get("clock_disagrees")
    software = result.get("software")
    note = software.get("val_bpb") if isinstance(software, dict) else None
    return {
        "self_reported_training_seconds": float(own)
        if isinstance(own, int | float) and not isinstance(own, bool) and own >= 0
        else None,
        "clock_disagrees": disagrees if isinstance(disagrees, bool) else None,
        "val_bpb_note": note[:300] if isinstance(note, str) and note else None,
    }


def downgrade() -> None:
    with op.batch_alter_table("entries") as batch:
        batch.drop_index("ix_entries_claimed")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("val_bpb_note")
        batch.drop_column("clock_disagrees")
        batch.drop_column("self_reported_training_seconds")
