"""The pages in headless Chromium: the seeded board, sorting and filtering, an entry's charts,
the submit form's validation errors, and the queue page following a job as a worker leases it.

Screenshots of the leaderboard and an entry page go to test-artifacts/ for people to look at.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def submitter(site: Any) -> str:
    return site.create_user("browser-submitter", "submitter")


def hms_hours(text: str) -> float:
    """'1:39:00' -> 1.65 (hours)."""
    h, m, s = (int(part) for part in text.strip().split(":"))
    return h + m / 60 + s / 3600


def row_titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#board tr.entry-row td.title a").all_inner_texts()]


def test_leaderboard_renders_the_seeded_history(site: Any, page: Any, browser: Any, artifacts_dir: Path) -> None:
    page.goto(site.url + "/")
    rows = page.locator("#board tr.entry-row")
    assert rows.count() == 7
    titles = row_titles(page)
    assert titles[0] == "GPT-2 1.5B (original OpenAI run)"  # row 0: the 2019 baseline, pinned, not ranked
    assert page.locator("#board tr.baseline .rank-n").inner_text() == "0"
    assert titles[1].startswith("autoresearch round 2")  # the fastest reported run ranks first
    assert page.locator("#board tr.reported td.rank .badge-reported").count() == 6
    assert page.locator("#board tr.reported td.hours").first.inner_text() == "1:39:00"
    page.screenshot(path=str(artifacts_dir / "web-leaderboard.png"), full_page=True)

    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        small = phone.new_page()
        small.goto(site.url + "/")
        assert small.locator("#board tr.entry-row").count() == 7
        # nothing but the table scrolls sideways: the page itself fits the phone's width
        assert small.evaluate("document.documentElement.scrollWidth") <= 390 + 1
        small.screenshot(path=str(artifacts_dir / "web-leaderboard-phone.png"), full_page=True)
    finally:
        phone.close()


def test_sorting_and_filtering_from_the_controls(site: Any, page: Any) -> None:
    page.goto(site.url + "/")
    page.select_option("select[name=sort]", "cost")
    page.click("#filters button[type=submit]")  # a change alone submits nothing (WCAG 3.2.2)
    page.wait_for_url("**/tracks/gpt2-8xh100?sort=cost")
    cells = page.locator("#board tr.entry-row:not(.baseline) td.cost").all_inner_texts()
    costs = [float(c.strip("$").replace(",", "")) for c in cells]
    assert costs == sorted(costs) and len(costs) == 6
    assert page.locator("th a.sorted").inner_text().lower().startswith("cost")

    page.select_option("select[name=hardware]", "tpu-v3")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**hardware=tpu-v3*")
    assert row_titles(page) == ["GPT-2 1.5B (original OpenAI run)"]

    page.click("text=clear filters")
    page.wait_for_url("**/tracks/gpt2-8xh100?sort=cost")
    page.click("#board th a:text-is('time')")
    page.wait_for_url("**sort=time*")
    hours = [hms_hours(h) for h in page.locator("#board tr.entry-row:not(.baseline) td.hours").all_inner_texts()]
    assert hours == sorted(hours) and len(hours) == 6


@pytest.fixture(scope="module")
def verified_entry(site: Any, submitter: str) -> int:
    """An entry on gpt2-cost that a worker has verified (3 runs), so it ranks and shows deltas."""
    body = site.submission(
        "d24 + value embeddings, 1.52 h",
        "browser-entry-0001",
        contributors=["@alice", "@bob"],
        description="Two claimed runs on one 8xH100 node; logs at https://example.org/runs/d24-ve.",
    )
    body["track"] = "gpt2-cost"
    entry_id = int(site.submit(submitter, body)["entry_id"])
    site.verify(site.create_user("browser-verifier", "worker"), body)
    return entry_id


def test_entry_page_shows_its_charts(site: Any, page: Any, verified_entry: int, artifacts_dir: Path) -> None:
    page.goto(f"{site.url}/entries/{verified_entry}")
    assert page.locator("h1").inner_text().startswith("d24 + value embeddings")
    assert page.locator("h1 .badge").inner_text() == "verified"
    # claimed and verified on the 22 tasks, and GPT-2 XL's published accuracy on its 6
    assert page.locator("#core-chart .chart-wide svg.core-bars rect.bar").count() == 22 * 2 + 6
    assert page.locator("#core-tasks tbody tr").count() == 22
    piqa = page.locator("#core-tasks tr", has_text="piqa").first.inner_text()
    assert "72.5%" in piqa  # the GPT-2 column
    assert page.locator("#loss-chart .chart-wide svg polyline").count() == 5  # a loss line per run with a log
    assert page.locator("#bpb-chart .chart-wide svg circle").count() >= 5
    assert page.locator("#runs tr[data-kind=claimed]").count() == 2
    assert page.locator("#runs tr[data-kind=verified]").count() == 3
    assert "training time" in page.locator("#deltas").inner_text()
    assert page.locator("#verifications tbody tr").count() == 1
    assert "sealed (ran in the verifier's sandbox)" in page.locator("#verifications .site-checks").first.inner_text()
    assert page.locator("#artifacts a[href^='/api/artifacts/']").count() >= 7
    assert page.locator(".description a[href='https://example.org/runs/d24-ve']").count() == 1
    box = page.locator("#core-chart .chart-wide svg").bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 150
    page.screenshot(path=str(artifacts_dir / "web-entry.png"), full_page=True)


def test_a_verified_entry_ranks_first_in_its_own_section(site: Any, page: Any, verified_entry: int) -> None:
    page.goto(site.url + "/tracks/gpt2-cost")
    first = page.locator("#board tr.entry-row:not(.baseline)").first
    assert first.get_attribute("data-entry-id") == str(verified_entry)
    assert first.locator("td.rank .rank-n").inner_text() == "V1"  # the verified ranking, labelled apart
    assert first.locator("td.rank .badge").inner_text() == "verified"
    assert first.locator("td.cost").inner_text() == "$38.00"  # mean 1.5833 h x 8 GPUs x $3.00


def test_submit_form_reports_a_validation_error_naming_the_field(site: Any, page: Any, submitter: str) -> None:
    page.goto(site.url + "/submit")
    page.fill("#token", submitter)
    page.click("#login button[type=submit]")
    page.wait_for_url("**/submit?done=signed-in")
    assert "browser-submitter" in page.locator(".who").inner_text()
    assert submitter not in page.content()  # the token is never shown back

    bad = site.submission("no contributors", "browser-invalid-0001")
    bad["contributors"] = []
    bad["run_config"]["gpus_per_node"] = 99
    page.fill("#body", json.dumps(bad, indent=1))
    page.click("#submission button[type=submit]")
    errors = page.locator("#errors li")
    errors.first.wait_for()
    text = " | ".join(errors.all_inner_texts())
    assert "contributors" in text
    assert "run_config.gpus_per_node" in text
    assert json.loads(page.input_value("#body"))["title"] == "no contributors"  # the form keeps what was pasted


def test_queue_page_follows_a_job_through_lease_progress_and_failure(site: Any, page: Any, submitter: str) -> None:
    body = site.submission("queue watcher", "browser-queue-0001")
    body["track"] = "gpt2-cost"  # its own track, so this test's worker leases exactly this job
    job_id = site.submit(submitter, body)["job_id"]
    page.goto(site.url + "/queue?poll_ms=300")
    row = page.locator(f'#queue tr[data-job-id="{job_id}"]')
    assert row.get_attribute("data-status") == "queued"

    worker = site.create_user("browser-worker", "worker")
    fingerprint = body["claimed_results"][0]["hardware"]
    with httpx.Client(base_url=site.url, headers={"Authorization": f"Bearer {worker}"}, timeout=30) as api:
        r = api.post(
            "/api/worker/lease", json={"worker_id": "gpu-box-7", "fingerprint": fingerprint, "tracks": ["gpt2-cost"]}
        )
        assert r.status_code == 200, r.text
        lease = r.json()
        assert lease["verification_job_id"] == job_id and lease["run_index"] == 0  # its first run
        run_id = lease["job_id"]
        page.wait_for_selector(f'#queue tr[data-job-id="{job_id}"][data-status="running"]')
        assert "gpu-box-7" in row.inner_text()

        progress = {"run_index": 0, "runs": lease["runs"], "step": 500, "steps": 1000, "message": "training"}
        r = api.post(
            f"/api/worker/jobs/{run_id}/heartbeat", json={"lease_token": lease["lease_token"], "progress": progress}
        )
        assert r.status_code == 200, r.text
        expected = round(100 * 0.5 / lease["runs"])
        page.wait_for_function(
            "([id, v]) => { const p = document.querySelector(`#queue tr[data-job-id='${id}'] progress`);"
            " return p && Math.round(p.value) === v; }",
            arg=[job_id, expected],
        )
        assert "step 500/1000" in row.inner_text()

        r = api.post(
            f"/api/worker/jobs/{run_id}/fail",
            json={"lease_token": lease["lease_token"], "reason": "CUDA error: an illegal memory access <b>"},
        )
        assert r.status_code == 200, r.text
    # one worker's failure sends the run back to the queue (no single account ends an entry)
    page.wait_for_selector(f'#queue tr[data-job-id="{job_id}"][data-status="queued"]')
    page.wait_for_function(
        "id => (document.querySelector(`#queue tr[data-job-id='${id}']`) || {}).innerText.includes('CUDA error')",
        arg=job_id,
    )
    assert "CUDA error: an illegal memory access <b>" in row.inner_text()  # shown as text, not markup
