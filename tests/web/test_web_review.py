"""An admin's code review of a fork in headless Chromium on a site of its own (issue 21): the
inline diff on the entry page, approval there (CSRF, note, the diff's sha256), the fork ranked;
and the review box refusing approval without a diff. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import re
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


def test_a_fork_goes_from_speedrun_submit_to_ranked_through_the_approve_button(
    story: Site,
    page: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    artifacts_dir: Path,
) -> None:
    """Issue 21: `speedrun submit --trainer https://host/owner/repo@<sha>` builds the fork's
    submission from its run directories; two worker accounts verify it run by run; the queue says
    "verified · awaiting review" (amber), never green; an admin approves it on the entry page; it ranks."""
    from speedrun.cli import main
    from tests.web.conftest import metrics_jsonl, run_result

    dirs = []
    for seed, core, hours in ((1, 0.2641, 1.52), (2, 0.2633, 1.55)):
        d = tmp_path / f"run-{seed}"
        d.mkdir()
        log = json.dumps({"run": f"cli-fork-{seed}"}) + "\n" + metrics_jsonl(seed)
        result = run_result(seed, core=core, hours=hours, metrics=log).model_copy(update={"run_id": f"cli-fork-{seed}"})
        (d / "result.json").write_text(result.model_dump_json())
        (d / "metrics.jsonl").write_text(log)
        dirs.append(d)
    url, commit = "https://example.org/cli-user/nanochat-fork", "c0ffee" + "0" * 34
    monkeypatch.setenv("SPEEDRUN_TOKEN", story.create_user("cli-forker", "submitter"))
    args = ["submit", "--from-run", *map(str, dirs), "--trainer", f"{url}@{commit}", "--track", "gpt2-8xh100"]
    assert main([*args, "--title", "my fork from the CLI", "--contributor", "@cli", "--server", story.url]) == 0
    printed = capsys.readouterr().out.strip()  # the entry's URL
    assert printed.startswith(f"{story.url}/entries/")
    entry_id = int(printed.rsplit("/", 1)[1])
    body = {"track": "gpt2-8xh100", "claimed_results": [json.loads((dirs[0] / "result.json").read_text())]}
    job_id = story.verify(story.create_user("cli-worker", "worker"), body, fork_diff=FORK_DIFF)
    with story.api() as api:
        job = api.get(f"/api/jobs/{job_id}").json()
        assert job["verdict"] == "awaiting_review"  # not "verified" until an admin approves
        detail = api.get(f"/api/entries/{entry_id}").json()
    assert detail["run_config"]["trainer"] == {
        "kind": "git",
        "version": None,
        "git_url": url,
        "commit": commit,
    }
    assert {w["account"] for w in detail["verifications"][0]["workers"]} == {"cli-worker", story_second(story)}
    page.goto(f"{story.url}/queue")
    badge = page.locator(f"#queue tr[data-job-id='{job_id}'] .verdict")
    expect(badge).to_have_text(re.compile(r"^verified · awaiting review \(p = 0\.00742\)"))
    expect(page.locator("#live")).to_have_text(re.compile(r"^updated \d\d:\d\d:\d\d UTC$"))  # redrawn by queue.js
    expect(badge).to_have_class(re.compile(r"badge-awaiting_review"))  # amber, never verified green
    page.goto(f"{story.url}/submit")
    page.fill("#token", story.create_user("cli-admin", "admin"))
    page.click("#login button[type=submit]")
    page.wait_for_url("**/submit?done=signed-in")
    page.goto(f"{story.url}/entries/{entry_id}")
    page.fill("#approve-note", "read it: one scorer-free change")
    page.click("#approve button[type=submit]")
    page.wait_for_url(f"**/entries/{entry_id}?done=approved")
    page.screenshot(path=str(artifacts_dir / "review-cli-fork-approved.png"), full_page=True)
    with story.api() as api:
        assert api.get(f"/api/jobs/{job_id}").json()["verdict"] == "verified"
        approved = api.get(f"/api/entries/{entry_id}").json()["entry"]
    assert approved["status"] == "verified" and approved["rank"] is not None


def story_second(story: Site) -> str:
    """The name of the site's second worker account (``Site.second_worker``)."""
    story.second_worker()
    return f"second-worker-{id(story)}"
