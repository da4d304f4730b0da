"""The pages over real HTTP (no browser): content, filters, escaping, CSRF, sign-in and submit."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from typing import Any

import httpx
import pytest

HISTORY_TITLES = ("GPT-2 1.5B (original OpenAI run)", "d24 baseline", "total batch 1M tokens")
EVIL = '<script>alert("pwned")</script>'
EVIL_NAME = "<img src=x onerror=alert(1)>"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


def entry_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="entry-row[^"]*" data-entry-id="(\d+)"', html)


def without_baseline(html: str) -> str:
    """The board without its row 0 (GPT-2's 2019 run, pinned apart, not ranked)."""
    return re.sub(r'<tr class="entry-row baseline".*?</tr>', "", html, flags=re.S)


@contextmanager
def signed_in_browser(site: Any, token: str) -> Iterator[httpx.Client]:
    """An HTTP client holding the cookies a browser gets from signing in with ``token``."""
    with httpx.Client(base_url=site.url, timeout=30) as client:
        page = client.get("/submit")
        r = client.post("/login", data={"token": token, "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        yield client


@pytest.fixture(scope="module")
def owner_token(site: Any) -> str:
    return site.create_user("page-owner", "submitter")


@pytest.fixture(scope="module")
def evil_entry(site: Any, owner_token: str) -> int:
    body = site.submission(EVIL, "page-test-evil-0001", contributors=[EVIL_NAME, "@ok"], description=EVIL)
    body["logs"].append({"name": "train.log", "content": f"step 1 loss 9.1\n{EVIL}\nstep 2 loss 8.7\n"})
    return int(site.submit(owner_token, body)["entry_id"])


def test_home_lists_the_seeded_history_marked_reported(site: Any) -> None:
    r = httpx.get(site.url + "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = unescape(r.text)
    for title in HISTORY_TITLES:
        assert title in html
    assert len(entry_rows(r.text)) == 7
    assert html.count('class="entry-row reported"') == 6  # and GPT-2 (2019) pinned apart as row 0
    assert html.count('class="entry-row baseline"') == 1
    assert "reported history" in html
    assert "nanochat-2026" in html


def test_pages_send_hardening_headers(site: Any) -> None:
    r = httpx.get(site.url + "/submit")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    cookie = r.headers["set-cookie"]
    assert "speedrun_csrf=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


def test_sort_by_cost_and_time_orders_rows(site: Any) -> None:
    by_time = without_baseline(httpx.get(site.url + "/tracks/gpt2-8xh100?sort=time").text)
    by_cost = without_baseline(httpx.get(site.url + "/tracks/gpt2-8xh100?sort=cost").text)
    hours = [float(h) for h in re.findall(r'<td class="num hours">([\d.,]+)</td>', by_time.replace(",", ""))]
    assert hours == sorted(hours)
    costs = [float(c) for c in re.findall(r'<td class="num cost">\$([\d.,]+)</td>', by_cost.replace(",", ""))]
    assert costs == sorted(costs) and len(costs) == 6


def test_filters_by_hardware_and_rules_version(site: Any) -> None:
    tpu = httpx.get(site.url + "/tracks/gpt2-8xh100", params={"hardware": "tpu-v3"}).text
    assert len(entry_rows(tpu)) == 1
    assert "original OpenAI run" in tpu
    none = httpx.get(site.url + "/tracks/gpt2-8xh100", params={"rules_version": "speedrun-v1"}).text
    assert entry_rows(none) == []
    assert "No entries match these filters" in none


def test_bad_filter_or_unknown_track_is_an_html_error_naming_it(site: Any) -> None:
    r = httpx.get(site.url + "/tracks/gpt2-8xh100", params={"sort": "speed"})
    assert r.status_code == 400
    assert "sort" in r.text and "<html" in r.text
    r = httpx.get(site.url + "/tracks/no-such-track")
    assert r.status_code == 404
    assert "no-such-track" in unescape(r.text)
    assert httpx.get(site.url + "/entries/999999").status_code == 404


def test_user_text_is_escaped_everywhere(site: Any, evil_entry: int) -> None:
    pages = [
        httpx.get(site.url + f"/entries/{evil_entry}").text,
        httpx.get(site.url + "/tracks/gpt2-8xh100", params={"status": "all"}).text,
        httpx.get(site.url + "/queue").text,
    ]
    for html in pages:
        assert "<script>alert" not in html
        assert "<img src=x" not in html
        assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html or "&lt;script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0]
    assert "step 2 loss 8.7" in pages[0]  # the log is shown inline, escaped like the rest


def test_entry_page_shows_claims_charts_artifacts_and_config(site: Any, evil_entry: int) -> None:
    html = httpx.get(site.url + f"/entries/{evil_entry}").text
    assert 'id="runs"' in html and html.count('data-kind="claimed"') == 2
    assert 'class="chart bar-chart core-bars"' in html or "core-bars" in html
    assert "<polyline" in html  # the loss curve from the submitted metrics log
    assert re.search(r'href="/api/artifacts/[0-9a-f]{64}"', html)
    assert "gpt2_speedrun" in html and "h100-sxm" in html


def test_about_shows_the_live_track_table_and_prices(site: Any) -> None:
    html = unescape(httpx.get(site.url + "/about").text)
    for slug in ("gpt2-8xh100", "gpt2-cost", "cpu-smoke"):
        assert f"/tracks/{slug}" in html
    assert "0.256525" in html
    assert "3.00" in html and "h100-sxm" in html


def test_progression_page_has_the_log_chart(site: Any) -> None:
    html = httpx.get(site.url + "/progression").text
    assert "progression-chart" in html
    assert "training hours (log)" in html
    assert "compute floor" in html
    assert "168" in html


def test_posts_without_a_valid_csrf_token_are_refused(site: Any, owner_token: str, evil_entry: int) -> None:
    with httpx.Client(base_url=site.url) as client:
        client.get("/submit")
        assert client.post("/login", data={"token": owner_token}).status_code == 403
        assert client.post("/login", data={"token": owner_token, "csrf_token": "forged"}).status_code == 403
    with signed_in_browser(site, owner_token) as client:
        assert client.post(f"/entries/{evil_entry}/reverify", data={}).status_code == 403
        assert client.post("/submit", data={"body": "{}", "csrf_token": "x"}).status_code == 403


def test_sign_in_sets_a_signed_httponly_cookie_and_never_shows_the_token(site: Any, owner_token: str) -> None:
    with httpx.Client(base_url=site.url) as client:
        page = client.get("/submit")
        r = client.post("/login", data={"token": owner_token, "csrf_token": csrf_of(page.text)})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"]
        assert "speedrun_session=" in cookie and "HttpOnly" in cookie
        assert owner_token not in cookie  # signed and encoded, never the raw token
        after = client.get("/submit?done=signed-in").text
        assert "signed in as" in after.lower() and "page-owner" in after
        assert owner_token not in after


def test_wrong_token_is_refused_without_echoing_it(site: Any) -> None:
    with httpx.Client(base_url=site.url) as client:
        page = client.get("/submit")
        r = client.post("/login", data={"token": "sr_not-a-real-token", "csrf_token": csrf_of(page.text)})
        assert r.status_code == 401
        assert "sr_not-a-real-token" not in r.text
        assert "speedrun_session" not in r.headers.get("set-cookie", "")


def test_submit_form_names_the_invalid_field(site: Any, owner_token: str) -> None:
    body = site.submission("missing title", "page-test-bad-0001")
    del body["title"]
    with signed_in_browser(site, owner_token) as client:
        page = client.get("/submit").text
        r = client.post("/submit", data={"body": json.dumps(body), "csrf_token": csrf_of(page)})
        assert r.status_code == 422
        assert "<code>title</code>" in r.text
        r = client.post("/submit", data={"body": "{not json", "csrf_token": csrf_of(page)})
        assert r.status_code == 422
        assert "<code>body</code>" in r.text and "not valid JSON" in r.text


def test_submit_form_accepts_an_upload_and_redirects_to_the_entry(site: Any, owner_token: str) -> None:
    body = json.dumps(site.submission("uploaded run", "page-test-upload-0001")).encode()
    with signed_in_browser(site, owner_token) as client:
        page = client.get("/submit").text
        r = client.post(
            "/submit",
            data={"body": "", "csrf_token": csrf_of(page)},
            files={"file": ("run.json", body, "application/json")},
        )
        assert r.status_code == 303
        location = r.headers["location"]
        assert re.fullmatch(r"/entries/\d+\?done=submitted", location)
        html = client.get(location).text
        assert "uploaded run" in html and "Submission accepted" in html
        again = client.post(
            "/submit", data={"body": body.decode(), "csrf_token": csrf_of(page)}
        )  # the same idempotency key and body: the same entry, not a second one
        assert again.headers["location"].split("?")[0] == location.split("?")[0]


def test_only_owner_or_admin_sees_and_can_use_reverify(site: Any, owner_token: str, evil_entry: int) -> None:
    other = site.create_user("page-other", "submitter")
    with signed_in_browser(site, other) as client:
        html = client.get(f"/entries/{evil_entry}").text
        assert 'id="reverify"' not in html and 'id="reverify-why"' in html
        token = csrf_of(client.get("/submit").text)  # a valid form token of this browser
        r = client.post(f"/entries/{evil_entry}/reverify", data={"csrf_token": token})
        assert r.status_code == 403
    with signed_in_browser(site, owner_token) as client:
        html = client.get(f"/entries/{evil_entry}").text
        # its first verification is still queued: no button, the reason instead
        assert 'id="reverify"' not in html
        why = re.search(r'id="reverify-why">([^<]+)<', html)
        assert why is not None and "already queued" in why.group(1)
        # and a request made anyway is a conflict, said plainly
        r = client.post(f"/entries/{evil_entry}/reverify", data={"csrf_token": csrf_of(client.get("/submit").text)})
        assert r.status_code == 409
        assert "already queued" in r.text


def test_pagination_walks_the_board(site: Any) -> None:
    first = without_baseline(httpx.get(site.url + "/tracks/gpt2-8xh100", params={"per_page": 3}).text)
    assert len(entry_rows(first)) == 3
    assert "page 1 of 3" in first
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first)
    assert next_link is not None
    second = without_baseline(httpx.get(site.url + unescape(next_link.group(1))).text)
    assert "page 2 of 3" in second
    assert not set(entry_rows(second)) & set(entry_rows(first))
    last = httpx.get(site.url + "/tracks/gpt2-8xh100", params={"per_page": 3, "page": 3}).text
    assert len(entry_rows(last)) == 1 and 'rel="next"' not in last and 'rel="prev"' in last


@pytest.mark.parametrize(
    "page",
    ["/", "/tracks/gpt2-cost?sort=cost", "/progression", "/queue", "/about", "/entries/1"],
)
def test_every_page_links_its_json_twin(site: Any, page: str) -> None:
    html = httpx.get(site.url + page).text
    found = re.search(r'<link rel="alternate" type="application/json" href="([^"]+)">', html)
    assert found is not None
    twin = httpx.get(site.url + unescape(found.group(1)))
    assert twin.status_code == 200 and twin.headers["content-type"].startswith("application/json")


def test_a_forged_session_cookie_is_just_signed_out(site: Any, owner_token: str) -> None:
    for value in ("garbage", f"{owner_token}.1.x", ""):
        html = httpx.get(site.url + "/submit", cookies={"speedrun_session": value}).text
        assert 'id="login"' in html and "signed in as" not in html.lower()


def test_progress_percent_counts_finished_runs_and_steps() -> None:
    from web.pages.common import progress_percent

    assert progress_percent(None) == 0
    assert progress_percent({"run_index": 0, "runs": 3}) == 0
    assert progress_percent({"run_index": 1, "runs": 3, "step": 500, "steps": 1000}) == 50
    assert progress_percent({"run_index": 2, "runs": 3, "step": 1000, "steps": 1000}) == 100
    assert progress_percent({"run_index": 9, "runs": 3}) == 100


def _run(kind: str, hours: float, core: float, val_bpb: float) -> Any:
    from datetime import UTC, datetime

    from leaderboard.entries.schemas import RunPublic

    return RunPublic(
        id=1, kind=kind, run_id=f"{kind}-{hours}", seed=1, training_seconds=hours * 3600, training_hours=hours,
        wall_seconds=None, steps=None, tokens=None, flops=None, val_bpb=val_bpb, core=core, core_tasks=None,
        mfu=None, hardware=None, result_sha256=None, metrics_sha256=None, verification_id=None,
        created_at=datetime.now(UTC),
    )  # fmt: skip


def test_deltas_mark_slower_or_weaker_verified_runs_as_bad() -> None:
    from web.pages.entry_parts import deltas

    claimed = [_run("claimed", 1.50, 0.262, 0.718), _run("claimed", 1.50, 0.264, 0.718)]
    verified = [_run("verified", 1.65, 0.265, 0.716)]
    rows = {d["label"]: d for d in deltas(claimed, verified, judged=True)}
    assert rows["training time"]["delta"] == "+0:09:00 (+10.0%)" and rows["training time"]["css"] == "delta-bad"
    assert rows["training time"]["claimed"] == "1:30:00" and rows["training time"]["verified"] == "1:39:00"
    assert rows["CORE"]["delta"] == "+0.0020" and rows["CORE"]["css"] == "delta-good"
    assert rows["val_bpb"]["css"] == "delta-good"  # lower bits per byte is better
    assert deltas(claimed, [], judged=True) == []
    # a failed verification's rerun is no win: its differences are shown uncoloured
    faster = [_run("verified", 0.10, 0.20, 0.9)]
    assert all(d["css"] == "" for d in deltas(claimed, faster, judged=False))


def test_admin_retracts_an_entry_with_a_reason(site: Any, make_submission: Any) -> None:
    owner = site.create_user("retract-owner", "submitter")
    entry_id = site.submit(owner, make_submission("to be withdrawn", "page-test-retract-0001"))["entry_id"]
    with signed_in_browser(site, owner) as client:
        assert 'id="retract"' not in client.get(f"/entries/{entry_id}").text  # owners cannot retract
    with signed_in_browser(site, site.create_user("page-admin", "admin")) as client:
        html = client.get(f"/entries/{entry_id}").text
        assert 'id="retract"' in html
        assert (
            client.post(f"/entries/{entry_id}/retract", data={"csrf_token": csrf_of(html), "reason": " "}).status_code
            == 422
        )
        r = client.post(
            f"/entries/{entry_id}/retract", data={"csrf_token": csrf_of(html), "reason": "copied <b>logs</b>"}
        )
        assert r.status_code == 303
        page = client.get(r.headers["location"]).text
        assert "Retracted: copied &lt;b&gt;logs&lt;/b&gt;" in page
        assert 'data-status="retracted"' in page and 'id="retract"' not in page
        assert client.get("/api/queue").json()["counts"].get("cancelled", 0) >= 1
