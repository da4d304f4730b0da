"""The site's track rules from the admin's side: migration 20261201_0001 on an existing database,
and `speedrun admin track set` / `speedrun admin entry approve` on a real SQLite database."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select

from contract.tracks import BUILTIN_TRACKS
from leaderboard import migrate
from leaderboard.app import open_database
from leaderboard.artifacts.models import Artifact, EntryArtifact
from leaderboard.audit.models import AuditEvent
from leaderboard.db import session_scope
from leaderboard.entries.models import Entry, EntryStatus, Verification
from leaderboard.settings import Settings
from leaderboard.tracks.models import Track
from speedrun.cli import main


def test_the_migration_sets_the_gpt2_rules_and_moves_tracks_to_v2(fresh_engine: Engine) -> None:
    migrate.upgrade(fresh_engine, "20261121_0001")
    tracks = sa.Table("tracks", sa.MetaData(), autoload_with=fresh_engine)
    with fresh_engine.begin() as conn:
        for slug, rules in BUILTIN_TRACKS.items():
            row = {**rules.model_dump(mode="json"), "rules_version": "speedrun-v1", "position": 0}
            now = sa.func.now() if fresh_engine.dialect.name == "postgresql" else sa.text("CURRENT_TIMESTAMP")
            conn.execute(
                tracks.insert().values(
                    slug=slug, created_at=now, updated_at=now, **{k: v for k, v in row.items() if k != "slug"}
                )
            )
    migrate.upgrade(fresh_engine)
    with fresh_engine.connect() as conn:
        rows = {r.slug: r for r in conn.execute(sa.text("SELECT * FROM tracks"))}
    assert rows["gpt2-8xh100"].require_sealed and rows["gpt2-cost"].fork_review == "required"
    assert rows["gpt2-cost"].core_examples == 91037 and rows["gpt2-cost"].weekly_gpu_runs == 12
    assert not rows["cpu-smoke"].require_sealed and rows["cpu-smoke"].core_examples == 880
    assert {r.rules_version for r in rows.values()} == {"speedrun-v2"}
    migrate.downgrade(fresh_engine, "20261121_0001")  # and back down
    assert "require_sealed" not in {c["name"] for c in sa.inspect(fresh_engine).get_columns("tracks")}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_track_set_edits_the_sites_rules_bounded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path)
    code, out, _ = _run(
        capsys, "admin", "track", "set", "gpt2-cost", "--no-require-sealed", "--fork-review", "none",
        "--weekly-gpu-runs", "30", "--max-verifications", "2", "--home", home,
    )  # fmt: skip
    track = json.loads(out)
    assert code == 0 and track["require_sealed"] is False and track["fork_review"] == "none"
    assert track["weekly_gpu_runs"] == 30 and track["max_verifications"] == 2
    code, _, err = _run(capsys, "admin", "track", "set", "gpt2-cost", "--gpus-per-node", "68287", "--home", home)
    assert code == 2 and "gpus_per_node" in err
    code, _, err = _run(capsys, "admin", "track", "set", "gpt2-cost", "--alpha", "5e-324", "--home", home)
    assert code == 2 and "alpha" in err


def test_entry_approve_ranks_a_reviewed_fork(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = open_database(Settings(home=tmp_path, secret_key="x"))
    fork = {"trainer": {"kind": "git", "git_url": "https://example.org/f.git", "commit": "c" * 40}}
    diff = {"base_commit": "a" * 40, "files_changed": 1, "insertions": 1, "deletions": 0, "sha256": "d" * 64,
            "size_bytes": 10, "files": [{"path": "scorer.py", "insertions": 1, "deletions": 0}]}  # fmt: skip
    with session_scope(db.sessionmaker) as s:
        track = s.scalar(select(Track).where(Track.slug == "gpt2-cost"))
        assert track is not None
        ids = []
        for title in ("fork", "fork without a diff"):
            e = Entry(
                track_id=track.id, status=EntryStatus.awaiting_review, title=title, contributors=["@a"],
                run_config=fork, hardware_class="h100-sxm", gpus_per_node=8, rules_version="speedrun-v2",
                record_date=date(2026, 12, 1), hours=1.5, cost_usd=36.0, core_mean=0.28, review_status="pending",
            )  # fmt: skip
            s.add(e)
            s.flush()
            ids.append(e.id)
        v = Verification(entry_id=ids[0], verifier_id="w", reported_verdict="verified", verdict="verified",
                         reasons=[], report={"fork_diff": diff}, report_sha256="e" * 64)  # fmt: skip
        s.add_all([v, Artifact(sha256="d" * 64, size_bytes=10, content_type="text/plain")])
        s.flush()
        s.add(EntryArtifact(entry_id=ids[0], sha256="d" * 64, name="fork.diff", kind="other", source="verification"))
        for eid in ids:
            s.get_one(Entry, eid).pool = {"current_verification_id": v.id if eid == ids[0] else None}
    entry_id, no_diff = ids
    code, _, err = _run(capsys, "admin", "entry", "approve", "999999", "--home", str(tmp_path))
    assert code == 2 and "no entry 999999" in err
    code, _, err = _run(capsys, "admin", "entry", "approve", str(no_diff), "--home", str(tmp_path))
    assert code == 2 and "no diff of this fork" in err and "nothing to approve" in err  # issue 21 (d)
    code, out, _ = _run(
        capsys, "admin", "entry", "approve", str(entry_id), "--note", "diff read", "--home", str(tmp_path)
    )
    assert code == 0 and json.loads(out)["status"] == "verified" and json.loads(out)["rank"] == 1
    with session_scope(db.sessionmaker) as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "entry.approve")))
        assert [e.detail["fork_diff_sha256"] for e in events] == ["d" * 64]
    db.close()
