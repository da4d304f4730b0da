"""An admin sets a track's maximum job duration (API and CLI, SQLite and PostgreSQL): bounded,
audited, shown in the track's JSON, and the lease a worker gets is capped by it."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from lb_factories import fingerprint, submission_json
from lb_support import Api, Users

from contract import protocol
from leaderboard.db import utcnow
from speedrun.cli import main

TRACK = "/api/admin/tracks/cpu-smoke"


def _audit(api: Api, users: Users) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = api.get("/api/admin/audit", token=users.admin).json()
    return [e for e in events if e["action"] == "track.update"]


def test_an_admin_sets_the_maximum_job_duration_and_the_lease_follows(api: Api, users: Users) -> None:
    assert api.get("/api/tracks/cpu-smoke").json()["max_job_seconds"] is None  # the site's default
    assert api.patch(TRACK, json={"max_job_seconds": 600}, token=users.alice).status_code == 403
    r = api.patch(TRACK, json={"max_job_seconds": 600}, token=users.admin)
    assert r.status_code == 200, r.text
    assert r.json()["max_job_seconds"] == 600 and api.get("/api/tracks/cpu-smoke").json()["max_job_seconds"] == 600
    event = _audit(api, users)[0]["detail"]
    assert event["before"] == {"max_job_seconds": None} and event["after"] == {"max_job_seconds": 600}
    assert api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).status_code == 201
    worker = {"worker_id": "w-max", "fingerprint": fingerprint("cpu").model_dump(mode="json")}
    held = api.post(protocol.LEASE, json=worker, token=users.worker).json()
    assert held["lease_expires_at"] <= (utcnow() + timedelta(seconds=601)).isoformat()
    row = re.search(r'<tr data-setting="max_job_seconds">.*?</tr>', api.get("/about").text, re.S)
    assert row is not None and '<td data-track="cpu-smoke">0:10:00</td>' in row[0], row
    r = api.patch(TRACK, json={"max_job_seconds": None}, token=users.admin)  # back to the site's default
    assert r.status_code == 200 and r.json()["max_job_seconds"] is None
    row = re.search(r'<tr data-setting="max_job_seconds">.*?</tr>', api.get("/about").text, re.S)
    assert row is not None and '<td data-track="cpu-smoke">24:00:00 (site default)</td>' in row[0], row


@pytest.mark.parametrize("value", [59, 30 * 86_400 + 1, -1, 1.5, "3600", 10**19])
def test_the_maximum_job_duration_is_bounded(api: Api, users: Users, value: Any) -> None:
    before = api.get("/api/tracks/cpu-smoke").json()
    r = api.patch(TRACK, json={"max_job_seconds": value}, token=users.admin)
    assert r.status_code == 422 and "max_job_seconds" in r.text, r.text
    assert api.get("/api/tracks/cpu-smoke").json() == before
    assert _audit(api, users) == []


def test_the_cli_sets_the_maximum_job_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(tmp_path)
    assert main(["admin", "track", "set", "cpu-smoke", "--max-job-seconds", "7200", "--home", home]) == 0
    assert json.loads(capsys.readouterr().out)["max_job_seconds"] == 7200
    assert main(["admin", "track", "set", "cpu-smoke", "--max-job-seconds", "30", "--home", home]) == 2
    assert "max_job_seconds" in capsys.readouterr().err
