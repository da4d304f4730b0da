"""Alembic migrations: up, down and up again on SQLite and PostgreSQL, and in step with the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text, update
from sqlalchemy.orm import Session

from leaderboard import migrate
from leaderboard.entries.models import Entry, EntryStatus
from leaderboard.models import Base
from leaderboard.revision import BoardRevision
from leaderboard.seed import seed_all

TABLES = {"users", "api_tokens", "tracks", "prices", "submissions", "entries", "runs", "verifications", "jobs"}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_upgrade_downgrade_upgrade(fresh_engine: Engine) -> None:
    migrate.upgrade(fresh_engine)
    assert _tables(fresh_engine) >= TABLES
    assert migrate.current_revision(fresh_engine) == migrate.head_revision()
    migrate.downgrade(fresh_engine)
    assert _tables(fresh_engine) <= {"alembic_version"}
    assert migrate.current_revision(fresh_engine) is None
    migrate.upgrade(fresh_engine)
    assert _tables(fresh_engine) >= TABLES


def test_migrations_match_the_models(fresh_engine: Engine) -> None:
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_revisions_are_date_prefixed() -> None:
    files = sorted(p.name for p in (migrate.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert files and all(name[:11].replace("_", "").isdigit() for name in files)


def _row(engine: Engine, table: str, **values: object) -> int:
    """Insert a row into ``table`` as it stands, every other required column given a plain value."""
    from datetime import UTC, date, datetime

    from sqlalchemy import MetaData, Table, insert, types

    t = Table(table, MetaData(), autoload_with=engine)
    row = dict(values)
    for col in t.columns:
        if col.name in row or col.nullable or col.primary_key or col.server_default is not None:
            continue
        kind = col.type
        if isinstance(kind, types.Boolean):
            row[col.name] = False
        elif isinstance(kind, types.Integer | types.Float | types.Numeric):
            row[col.name] = 1
        elif isinstance(kind, types.DateTime):
            row[col.name] = datetime(2026, 12, 1, tzinfo=UTC)
        elif isinstance(kind, types.Date):
            row[col.name] = date(2026, 12, 1)
        elif isinstance(kind, types.JSON):
            row[col.name] = {}
        else:
            row[col.name] = f"{col.name}-x"[: getattr(kind, "length", None) or 100]
    with engine.begin() as conn:
        return int(conn.execute(insert(t).values(**row).returning(t.c.id)).scalar_one())


def test_the_board_revision_fills_stored_runs_from_their_report(fresh_engine: Engine) -> None:
    """Runs verified before 20261201_0003 get the trainer's own time, the verifier's clock flag and
    the val_bpb note from the stored report (its runs in the order they were stored)."""
    from sqlalchemy import select, text

    migrate.upgrade(fresh_engine, "20261201_0002")
    track = _row(fresh_engine, "tracks", slug="t-mig", hardware_classes=["cpu"])
    entry = _row(fresh_engine, "entries", track_id=track, status="verified", contributors=["a"], run_config={})
    report = {
        "runs": [
            {"self_reported_training_seconds": 100.0, "clock_disagrees": False, "software": {"val_bpb": "true bytes"}},
            {"self_reported_training_seconds": 900.0, "clock_disagrees": True, "software": {}},
        ]
    }
    ver = _row(fresh_engine, "verifications", entry_id=entry, report=report)
    runs = [_row(fresh_engine, "runs", entry_id=entry, verification_id=ver, kind="verified") for _ in range(2)]
    claimed = _row(fresh_engine, "runs", entry_id=entry, kind="claimed")
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        cols = "id, self_reported_training_seconds, clock_disagrees, val_bpb_note"
        got = {r[0]: tuple(r[1:]) for r in conn.execute(text(f"SELECT {cols} FROM runs"))}
        assert conn.scalar(select(text("count(*)")).select_from(text("runs"))) == 3
    assert got[runs[0]] == (100.0, False, "true bytes")
    assert got[runs[1]] == (900.0, True, None)
    assert got[claimed] == (None, None, None)


def test_a_board_ranked_by_older_code_is_reranked_on_the_next_start(session: Session) -> None:
    """Issue 20: a database whose GPT-2 (2019) row was ranked among the runs by older code."""
    baseline = session.scalar(
        select(Entry).where(Entry.status == EntryStatus.reported).order_by(Entry.record_date).limit(1)
    )
    assert baseline is not None and baseline.record_date.year == 2019 and baseline.rank_time is None
    session.execute(update(Entry).where(Entry.id == baseline.id).values(rank_time=7, rank_cost=7))
    session.commit()
    revision = session.get(BoardRevision, 1)
    assert revision is not None
    before = revision.revision
    counts = seed_all(session)  # what every start runs
    session.refresh(baseline)
    session.refresh(revision)
    assert (baseline.rank_time, baseline.rank_cost) == (None, None)
    assert counts["reranked_tracks"] >= 1 and revision.revision > before  # cached pages are stale now
    assert seed_all(session)["reranked_tracks"] == 0  # and a second start changes nothing


def test_the_run_jobs_revision_splits_waiting_jobs_into_runs(fresh_engine: Engine) -> None:
    """Jobs queued or running when 20261207_0001 runs get their run jobs (a running one goes back to
    the queue, its old lease void); finished jobs stay as they were; GPT-2 tracks ask for 2 accounts."""
    migrate.upgrade(fresh_engine, "20261201_0003")
    now = "2026-12-01 12:00:00"
    with fresh_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tracks (id, slug, name, description, metric, threshold, protocol, rules_version, "
                "hardware_classes, min_runs, alpha, ranking, position, created_at, updated_at) VALUES "
                "(1, 'gpt2-cost', 'GPT-2 cost', '', 'core', 0.25, 'core-v1', 'speedrun-v2', '[\"h100-sxm\"]', 3, "
                "0.05, 'cost', 0, :now, :now), (2, 'cpu-smoke', 'CPU', '', 'core', 0.05, 'core-v1', "
                "'speedrun-v2', '[\"cpu\"]', 3, 0.05, 'time', 1, :now, :now)"
            ),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO entries (id, track_id, status, title, description, contributors, run_config, trainer, "
                "recipe, hardware_class, gpus_per_node, nodes, rules_version, record_date, claimed_runs, "
                "created_at, updated_at) VALUES (1, 1, 'pending', 't', '', '[]', '{}', 'reference@0.1.0', "
                "'gpt2_speedrun', 'h100-sxm', 8, 1, 'speedrun-v2', '2026-12-01', 1, :now, :now)"
            ),
            {"now": now},
        )
        ids = {}
        for status in ("queued", "running", "succeeded"):  # ids from the database's own sequence
            ids[status] = conn.scalar(
                text(
                    "INSERT INTO jobs (entry_id, track_id, status, reason, runs, attempts, max_attempts, "
                    "cancel_requested, created_at, lease_token_sha256) VALUES "
                    "(1, 1, :status, 'submission', 3, 0, 3, false, :now, :token) RETURNING id"
                ),
                {"status": status, "now": now, "token": "a" * 64 if status == "running" else None},
            )
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        rows = conn.execute(text("SELECT parent_id, run_index, seed, status FROM jobs WHERE parent_id IS NOT NULL"))
        runs = sorted((r[0], r[1], r[2], r[3]) for r in rows)
        parents = dict(conn.execute(text("SELECT id, status FROM jobs WHERE parent_id IS NULL")).all())
        token = conn.scalar(text("SELECT lease_token_sha256 FROM jobs WHERE id = :id"), {"id": ids["running"]})
        accounts = dict(conn.execute(text("SELECT slug, min_worker_accounts FROM tracks")).all())
    q, r = ids["queued"], ids["running"]
    assert [(p, i) for p, i, _, _ in runs] == [(q, 0), (q, 1), (q, 2), (r, 0), (r, 1), (r, 2)]
    assert all(status == "queued" for *_, status in runs)
    assert len({seed for p, _, seed, _ in runs if p == q}) == 3 and all(0 < s < 2**31 for _, _, s, _ in runs)
    assert parents == {q: "queued", r: "queued", ids["succeeded"]: "succeeded"} and token is None
    assert accounts == {"gpt2-cost": 2, "cpu-smoke": 1}
