"""Ranking and cost math: pure functions, and the ranks the service stores after verifications."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from lb_factories import report, run_config, submission_json
from lb_support import Api, Users
from lb_verify import complete
from sqlalchemy.orm import Session

from contract import protocol
from contract.tracks import BUILTIN_TRACKS
from leaderboard.entries.ranking import Rankable, cost_usd, rank
from leaderboard.tracks.models import Price


def test_cost_is_hours_times_gpus_times_price() -> None:
    assert cost_usd(1.65, 8, 3.0) == pytest.approx(39.6)


def test_cost_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="cost_usd"):
        cost_usd(-1, 8, 3.0)


def test_ties_in_time_are_broken_by_core() -> None:
    rows = [
        Rankable(1, "verified", hours=2.0, cost_usd=48, core_mean=0.26),
        Rankable(2, "verified", hours=2.0, cost_usd=48, core_mean=0.27),
        Rankable(3, "verified", hours=1.0, cost_usd=60, core_mean=0.26),
    ]
    assert rank(rows, "time") == {3: 1, 2: 2, 1: 3}
    assert rank(rows, "cost") == {2: 1, 1: 2, 3: 3}


def test_equal_time_and_core_share_a_rank() -> None:
    rows = [Rankable(i, "verified", hours=1.0, cost_usd=None, core_mean=0.3) for i in (1, 2)]
    assert rank(rows, "time") == {1: 1, 2: 1}
    assert rank(rows, "cost") == {1: None, 2: None}


def test_sections_are_ranked_apart() -> None:
    rows = [
        Rankable(1, "verified", hours=3.0, cost_usd=None, core_mean=0.3),
        Rankable(2, "reported:nanochat-2026", hours=1.0, cost_usd=None, core_mean=0.3),
    ]
    assert rank(rows, "time") == {1: 1, 2: 1}


def _verify_gpu_entry(api: Api, users: Users, *, hours: tuple[float, ...], cores: tuple[float, ...]) -> dict[str, Any]:
    sub = api.post(
        protocol.SUBMISSIONS,
        json=submission_json(track="gpt2-cost", sku="h100-sxm", gpus=8, core=0.27, hours=1.0),
        token=users.alice,
    )
    assert sub.status_code == 201, sub.text
    rep = report(
        BUILTIN_TRACKS["gpt2-cost"],
        run_config("h100-sxm", 8, "gpt2_speedrun"),
        hours=hours,
        cores=cores,
        sku="h100-sxm",
        gpus=8,
    )
    assert complete(api, users, rep) == 200  # runs from two worker accounts, seeds the site's
    entry: dict[str, Any] = api.get(f"/api/entries/{sub.json()['entry_id']}").json()["entry"]
    return entry


def test_verified_cost_uses_the_price_in_force_at_verification(api: Api, users: Users, session: Session) -> None:
    session.add(Price(sku="h100-sxm", usd_per_gpu_hour=2.0, effective_date=date(2026, 10, 1), note="test"))
    session.add(Price(sku="h100-sxm", usd_per_gpu_hour=9.0, effective_date=date(2099, 1, 1), note="future"))
    session.commit()
    entry = _verify_gpu_entry(api, users, hours=(1.5, 1.5, 1.5), cores=(0.27, 0.28, 0.29))
    assert entry["status"] == "verified"
    assert entry["price_usd_per_gpu_hour"] == 2.0
    assert entry["cost_usd"] == pytest.approx(1.5 * 8 * 2.0)


def test_a_faster_verified_entry_takes_rank_one(api: Api, users: Users) -> None:
    slow = _verify_gpu_entry(api, users, hours=(2.0, 2.0, 2.0), cores=(0.27, 0.28, 0.29))
    fast = _verify_gpu_entry(api, users, hours=(1.0, 1.2, 1.1), cores=(0.27, 0.28, 0.29))
    rows = api.get("/api/tracks/gpt2-cost/leaderboard").json()["rows"]
    rows = [r for r in rows if r["section"] == "verified"]  # the seeded history is ranked apart, as reported
    assert [(r["id"], r["rank"]) for r in rows] == [(fast["id"], 1), (slow["id"], 2)]
    assert rows[0]["hours"] == pytest.approx(1.1)
    assert rows[0]["core_n"] == 3 and rows[0]["p_value"] < 0.05


def test_a_report_whose_core_fails_the_t_test_is_not_ranked(api: Api, users: Users) -> None:
    entry = _verify_gpu_entry(api, users, hours=(1.0, 1.0, 1.0), cores=(0.20, 0.30, 0.25))
    assert entry["status"] == "failed" and entry["rank"] is None
    rows = api.get("/api/tracks/gpt2-cost/leaderboard").json()["rows"]
    assert [r for r in rows if r["section"] != "reported"] == []  # only the seeded history ranks
