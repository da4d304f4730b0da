"""The pages over PostgreSQL: the seeded board, a form submission and its entry page."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.postgres


def test_pages_render_over_postgresql(pg_site: Any) -> None:
    board = httpx.get(pg_site.url + "/")
    assert board.status_code == 200
    assert len(re.findall(r'class="entry-row reported"', board.text)) == 6  # and GPT-2 (2019) as row 0
    assert len(re.findall(r'class="entry-row baseline"', board.text)) == 1
    for page in ("/progression", "/queue", "/about", "/tracks/gpt2-cost?sort=cost", "/tracks/cpu-smoke"):
        assert httpx.get(pg_site.url + page).status_code == 200, page


def test_form_submission_over_postgresql(pg_site: Any, make_submission: Any) -> None:
    token = pg_site.create_user("pg-submitter", "submitter")
    with httpx.Client(base_url=pg_site.url, timeout=30) as client:
        page = client.get("/submit").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf is not None
        assert client.post("/login", data={"token": token, "csrf_token": csrf.group(1)}).status_code == 303
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/submit").text)  # new nonce after sign-in
        assert csrf is not None
        body = json.dumps(make_submission("postgres run <b>", "pg-web-0001"))
        r = client.post("/submit", data={"body": body, "csrf_token": csrf.group(1)})
        assert r.status_code == 303, r.text
        entry = client.get(r.headers["location"])
        assert entry.status_code == 200
        assert "postgres run &lt;b&gt;" in entry.text
        assert "Submission accepted" in unescape(entry.text)
