"""Issue 21's review tricks end to end through the site (SQLite and PostgreSQL): each trick is a
real git repository diffed by the verifier's own code (``submissions.review``), uploaded and
reported as a worker does, then read on the entry page over HTTP; an admin approves on that page
(CSRF, note, the diff's sha256) or is refused with the reason. The history trick (b) is closed
before the site (the checkout loses its ``.git``): tests/submissions/test_review_diff.py."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pytest
from lb_support import Api, Users
from lb_verify import FORK, board, complete, complete_fork, gpu_report, submit

from submissions import review
from tests.submissions.review_repos import (
    HIDDEN,
    commit_all,
    fetched,
    fork_of,
    generated_files,
    hide_with_gitattributes,
    orphan,
    patch_scorer,
)


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _box(page: str) -> str:
    found = re.search(r'<section class="card" id="code-review">.*?</section>', page, re.S)
    assert found is not None, "the page has no code-review box"
    return _text(found[0])


def _report_fork(api: Api, users: Users, fork: Path, commit: str, tmp_path: Path) -> int:
    """Submit the fork, diff it as the verifier does, upload the diff and complete with its summary."""
    trainer = {**FORK, "git_url": "https://example.org/someone/fork.git", "commit": commit}
    eid = int(submit(api, users.alice, trainer=trainer)["entry_id"])
    diff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(diff, review.ReviewDiff)
    summary = diff.summary("fork.diff").model_dump(mode="json", exclude={"sha256", "size_bytes"})
    assert complete_fork(api, users, diff.text, rep=gpu_report(trainer=trainer), **summary) == 200
    return eid


def _sign_in(api: Api, token: str) -> None:
    page = api.get("/submit")
    assert api.post("/login", data={"token": token, "csrf_token": _csrf(page.text)}).status_code == 303


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF field"
    return found.group(1)


def _approve_form(page: str) -> dict[str, Any]:
    form = re.search(r'<form method="post" action="/entries/\d+/approve" id="approve">.*?</form>', page, re.S)
    assert form is not None, "no approve form on the page"
    sha = re.search(r'name="diff_sha256" value="([0-9a-f]{64})"', form[0])
    assert sha is not None
    return {"csrf_token": _csrf(form[0]), "diff_sha256": sha[1], "note": "read every page"}


def test_gitattributes_trick_shows_the_hidden_line_and_an_admin_approves_on_the_page(
    api: Api, users: Users, reference: Path, tmp_path: Path
) -> None:
    """(a) ``*.py -diff``: the box shows the patched scorer line by line, and the counts are real."""
    fork = fork_of(reference, tmp_path / "fork")
    hide_with_gitattributes(fork)
    patch_scorer(fork)
    eid = _report_fork(api, users, fork, commit_all(fork, "speed-ups"), tmp_path)
    page = api.get(f"/entries/{eid}").text
    box = _box(page)
    counts = re.search(r'id="diff-counts">(.*?)</dd>', page)
    assert counts is not None and _text(counts[1]).split()[:3] == ["2", "+6", "−1"]  # not "+0 -0"
    assert HIDDEN in box
    assert "a .gitattributes file" in box and "Binary files" not in box
    assert re.search(r'<span class="diff-add">\+SCORE_BONUS = <span class="py-num">0\.9</span>', page)
    assert 'id="approve"' not in page  # anonymous: no form
    _sign_in(api, users.admin)
    form = _approve_form(api.get(f"/entries/{eid}").text)
    no_csrf = api.post(f"/entries/{eid}/approve", data={**form, "csrf_token": "forged"})
    assert no_csrf.status_code == 403 and board(api) == []
    r = api.post(f"/entries/{eid}/approve", data=form)
    assert r.status_code == 303 and r.headers["location"].endswith("?done=approved"), r.text[:300]
    assert [row["id"] for row in board(api)] == [eid]
    events = api.get("/api/admin/audit", token=users.admin).json()
    approved = next(e for e in events if e["action"] == "entry.approve")["detail"]
    assert approved["fork_diff_sha256"] == form["diff_sha256"] and approved["note"] == "read every page"
    assert approved["flags"] == ["gitattributes"]
    assert "this fork's code was approved" in _box(api.get(f"/entries/{eid}").text)


def test_generated_files_do_not_hide_the_real_change_every_page_is_reachable(
    api: Api, users: Users, reference: Path, tmp_path: Path
) -> None:
    """(c) 2,000 generated files in front: every file is listed and the diff pages reach the patch."""
    fork = fork_of(reference, tmp_path / "fork")
    generated_files(fork, 2000, 60)
    patch_scorer(fork)
    eid = _report_fork(api, users, fork, commit_all(fork, "generated"), tmp_path)
    first = api.get(f"/entries/{eid}").text
    assert "every changed file (2001)" in _text(first) and ">scorer.py<" in first
    pages = int(re.search(r"page 1 of (\d+)", _text(first))[1])  # type: ignore[index]
    assert pages > 1 and HIDDEN not in _box(first)
    last = api.get(f"/entries/{eid}?diff_page={pages}").text
    assert HIDDEN in _box(last) and f"page {pages} of {pages}" in _text(last)
    seen = "".join(_box(api.get(f"/entries/{eid}?diff_page={n}").text) for n in range(1, pages + 1))
    assert all(f"aaa_generated/f{i:04d}.py" in seen for i in (0, 999, 1999))


def test_a_cut_diff_is_said_loudly_and_cannot_be_approved_on_the_page(
    api: Api, users: Users, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fork = fork_of(reference, tmp_path / "fork")
    generated_files(fork, 20, 2000)
    patch_scorer(fork)
    monkeypatch.setattr(review, "MAX_DIFF_BYTES", 64 * 1024)
    eid = _report_fork(api, users, fork, commit_all(fork, "big"), tmp_path)
    _sign_in(api, users.admin)
    page = api.get(f"/entries/{eid}").text
    assert "truncated" in _box(page) and "This diff cannot be approved: the diff was cut" in _box(page)
    assert 'id="approve"' not in page and "Approval: the diff was cut at its size cap" in _text(page)
    sha = re.search(r"sha256 <code>([0-9a-f]{64})</code>", page)
    assert sha is not None
    r = api.post(f"/entries/{eid}/approve", data={"csrf_token": _csrf(page), "diff_sha256": sha[1], "note": ""})
    assert r.status_code == 409 and "cut at its size cap" in html.unescape(r.text) and board(api) == []


def test_a_fork_without_common_history_is_refused_and_says_review_is_required(
    api: Api, users: Users, reference: Path, tmp_path: Path
) -> None:
    """(d) no merge base: the verifier says why, the site refuses it, the box never says "not required"."""
    fork, commit = orphan(tmp_path / "orphan")
    nodiff = review.fork_diff(fetched(fork, commit, tmp_path), commit, allow_local=True)
    assert isinstance(nodiff, review.NoDiff)
    trainer = {**FORK, "commit": commit}
    eid = submit(api, users.alice, trainer=trainer)["entry_id"]
    rep = gpu_report(trainer=trainer)
    assert complete(api, users, rep.model_copy(update={"reasons": [*rep.reasons, nodiff.note]})) == 200
    page = api.get(f"/entries/{eid}").text
    assert "no common history with the reference trainer" in _text(page)  # the failed banner's reasons
    box = _box(page)
    assert "Code review is required on this track; this fork's verification did not pass" in box
    assert "not required" not in box and "nothing to approve" in box
    r = api.post(f"/api/admin/entries/{eid}/approve", json={"note": "x"}, token=users.admin)
    assert r.status_code == 409 and board(api) == []


def test_the_review_rule_is_stated_truthfully_in_each_state(api: Api, users: Users) -> None:
    failed = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert (
        complete_fork(api, users, b"diff --git a/x b/x\n", rep=gpu_report(trainer=FORK, cores=(0.2, 0.2, 0.21))) == 200
    )
    box = _box(api.get(f"/entries/{failed}").text)
    assert "Code review is required on this track; this fork's verification did not pass" in box
    queued = submit(api, users.alice, trainer=FORK, core=0.281)["entry_id"]
    assert "it starts once this fork's verification passes" in _box(api.get(f"/entries/{queued}").text)
    reference_entry = submit(api, users.bob)["entry_id"]
    assert "the reference trainer needs none" in _text(api.get(f"/entries/{reference_entry}").text)
    api.patch("/api/admin/tracks/gpt2-cost", json={"fork_review": "none"}, token=users.admin)
    assert "Code review is not required on this track." in _box(api.get(f"/entries/{failed}").text)


def test_approve_on_the_page_is_refused_without_a_diff(api: Api, users: Users) -> None:
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert complete_fork(api, users, None) == 200  # a summary whose diff was never uploaded
    _sign_in(api, users.admin)
    page = api.get(f"/entries/{eid}").text
    assert 'id="approve"' not in page and "was not uploaded" in _text(page)
    r = api.post(f"/entries/{eid}/approve", data={"csrf_token": _csrf(page), "diff_sha256": "d" * 64})
    assert r.status_code == 409 and "nothing to approve" in html.unescape(r.text) and board(api) == []
