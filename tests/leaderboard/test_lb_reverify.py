"""Re-verification cannot be p-hacked (docs/RULES.md): runs pool, alpha shrinks per look, owners are
capped, every verdict stays, admins can still re-verify, and GPU runs have a weekly quota."""

from __future__ import annotations

from typing import Any

import pytest
from lb_support import Api, Users
from lb_verify import board, complete, entry, gpu_report, submit
from sqlalchemy import update
from sqlalchemy.orm import Session

from contract import protocol
from leaderboard.entries.models import Verification

FAILING = (0.20, 0.30, 0.25)  # mean 0.25 < threshold 0.2565: p > 0.05
LUCKY = (0.27, 0.28, 0.29)  # alone, p = 0.02


def _reverify(api: Api, token: str, entry_id: int) -> Any:
    return api.post(f"/api/entries/{entry_id}/reverify", json={"reason": "again"}, token=token)


def test_a_lucky_retry_does_not_replace_a_failed_verdict(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    eid = sub["entry_id"]
    assert complete(api, users, gpu_report(cores=FAILING)) == 200
    assert entry(api, eid)["entry"]["status"] == "failed"
    assert _reverify(api, users.alice, eid).status_code == 201
    assert complete(api, users, gpu_report(cores=LUCKY, seeds=(21, 22, 23))) == 200
    detail = entry(api, eid)
    verdicts = [(v["verdict"], v["site"]["looks"], v["site"]["pool_runs"]) for v in detail["verifications"]]
    assert verdicts == [("failed", 2, 6), ("failed", 1, 3)]  # newest first; both kept
    latest = detail["verifications"][0]
    assert latest["site"]["alpha_applied"] == pytest.approx(0.025) and latest["core_n"] == 6
    assert len(detail["verified_runs"]) == 6  # every counted run is shown
    assert detail["entry"]["status"] == "failed" and board(api) == []


def test_owners_are_capped_and_admins_may_still_reverify(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    eid = sub["entry_id"]
    assert complete(api, users, gpu_report(cores=FAILING)) == 200
    for look in range(2):
        assert _reverify(api, users.alice, eid).status_code == 201
        assert (
            complete(api, users, gpu_report(cores=FAILING, seeds=(31 + 3 * look, 32 + 3 * look, 33 + 3 * look))) == 200
        )
    refused = _reverify(api, users.alice, eid)
    assert refused.status_code == 409 and "3 counted verification(s)" in refused.text
    assert _reverify(api, users.bob, eid).status_code == 403  # not someone else's record
    assert _reverify(api, users.admin, eid).status_code == 201  # an admin still can
    detail = entry(api, eid)
    assert len(detail["verifications"]) == 3 and detail["counted_verifications"] == 3


def test_a_rejected_report_neither_counts_nor_unranks(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    eid = sub["entry_id"]
    assert complete(api, users, gpu_report()) == 200
    assert entry(api, eid)["entry"]["rank"] == 1
    assert _reverify(api, users.alice, eid).status_code == 201
    assert complete(api, users, gpu_report(sealed=False)) == 200  # unsealed runs on a GPT-2 track
    detail = entry(api, eid)
    assert [v["verdict"] for v in detail["verifications"]] == ["rejected", "verified"]
    assert "requires sealed verification" in " ".join(detail["verifications"][0]["reasons"])
    assert detail["entry"]["status"] == "verified" and detail["entry"]["rank"] == 1
    assert detail["entry"]["core_n"] == 3


def test_a_weekly_quota_of_gpu_runs_per_user(api: Api, users: Users) -> None:
    for _ in range(4):  # 4 x 3 runs = the gpt2 tracks' 12 per week
        submit(api, users.alice)
    from lb_factories import submission

    r = api.post(
        protocol.SUBMISSIONS,
        json=submission(track="gpt2-cost", sku="h100-sxm", gpus=8, core=0.28).model_dump(mode="json"),
        token=users.alice,
    )
    assert r.status_code == 429 and "allows 12 per user per week" in r.text
    submit(api, users.bob)  # another user's quota is their own


def test_an_honest_entry_that_was_unlucky_verifies_on_the_pool(api: Api, users: Users) -> None:
    eid = submit(api, users.alice)["entry_id"]
    assert complete(api, users, gpu_report(cores=(0.25, 0.29, 0.30))) == 200  # p = 0.13 alone
    assert entry(api, eid)["entry"]["status"] == "failed"
    assert _reverify(api, users.alice, eid).status_code == 201
    assert complete(api, users, gpu_report(cores=(0.29, 0.30, 0.31), seeds=(21, 22, 23))) == 200
    e = entry(api, eid)["entry"]
    assert e["status"] == "verified" and e["core_n"] == 6 and e["p_value"] < 0.025
    assert e["core_mean"] == pytest.approx(0.29) and [r["id"] for r in board(api)] == [eid]


def test_reverification_counts_against_the_weekly_quota(api: Api, users: Users) -> None:
    eid = submit(api, users.alice)["entry_id"]
    assert complete(api, users, gpu_report(cores=FAILING)) == 200
    for _ in range(3):
        submit(api, users.alice)  # 4 jobs x 3 runs: the week's 12
    r = _reverify(api, users.alice, eid)
    assert r.status_code == 429 and "the track allows 12" in r.text
    assert _reverify(api, users.admin, eid).status_code == 201  # admins are exempt


def test_a_stored_report_that_no_longer_reads_counts_nothing(api: Api, users: Users, session: Session) -> None:
    eid = submit(api, users.alice)["entry_id"]
    assert complete(api, users, gpu_report(cores=FAILING)) == 200
    session.execute(update(Verification).where(Verification.entry_id == eid).values(report={"schema_version": 99}))
    session.commit()
    assert _reverify(api, users.admin, eid).status_code == 201
    assert complete(api, users, gpu_report(seeds=(41, 42, 43))) == 200  # no 500
    e = entry(api, eid)["entry"]
    assert e["status"] == "verified" and e["core_n"] == 3  # only the readable report's runs count
