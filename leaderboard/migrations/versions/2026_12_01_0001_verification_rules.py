"""verification rules: site-side checks, re-verification policy, review

Tracks gain the site's own rules (sealed reports, fork review, clock tolerance, the cap on counted
verifications, a weekly GPU-run quota, the full CORE example count), written for the built-in
tracks from ``leaderboard.tracks.defaults`` as of this revision; entries gain the pool of counted
verifications and the code review; verifications gain what the site derived from each report. The built-in tracks move from rules
speedrun-v1 to speedrun-v2; a downgrade leaves them there (entries keep their own label either way).

Revision ID: 20261201_0001
Revises: 20261121_0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261201_0001"
down_revision: str | None = "20261121_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the built-in tracks' settings at this revision (copied, so later edits of the defaults never
# change what this migration did)
_GPT2: dict[str, object] = {
    "require_sealed": True,
    "fork_review": "required",
    "weekly_gpu_runs": 12,
    "core_examples": 91037,
}
_SETTINGS: dict[str, dict[str, object]] = {
    "gpt2-8xh100": _GPT2,
    "gpt2-cost": _GPT2,
    "cpu-smoke": {"core_examples": 880},
}


def upgrade() -> None:
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("require_sealed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("fork_review", sa.String(length=20), nullable=False, server_default="none"))
        batch.add_column(sa.Column("clock_tolerance", sa.Float(), nullable=False, server_default="0.5"))
        batch.add_column(sa.Column("max_verifications", sa.Integer(), nullable=False, server_default="3"))
        batch.add_column(sa.Column("weekly_gpu_runs", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("core_examples", sa.Integer(), nullable=True))
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("pool", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("review_status", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_foreign_key(
            op.f("fk_entries_reviewed_by_id_users"), "users", ["reviewed_by_id"], ["id"], ondelete="SET NULL"
        )
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(sa.Column("site", sa.JSON(), nullable=True))
    tracks = sa.table(
        "tracks",
        sa.column("slug", sa.String()),
        sa.column("require_sealed", sa.Boolean()),
        sa.column("fork_review", sa.String()),
        sa.column("weekly_gpu_runs", sa.Integer()),
        sa.column("core_examples", sa.Integer()),
    )
    for slug, values in _SETTINGS.items():
        op.execute(tracks.update().where(tracks.c.slug == slug).values(**values))
    # the built-in tracks move to speedrun-v2 (the verifier's clock and score); entries verified
    # under speedrun-v1 keep that label (entries.rules_version is untouched)
    versioned = sa.table("tracks", sa.column("slug", sa.String()), sa.column("rules_version", sa.String()))
    op.execute(
        versioned.update()
        .where(versioned.c.slug.in_(list(_SETTINGS)), versioned.c.rules_version == "speedrun-v1")
        .values(rules_version="speedrun-v2")
    )


def downgrade() -> None:
    with op.batch_alter_table("verifications") as batch:
        batch.drop_column("site")
    with op.batch_alter_table("entries") as batch:
        batch.drop_constraint(op.f("fk_entries_reviewed_by_id_users"), type_="foreignkey")
        batch.drop_column("reviewed_at")
        batch.drop_column("reviewed_by_id")
        batch.drop_column("review_status")
        batch.drop_column("pool")
    with op.batch_alter_table("tracks") as batch:
        for column in ("core_examples", "weekly_gpu_runs", "max_verifications", "clock_tolerance", "fork_review"):
            batch.drop_column(column)
        batch.drop_column("require_sealed")
