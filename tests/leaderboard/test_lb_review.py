"""Track settings of the site: fork review and approval, bounded admin edits, and a rule change
that re-reads the track's entries (all audited)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from lb_support import Api, Users
from lb_verify import FORK, board, complete, complete_fork, entry, gpu_report, submit
from sqlalchemy import update
from sqlalchemy.orm import Session

from contract.schema import FORK_REVIEW_NOTE
from contract.tracks import BUILTIN_TRACKS
from leaderboard.tracks.models import Track


def _audit(api: Api, users: Users, action: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get("/api/admin/audit", token=users.admin).json()
    return [e for e in events if e["action"] == action]


DIFF = b"diff --git a/scorer.py b/scorer.py\n--- a/scorer.py\n+++ b/scorer.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"


def test_a_verified_fork_waits_for_code_review_then_ranks(api: Api, users: Users) -> None:
    sub = submit(api, users.alice, trainer=FORK)
    eid = sub["entry_id"]
    assert complete_fork(api, users, DIFF) == 200
    detail = entry(api, eid)
    assert detail["verifications"][0]["site"]["fork_diff"]["insertions"] == 12  # what the reviewer reads
    e = detail["entry"]
    assert e["status"] == "awaiting_review" and e["badge"] == "verified, awaiting code review"
    assert e["review_status"] == "pending" and e["rank"] is None and board(api) == []
    url = f"/api/admin/entries/{eid}/approve"
    assert api.post(url, json={"note": "diff read"}, token=users.alice).status_code == 403
    r = api.post(url, json={"note": "diff read", "diff_sha256": hashlib.sha256(DIFF).hexdigest()}, token=users.admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "verified" and r.json()["review_status"] == "approved"
    assert [row["id"] for row in board(api)] == [eid]
    assert api.post(url, json={}, token=users.admin).status_code == 409  # approved once
    approved = _audit(api, users, "entry.approve")[0]["detail"]
    assert approved["note"] == "diff read" and approved["fork_diff_sha256"] == hashlib.sha256(DIFF).hexdigest()


def _refused(api: Api, users: Users, eid: int, **body: Any) -> str:
    r = api.post(f"/api/admin/entries/{eid}/approve", json=body, token=users.admin)
    assert r.status_code == 409, r.text
    assert board(api) == [] and entry(api, eid)["entry"]["review_status"] != "approved"
    return str(r.json()["detail"])


def test_a_fork_with_no_common_history_is_refused_with_the_reason(api: Api, users: Users) -> None:
    """Issue 21 (d): the verifier has no diff (no merge base); on a review track the site refuses it."""
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    why = f"{FORK_REVIEW_NOTE}commit {'c' * 40} has no common history with the reference trainer"
    rep = gpu_report(trainer=FORK)
    assert complete(api, users, rep.model_copy(update={"reasons": [*rep.reasons, why]})) == 200
    detail = entry(api, eid)
    assert detail["entry"]["status"] == "rejected" and detail["entry"]["review_status"] is None
    reasons = " ".join(detail["verifications"][0]["reasons"])
    assert "has no diff (commit" in reasons and "no common history with the reference trainer" in reasons
    assert "this one is rejected" in _refused(api, users, eid)


def test_a_fork_without_a_diff_verifies_on_a_track_without_review(api: Api, users: Users) -> None:
    api.patch("/api/admin/tracks/gpt2-cost", json={"fork_review": "none"}, token=users.admin)
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert complete(api, users, gpu_report(trainer=FORK)) == 200
    assert entry(api, eid)["entry"]["status"] == "verified"


@pytest.mark.parametrize(
    ("upload", "diff", "says"),
    [
        (True, {"truncated": True}, "cut at its size cap"),
        (True, {"files_truncated": True, "files_changed": 3}, "3 files changed and the summary lists 2"),
        (False, {}, "was not uploaded"),
    ],
)
def test_approval_is_refused_for_a_diff_not_shown_in_full(
    api: Api, users: Users, upload: bool, diff: dict[str, Any], says: str
) -> None:
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert complete_fork(api, users, DIFF if upload else None, **diff) == 200
    assert entry(api, eid)["entry"]["status"] == "awaiting_review"
    assert says in _refused(api, users, eid, note="looked")


def test_approval_is_refused_for_a_diff_other_than_the_one_read(api: Api, users: Users) -> None:
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert complete_fork(api, users, DIFF) == 200
    assert "not the one you read" in _refused(api, users, eid, diff_sha256="e" * 64)


def test_the_reference_trainer_needs_no_review(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    assert complete(api, users, gpu_report()) == 200
    assert entry(api, sub["entry_id"])["entry"]["review_status"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("gpus_per_node", 68287),
        ("alpha", 5e-324),
        ("nodes", 10**6),
        ("threshold", 1e308),
        ("max_verifications", 0),
        ("clock_tolerance", -1),
        ("require_sealed", None),
    ],
)
def test_admin_track_edits_are_bounded(api: Api, users: Users, field: str, value: Any) -> None:
    before = api.get("/api/tracks/gpt2-cost").json()
    r = api.patch("/api/admin/tracks/gpt2-cost", json={field: value}, token=users.admin)
    assert r.status_code == 422 and field in r.text, r.text
    assert api.get("/api/tracks/gpt2-cost").json() == before


def test_a_rule_change_reevaluates_the_tracks_entries(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    eid = sub["entry_id"]
    assert complete(api, users, gpu_report()) == 200
    assert entry(api, eid)["entry"]["rank"] == 1
    r = api.patch("/api/admin/tracks/gpt2-cost", json={"threshold": 0.29}, token=users.admin)
    assert r.status_code == 200, r.text
    detail = entry(api, eid)
    assert detail["entry"]["status"] == "failed" and board(api) == []
    assert [v["verdict"] for v in detail["verifications"]] == ["verified"]  # the history stays
    event = _audit(api, users, "track.reevaluate")[0]
    assert event["detail"]["entries"][0]["entry_id"] == eid
    assert event["detail"]["entries"][0]["after"]["status"] == "failed"
    api.patch("/api/admin/tracks/gpt2-cost", json={"threshold": 0.256525}, token=users.admin)
    assert [row["id"] for row in board(api)] == [eid]  # and back


def test_fork_review_can_be_switched_off_for_a_track(api: Api, users: Users) -> None:
    sub = submit(api, users.alice, trainer=FORK)
    assert complete_fork(api, users, DIFF) == 200
    assert entry(api, sub["entry_id"])["entry"]["status"] == "awaiting_review"
    r = api.patch("/api/admin/tracks/gpt2-cost", json={"fork_review": "none"}, token=users.admin)
    assert r.status_code == 200 and r.json()["fork_review"] == "none"
    assert entry(api, sub["entry_id"])["entry"]["status"] == "verified"


def _set_rules_version(session: Session, version: str) -> None:
    session.execute(update(Track).where(Track.slug == "gpt2-cost").values(rules_version=version))
    session.commit()


def test_entries_verified_under_v1_keep_their_label(api: Api, users: Users, session: Session) -> None:
    v1 = BUILTIN_TRACKS["gpt2-cost"].model_copy(update={"rules_version": "speedrun-v1"})
    _set_rules_version(session, "speedrun-v1")
    old = submit(api, users.alice)["entry_id"]
    assert complete(api, users, gpu_report(track=v1)) == 200
    _set_rules_version(session, "speedrun-v2")  # the track moves on (migration 20261201_0001)
    r = api.patch("/api/admin/tracks/gpt2-cost", json={"clock_tolerance": 0.4}, token=users.admin)
    assert r.status_code == 200, r.text  # a rule change: every entry is re-read
    e = entry(api, old)["entry"]
    assert e["status"] == "verified" and e["rules_version"] == "speedrun-v1" and e["other_rules"] is True
    new = submit(api, users.alice)["entry_id"]  # a v1 report cannot verify a v2 entry
    assert complete(api, users, gpu_report(track=v1)) == 200
    detail = entry(api, new)
    assert detail["entry"]["status"] == "rejected"
    assert "rules version speedrun-v1, the track needs speedrun-v2" in " ".join(detail["verifications"][0]["reasons"])
