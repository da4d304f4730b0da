"""Bounded, strict input (SQLite and PostgreSQL): every hostile body gets a 4xx naming the field
or key, and nothing is stored; the same document re-serialized replays; the submit rate limit is
one atomic database counter."""

from __future__ import annotations

import hashlib
import html
import json
import re
from typing import Any

import pytest
from lb_factories import submission_json
from lb_support import Api, Users, make_api
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contract import protocol
from leaderboard.entries.models import Submission
from leaderboard.settings import Settings


def _stored(session: Session) -> int:
    return int(session.scalar(select(func.count(Submission.id))) or 0)


def _post_raw(api: Api, users: Users, body: str) -> Any:
    headers = {"Content-Type": "application/json"}
    return api.post(protocol.SUBMISSIONS, content=body.encode(), headers=headers, token=users.alice)


def _refused(api: Api, users: Users, session: Session, body: dict[str, Any] | str, field: str) -> str:
    """Post ``body``; assert a 422 whose detail names ``field`` and that nothing was stored."""
    before = _stored(session)
    raw = body if isinstance(body, str) else json.dumps(body)
    r = _post_raw(api, users, raw)
    assert r.status_code == 422, r.text[:500]
    fields = [d["field"] for d in r.json()["detail"]]
    assert any(field in f or field in d["msg"] for f, d in zip(fields, r.json()["detail"], strict=True)), fields
    assert _stored(session) == before
    return str(r.json()["detail"])


def test_numeric_strings_are_not_numbers(api: Api, users: Users, session: Session) -> None:
    body = submission_json()
    body["claimed_results"][0]["steps"] = "300"
    _refused(api, users, session, body, "claimed_results.0.steps")
    body = submission_json()
    body["claimed_results"][0]["training_seconds"] = "36.0"
    _refused(api, users, session, body, "claimed_results.0.training_seconds")


def test_a_duplicate_json_key_is_refused_naming_it(api: Api, users: Users, session: Session) -> None:
    raw = json.dumps(submission_json())
    raw = raw.replace('"title": ', '"title": "first", "title": ', 1)
    detail = _refused(api, users, session, raw, "title")
    assert "duplicate key" in detail


@pytest.mark.parametrize("field", ["steps", "tokens"])
def test_integers_beyond_64_bits_are_422_naming_the_field(api: Api, users: Users, session: Session, field: str) -> None:
    body = submission_json()
    body["claimed_results"][0][field] = 2**63
    _refused(api, users, session, body, f"claimed_results.0.{field}")


def test_overflowing_aggregates_are_refused(api: Api, users: Users, session: Session) -> None:
    body = submission_json()
    body["claimed_results"][0]["core"]["core"] = 1.7e308
    _refused(api, users, session, body, "claimed_results.0.core.core")
    body = submission_json()
    body["claimed_results"].append(dict(body["claimed_results"][0], run_id="run-2", seed=2))
    for result in body["claimed_results"]:
        result["flops"] = 1.7e308  # fsum of two of them is inf
    _refused(api, users, session, body, "claimed_results.0.flops")
    raw = json.dumps(submission_json()).replace('"val_bpb": 1.5', '"val_bpb": NaN', 1)
    assert _post_raw(api, users, raw).status_code == 422


def test_deep_nesting_is_refused(api: Api, users: Users, session: Session) -> None:
    deep: Any = 1
    for _ in range(500):
        deep = {"a": deep}
    body = submission_json()
    body["claimed_results"][0]["config"] = deep
    _refused(api, users, session, body, "claimed_results.0.config.a.a")
    shallow_but_too_deep: Any = 1
    for _ in range(40):
        shallow_but_too_deep = [shallow_but_too_deep]
    body = submission_json()
    body["claimed_results"][0]["plan"] = {"x": shallow_but_too_deep}
    _refused(api, users, session, body, "claimed_results.0.plan.x")
    _refused(api, users, session, '{"a":' * 100_000 + "1" + "}" * 100_000, "(body)")  # deeper than the parser


def test_nul_characters_are_refused(api: Api, users: Users, session: Session) -> None:
    body = submission_json()
    body["title"] = "a\x00b"
    _refused(api, users, session, body, "title")
    body = submission_json()
    body["claimed_results"][0]["config"]["note\x00"] = 1
    _refused(api, users, session, body, "claimed_results.0.config")


def test_at_most_the_protocols_22_core_tasks(api: Api, users: Users, session: Session) -> None:
    body = submission_json()
    task = next(iter(body["claimed_results"][0]["core"]["tasks"].values()))
    body["claimed_results"][0]["core"]["tasks"] = {f"task_{i}": task for i in range(100_000)}
    _refused(api, users, session, body, "claimed_results.0.core.tasks")


def test_the_same_document_reserialized_replays(api: Api, users: Users, session: Session) -> None:
    body = submission_json()
    body["run_config"]["overrides"] = {"depth": 4, "device_batch_size": 8}
    first = _post_raw(api, users, json.dumps(body))
    assert first.status_code == 201, first.text
    reordered = json.loads(json.dumps(body))
    reordered["run_config"]["overrides"] = {"device_batch_size": 8, "depth": 4}
    again = _post_raw(api, users, json.dumps(reordered, indent=3, sort_keys=True))
    assert again.status_code == 200 and again.json() == first.json()
    changed = dict(body, title="another title")
    assert _post_raw(api, users, json.dumps(changed)).status_code == 409


@pytest.mark.parametrize("url", ["file:///etc/passwd-repo", "git@github.com:evil/fork.git", "ssh://host/r.git"])
def test_trainer_git_url_must_be_https(api: Api, users: Users, session: Session, url: str) -> None:
    body = submission_json()
    body["run_config"]["trainer"] = {"kind": "git", "git_url": url, "commit": "a" * 40}
    _refused(api, users, session, body, "git_url")


def test_a_claim_may_cite_only_its_own_logs(api: Api, users: Users, session: Session) -> None:
    first = _post_raw(api, users, json.dumps(submission_json(logs=[{"name": "m.jsonl", "content": '{"step": 1}\n'}])))
    assert first.status_code == 201
    victim = api.get(f"/api/entries/{first.json()['entry_id']}").json()["artifacts"]
    foreign = next(a["sha256"] for a in victim if a["name"] == "logs/m.jsonl")
    body = submission_json()
    body["claimed_results"][0]["digests"]["metrics_log_sha256"] = foreign
    _refused(api, users, session, body, "claimed_results.0.digests.metrics_log_sha256")


def test_the_submit_rate_limit_lets_exactly_the_limit_through(
    settings: Settings, session: Session, users: Users
) -> None:
    api = make_api(settings.model_copy(update={"submit_rate_per_minute": 3}), session)
    try:
        codes = [_post_raw(api, users, json.dumps(submission_json())).status_code for _ in range(6)]
        assert codes == [201, 201, 201, 429, 429, 429]
        assert _stored(session) == 3
    finally:
        api.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def test_the_web_form_is_as_strict_as_the_api(api: Api, users: Users, session: Session) -> None:
    page = api.get("/submit")
    assert api.post("/login", data={"token": users.alice, "csrf_token": _csrf(page.text)}).status_code == 303
    csrf = _csrf(api.get("/submit").text)
    before = _stored(session)
    duplicate = json.dumps(submission_json()).replace('"title": ', '"title": "first", "title": ', 1)
    deep = '{"a":' * 100_000 + "1" + "}" * 100_000
    numeric = json.dumps(submission_json()).replace('"steps": ', '"steps": "1", "x": ', 1)
    for body, named in ((duplicate, "duplicate key"), (deep, "nested deeper"), (numeric, "steps")):
        r = api.post("/submit", data={"body": body, "csrf_token": csrf})
        assert r.status_code == 422 and named in html.unescape(r.text), r.text[:300]
    assert _stored(session) == before


def _heaviest_allowed_claim() -> dict[str, Any]:
    """The biggest claim the contract accepts: 20 runs, 22 tasks each, ~60 KiB config and plan, 8 MiB of logs."""
    body = submission_json()
    first = body["claimed_results"][0]
    task = next(iter(first["core"]["tasks"].values()))
    first["core"]["tasks"] = {f"task_{i:02d}": task for i in range(22)}
    first["config"] = {f"k{i:04d}": "x" * 40 for i in range(1200)}
    first["plan"] = {**first["plan"], **{f"p{i:04d}": 1.5 for i in range(4000)}}
    body["claimed_results"] = [dict(first, run_id=f"run-{i}", seed=i + 1) for i in range(20)]
    body["logs"] = [{"name": f"log{i}.txt", "content": f"step {i} loss 3.0\n" * 60_000} for i in range(7)]
    return body


def test_the_entry_page_of_the_heaviest_claim_stays_small(api: Api, users: Users) -> None:
    r = _post_raw(api, users, json.dumps(_heaviest_allowed_claim()))
    assert r.status_code == 201, r.text[:500]
    entry_id = r.json()["entry_id"]
    page = api.get(f"/entries/{entry_id}")
    twin = api.get(f"/api/entries/{entry_id}")
    assert page.status_code == twin.status_code == 200
    assert len(page.content) < 512 * 1024 and len(twin.content) < 512 * 1024, (len(page.content), len(twin.content))


def test_a_submission_stored_with_the_old_digest_still_replays(api: Api, users: Users, session: Session) -> None:
    from sqlalchemy import update

    from contract.schema import Submission as SubmissionModel

    body = submission_json()
    first = _post_raw(api, users, json.dumps(body))
    assert first.status_code == 201
    old = hashlib.sha256(SubmissionModel.model_validate(body).model_dump_json().encode()).hexdigest()
    session.execute(update(Submission).where(Submission.id == first.json()["submission_id"]).values(body_sha256=old))
    session.commit()
    again = _post_raw(api, users, json.dumps(body))
    assert again.status_code == 200 and again.json() == first.json()
