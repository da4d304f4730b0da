"""An admin's code review of a fork in headless Chromium on a site of its own (issue 21): the
inline diff on the entry page, approval there (CSRF, note, the diff's sha256), the fork ranked;
and the review box refusing approval without a diff. Screenshots go to test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

Site = Any
FORK_DIFF = "diff --git a/trainer/model.py b/trainer/model.py\n--- a/trainer/model.py\n+++ b/trainer/model.py\n@@ -10,2 +10,3 @@\n-x = 1\n+x = 2\n+y = 3\n"


@pytest.fixture(scope="module")
def story(own_site: Any) -> Any:
    return own_site


def test_an_admin_approves_a_fork_on_its_entry_page_and_it_ranks(story: Site, page: Any, artifacts_dir: Path) -> None:
    """Issue 21: the admin reads the inline diff on the entry page, approves it there (CSRF, note,
    the diff's sha256), and the fork ranks."""
    body = story.submission("a fork to approve", "review-fork-approve-0001")
    body["run_config"]["trainer"] = {"kind": "git", "git_url": "https://example.org/other/fork.git", "commit": "e" * 40}
    forker = story.create_user("review-forker", "submitter")
    entry_id = int(story.submit(forker, body)["entry_id"])
    story.verify(story.create_user("review-worker", "worker"), body, fork_diff=FORK_DIFF)
    admin = story.create_user("review-admin", "admin")
    page.goto(f"{story.url}/submit")
    page.fill("#token", admin)
    page.click("#login button[type=submit]")
    page.wait_for_url("**/submit?done=signed-in")
    page.goto(f"{story.url}/entries/{entry_id}")
    assert "Code review is required on this track: verified, awaiting" in page.locator("#review-rule").inner_text()
    expect(page.locator("#diff-text .diff-add").first).to_have_text("+x = 2")
    expect(page.locator("#diff-text .diff-del").first).to_have_text("-x = 1")
    page.locator("#code-review").screenshot(path=str(artifacts_dir / "review-box.png"))
    page.fill("#approve-note", "read the whole diff")
    page.click("#approve button[type=submit]")
    page.wait_for_url(f"**/entries/{entry_id}?done=approved")
    assert "this fork's code was approved" in page.locator("#review-rule").inner_text()
    page.screenshot(path=str(artifacts_dir / "review-fork-approved.png"), full_page=True)
    page.goto(story.url + "/tracks/gpt2-8xh100")
    row = page.locator(f'#board tr.entry-row[data-entry-id="{entry_id}"]')
    expect(row.locator("td.rank .rank-n")).to_have_count(1)


def test_a_fork_without_a_diff_has_nothing_to_approve(story: Site, page: Any) -> None:
    body = story.submission("a fork without a diff", "review-fork-nodiff-0001")
    body["run_config"]["trainer"] = {"kind": "git", "git_url": "https://example.org/third/fork.git", "commit": "f" * 40}
    entry_id = int(story.submit(story.create_user("review-forker-2", "submitter"), body)["entry_id"])
    story.verify(story.create_user("review-worker-2", "worker"), body)  # no diff in the report
    page.goto(f"{story.url}/submit")
    page.fill("#token", story.create_user("review-admin-2", "admin"))
    page.click("#login button[type=submit]")
    page.wait_for_url("**/submit?done=signed-in")
    page.goto(f"{story.url}/entries/{entry_id}")
    rule = page.locator("#review-rule").inner_text()
    assert "Code review is required on this track; this fork's verification did not pass" in rule
    assert "not required" not in rule
    expect(page.locator("#approve")).to_have_count(0)
    assert "this report has no diff" in page.locator("#failed-banner").inner_text()
