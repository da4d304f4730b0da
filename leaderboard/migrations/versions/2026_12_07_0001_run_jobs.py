"""run jobs: a verification's k runs are leased one by one, from several worker accounts

Jobs gain ``parent_id``, ``run_index``, ``seed`` and ``report``: a verification job (the one the
queue and the entry show) has k run jobs that workers lease one at a time, each with the seed the
site picked for it, and that keep their report until all k are in. Verifications gain ``workers``
(which account ran which run, and where accounts disagree); tracks gain ``min_worker_accounts``
(2 on the GPT-2 tracks, 1 on cpu-smoke). A job that is queued or running when this runs gets its
run jobs now (a running one goes back to the queue: its worker's lease names the old job, which
is no longer leasable, so that worker's next heartbeat is refused and it leases again).

Revision ID: 20261207_0001
Revises: 20261201_0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "20261207_0001"
down_revision: str | None = "20261201_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GPT2_TRACKS = ("gpt2-8xh100", "gpt2-cost")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("run_index", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("seed", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("report", sa.JSON(), nullable=True))
        batch.create_foreign_key("fk_jobs_parent_id_jobs", "jobs", ["parent_id"], ["id"], ondelete="CASCADE")
        batch.create_index("ix_jobs_parent_id", ["parent_id"], unique=False)
    with op.batch_alter_table("verifications") as batch:
        batch.add_column(sa.Column("workers", sa.JSON(), nullable=True))
    with op.batch_alter_table("tracks") as batch:
        batch.add_column(sa.Column("min_worker_accounts", sa.Integer(), nullable=False, server_default="1"))
    conn = op.get_bind()
    tracks = sa.table("tracks", sa.column("slug", sa.String()), sa.column("min_worker_accounts", sa.Integer()))
    conn.execute(sa.update(tracks).where(tracks.c.slug.in_(_GPT2_TRACKS)).values(min_worker_accounts=2))
    _split_active_jobs(conn)


_JOBS = sa.table(
    "jobs",
    sa.column("id", sa.Integer()),
    sa.column("entry_id", sa.Integer()),
    sa.column("track_id", sa.Integer()),
    sa.column("status", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("runs", sa.Integer()),
    sa.column("attempts", sa.Integer()),
    sa.column("max_attempts", sa.Integer()),
    sa.column("parent_id", sa.Integer()),
    sa.column("run_index", sa.Integer()),
    sa.column("seed", sa.Integer()),
    sa.column("lease_owner", sa.String()),
    sa.column("lease_user_id", sa.Integer()),
    sa.column("lease_token_sha256", sa.String()),
    sa.column("lease_expires_at", sa.DateTime()),
    sa.column("leased_at", sa.DateTime()),
    sa.column("cancel_requested", sa.Boolean()),
    sa.column("created_at", sa.DateTime()),
)


def _split_active_jobs(conn: sa.Connection) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = conn.execute(
        sa.select(_JOBS.c.id, _JOBS.c.entry_id, _JOBS.c.track_id, _JOBS.c.runs, _JOBS.c.max_attempts).where(
            _JOBS.c.status.in_(("queued", "running")), _JOBS.c.parent_id.is_(None), _JOBS.c.run_index.is_(None)
        )
    ).all()
    for job_id, entry_id, track_id, runs, max_attempts in rows:
        conn.execute(
            sa.update(_JOBS)
            .where(_JOBS.c.id == job_id)
            .values(
                status="queued",
                lease_owner=None,
                lease_user_id=None,
                lease_token_sha256=None,
                lease_expires_at=None,
                leased_at=None,
            )
        )
        seeds: list[int] = []
        while len(seeds) < runs:
            s = secrets.randbelow(2**31 - 1) + 1
            if s not in seeds:
                seeds.append(s)
        for i, seed in enumerate(seeds):
            conn.execute(
                sa.insert(_JOBS).values(
                    entry_id=entry_id,
                    track_id=track_id,
                    status="queued",
                    reason="run",
                    runs=1,
                    attempts=0,
                    max_attempts=max_attempts,
                    parent_id=job_id,
                    run_index=i,
                    seed=seed,
                    cancel_requested=False,
                    created_at=now,
                )
            )


def downgrade() -> None:
    conn = op.get_bind()
    conn.execute(sa.delete(_JOBS).where(_JOBS.c.parent_id.is_not(None)))
    with op.batch_alter_table("tracks") as batch:
        batch.drop_column("min_worker_accounts")
    with op.batch_alter_table("verifications") as batch:
        batch.drop_column("workers")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_parent_id")
        batch.drop_constraint("fk_jobs_parent_id_jobs", type_="foreignkey")
        batch.drop_column("report")
        batch.drop_column("seed")
        batch.drop_column("run_index")
        batch.drop_column("parent_id")
