"""The JSON API on SQLite and PostgreSQL: seeded board, submitting, idempotency, validation, limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from lb_factories import submission_json
from lb_support import Api, Users, make_api
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract.protocol import SUBMISSIONS
from leaderboard.entries.models import Entry, Submission
from leaderboard.settings import Settings


def test_tracks_are_seeded(api: Api) -> None:
    slugs = [t["slug"] for t in api.get("/api/tracks").json()]
    assert slugs == ["gpt2-8xh100", "gpt2-cost", "cpu-smoke"]


def test_seeded_history_is_reported_and_ranked_by_hours(api: Api) -> None:
    board = api.get("/api/tracks/gpt2-8xh100/leaderboard").json()
    rows = board["rows"]
    assert board["total"] == 7
    assert all(r["section"] == "reported" and r["rules_version"] == "nanochat-2026" for r in rows)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5, 6, None]  # GPT-2 (2019) is the baseline, never ranked
    assert rows[-1]["record_date"].startswith("2019")
    assert rows[0]["hours"] == pytest.approx(1.65)
    assert rows[0]["cost_usd"] == pytest.approx(1.65 * 8 * 3.0)  # reference price $3/GPU-h
    assert rows[-1]["hours"] == 168.0


def test_history_row_four_publishes_its_failing_t_test(api: Api) -> None:
    rows = api.get("/api/tracks/gpt2-8xh100/leaderboard").json()["rows"]
    climbmix = next(r for r in rows if "ClimbMix" in r["title"])
    assert climbmix["core_n"] == 7
    assert climbmix["p_value"] > 0.05


def test_leaderboard_filters_by_hardware_and_status(api: Api) -> None:
    tpu = api.get("/api/tracks/gpt2-8xh100/leaderboard", params={"hardware": "tpu-v3"}).json()
    assert [r["hardware_class"] for r in tpu["rows"]] == ["tpu-v3"]
    assert api.get("/api/tracks/gpt2-8xh100/leaderboard", params={"status": "verified"}).json()["total"] == 0
    assert "h100-sxm" in tpu["hardware_options"]


def test_leaderboard_pages(api: Api) -> None:
    page2 = api.get("/api/tracks/gpt2-8xh100/leaderboard", params={"per_page": 3, "page": 2}).json()
    assert page2["pages"] == 3
    assert [r["rank"] for r in page2["rows"]] == [4, 5, 6]


def test_progression_marks_records_and_the_compute_floor(api: Api) -> None:
    prog = api.get("/api/tracks/gpt2-8xh100/progression").json()
    hours = [p["hours"] for p in prog["records"]]
    assert hours[0] == 168.0 and hours == sorted(hours, reverse=True)
    last = prog["records"][-1]
    assert last["floor_hours"] is not None and 0 < last["floor_hours"] < last["hours"]


def test_unknown_track_is_404_rendered_as_error(api: Api) -> None:
    r = api.get("/api/tracks/nope/leaderboard")
    assert r.status_code == 404
    assert r.json()["error"] == "not_found"


def test_submit_creates_entry_and_queues_a_job(api: Api, users: Users) -> None:
    r = api.post(SUBMISSIONS, json=submission_json(), token=users.alice)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["url"] == f"http://testserver/entries/{body['entry_id']}"
    entry = api.get(f"/api/entries/{body['entry_id']}").json()
    assert entry["entry"]["status"] == "pending"
    assert entry["description"] == "<b>not bold</b>"
    assert [a["kind"] for a in entry["artifacts"]] == ["result", "log"]
    queue = api.get("/api/queue").json()
    assert [j["id"] for j in queue["jobs"]] == [body["job_id"]]
    assert queue["jobs"][0]["status"] == "queued"


def test_same_key_same_body_replays_the_reply(api: Api, users: Users, session: Session) -> None:
    data = submission_json(key="replay-key-0001")
    first = api.post(SUBMISSIONS, json=data, token=users.alice)
    again = api.post(SUBMISSIONS, json=data, token=users.alice)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    n = session.scalar(select(func.count(Submission.id)).where(Submission.idempotency_key == "replay-key-0001"))
    assert n == 1


def test_same_key_other_body_is_a_conflict(api: Api, users: Users) -> None:
    assert api.post(SUBMISSIONS, json=submission_json(key="conflict-key-1"), token=users.alice).status_code == 201
    r = api.post(SUBMISSIONS, json=submission_json(key="conflict-key-1", title="other"), token=users.alice)
    assert r.status_code == 409
    assert r.json()["error"] == "conflict"


def test_keys_are_per_user(api: Api, users: Users) -> None:
    data = submission_json(key="shared-key-0001")
    assert api.post(SUBMISSIONS, json=data, token=users.alice).status_code == 201
    own = submission_json(key="shared-key-0001", core=0.21)  # bob's own run (a copy of alice's is refused)
    assert api.post(SUBMISSIONS, json=own, token=users.bob).status_code == 201


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("title"), "title"),
        (lambda d: d["run_config"].update(gpus_per_node=-1), "run_config.gpus_per_node"),
        (lambda d: d.update(track="gpt2-8xh100"), "run_config.hardware_class"),
        (lambda d: d.update(track="no-such-track"), "track"),
        (lambda d: d["claimed_results"][0].update(rules_version="nanochat-2026"), "claimed_results.0.rules_version"),
        (lambda d: d.update(extra_field=1), "extra_field"),
    ],
)
def test_validation_errors_name_the_field(api: Api, users: Users, mutate: object, field: str, session: Session) -> None:
    data = submission_json()
    mutate(data)  # type: ignore[operator]
    before = session.scalar(select(func.count(Entry.id)))
    r = api.post(SUBMISSIONS, json=data, token=users.alice)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error"
    assert any(d["field"] == field for d in body["detail"]), body["detail"]
    assert session.scalar(select(func.count(Entry.id))) == before  # nothing half-stored


def test_body_over_the_limit_is_413(settings: Settings, session: Session, users: Users) -> None:
    api = make_api(settings.model_copy(update={"max_request_bytes": 4096}), session)
    try:
        data = submission_json(logs=[{"name": "big.log", "content": "x" * 10_000}])
        r = api.post(SUBMISSIONS, json=data, token=users.alice)
        assert r.status_code == 413
        assert r.json()["error"] == "payload_too_large"
    finally:
        api.close()


def test_chunked_body_over_the_limit_is_413(settings: Settings, session: Session, users: Users) -> None:
    api = make_api(settings.model_copy(update={"max_request_bytes": 4096}), session)

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"x" * 1000

    try:
        r = api.post(SUBMISSIONS, content=chunks(), token=users.alice, headers={"content-type": "application/json"})
        assert r.status_code == 413
    finally:
        api.close()


def test_submissions_are_rate_limited_per_token(settings: Settings, session: Session, users: Users) -> None:
    api = make_api(settings.model_copy(update={"submit_rate_per_minute": 2}), session)
    try:
        codes = [api.post(SUBMISSIONS, json=submission_json(), token=users.alice).status_code for _ in range(3)]
        assert codes == [201, 201, 429]
        own = submission_json(core=0.21)  # bob's own run: a byte copy of alice's is refused (409)
        assert api.post(SUBMISSIONS, json=own, token=users.bob).status_code == 201
    finally:
        api.close()


def test_artifacts_are_served_by_digest_with_safe_types(api: Api, users: Users) -> None:
    data = submission_json(logs=[{"name": "x.log", "content": "<script>alert(1)</script>"}])
    entry_id = api.post(SUBMISSIONS, json=data, token=users.alice).json()["entry_id"]
    arts = api.get(f"/api/entries/{entry_id}").json()["artifacts"]
    log = next(a for a in arts if a["kind"] == "log")
    r = api.get(log["url"])
    assert r.status_code == 200
    assert r.text == "<script>alert(1)</script>"
    assert r.headers["content-type"].startswith("text/plain")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert api.get("/api/artifacts/" + "0" * 64).status_code == 404
    assert api.get("/api/artifacts/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)


def test_artifact_files_live_under_their_digest(api: Api, users: Users, settings: Settings) -> None:
    entry_id = api.post(SUBMISSIONS, json=submission_json(), token=users.alice).json()["entry_id"]
    for art in api.get(f"/api/entries/{entry_id}").json()["artifacts"]:
        sha = art["sha256"]
        assert (Path(settings.resolved_artifacts_dir) / sha[:2] / sha[2:4] / sha).is_file()


def test_health_reports_the_database(api: Api) -> None:
    r = api.get("/api/health")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok" and r.json()["database"] == "ok"


def test_a_hostile_log_name_is_refused_before_it_can_reach_a_download_header(api: Api, users: Users) -> None:
    # a submitter names its log to inject header parameters or a path
    data = submission_json(logs=[{"name": "x.log", "content": "hello"}])
    data["logs"][0]["name"] = 'dir/ev"il; filename=x.exe .log'
    before = api.get("/api/tracks/cpu-smoke/leaderboard?status=all").json()["total"]
    r = api.post(SUBMISSIONS, json=data, token=users.alice)
    assert r.status_code == 422 and "logs.0.name" in r.text, r.text
    assert api.get("/api/tracks/cpu-smoke/leaderboard?status=all").json()["total"] == before
