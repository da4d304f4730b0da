"""The three journeys of issue 20 in headless Chromium, on a site of their own: submit (refusals,
then a run that becomes the record) -> follow the job (place in line, phases, ETA over all runs,
verdict) -> the outcome headline; browse on a desktop and a phone (record strip, a board that
fits, key columns at 390 px, /compare stacked, queue progress, chart text >= 11 px); re-verify
(terms, confirmation, the flash that links the job, a hopeless pool muted with its reason).
Screenshots go to test-artifacts/journey-*.png."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from contract.schema import Verdict

pytestmark = pytest.mark.browser

Site = Any
FAST_RUNS = ((31, 0.2620, 1.10), (32, 0.2650, 1.12), (33, 0.2638, 1.11))  # faster than the first record
HOPELESS_RUNS = ((41, 0.2400, 1.20), (42, 0.2410, 1.25), (43, 0.2390, 1.22))  # well below the bar


def shot(page: Any, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"journey-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def journey(own_site: Any) -> Any:
    return own_site


@pytest.fixture(scope="module")
def people(journey: Site) -> dict[str, str]:
    return {
        "bob": journey.create_user("journey-bob", "submitter"),
        "alice": journey.create_user("journey-alice", "submitter"),
        "worker": journey.create_user("journey-worker", "worker"),
    }


@pytest.fixture(scope="module")
def first_record(journey: Site, people: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Bob's verified entry: the record to beat, and a finished job the track's pace is learned from."""
    body = journey.submission("bob's d24 baseline", "journey-bob-00001")
    entry_id = int(journey.submit(people["bob"], body)["entry_id"])
    journey.verify(people["worker"], body)
    return entry_id, body


def sign_in(page: Any, site: Site, token: str) -> None:
    page.goto(site.url + "/submit")
    page.fill("#token", token)
    page.click("#login button[type=submit]")
    assert "signed in as" in page.locator("#signout").inner_text()


def paste(page: Any, body: dict[str, Any]) -> None:
    import json

    page.goto(page.url.split("/submit")[0] + "/submit")
    page.fill("#body", json.dumps(body))
    page.click("#submission button[type=submit]")


def font_sizes_under(page: Any, minimum: float) -> list[str]:
    """Text of every visible chart whose rendered size is under ``minimum`` px (its font size x the
    chart's scale on screen)."""
    found: list[str] = page.evaluate(
        """(minimum) => {
          const small = [];
          for (const svg of document.querySelectorAll('svg.chart')) {
            if (!svg.getClientRects().length || svg.closest('[hidden]')) continue;
            const box = svg.getBoundingClientRect();
            if (box.width === 0) continue;
            const scale = box.width / svg.viewBox.baseVal.width;
            for (const t of svg.querySelectorAll('text')) {
              const px = parseFloat(getComputedStyle(t).fontSize) * scale;
              if (px < minimum - 0.01) small.push(`${t.textContent.trim()} (${px.toFixed(1)} px)`);
            }
          }
          return small;
        }""",
        minimum,
    )
    return found


def test_submit_refusals_then_follow_the_job_to_the_record(
    journey: Site, people: dict[str, str], first_record: tuple[int, dict[str, Any]], page: Any, artifacts_dir: Path
) -> None:
    bob_entry, bob_body = first_record
    sign_in(page, journey, people["alice"])
    # refusal 1: a claim whose own runs fail the track's test, with its numbers and the bar
    weak = journey.submission("below the bar", "journey-weak-0001")
    for run in weak["claimed_results"]:
        run["core"]["core"] = 0.2401
    paste(page, weak)
    errors = page.locator("#errors").inner_text()
    assert "claimed_results" in errors and "0.2401" in errors and "bar 0.256525" in errors
    shot(page, artifacts_dir, "refused-below-bar")
    # refusal 2: a byte-for-byte copy of bob's runs under a new name, naming bob's entry
    copy_body = copy.deepcopy(bob_body)
    copy_body["title"], copy_body["idempotency_key"] = "totally my own run", "journey-copy-0001"
    paste(page, copy_body)
    assert f"entry #{bob_entry}" in page.locator("#errors").inner_text()
    shot(page, artifacts_dir, "refused-copy")
    # nothing was queued by either refusal
    with journey.api() as api:
        assert api.get("/api/queue").json()["counts"].get("queued", 0) == 0
    # a run of her own: accepted, pending, with its job in line
    mine = journey.submission("alice's faster d24", "journey-alice-0001")
    paste(page, mine)
    assert "/entries/" in page.url
    entry_id = int(page.url.split("/entries/")[1].split("?")[0])
    assert page.locator("#headline").inner_text().startswith("pending: job #")
    page.goto(journey.url + "/queue")
    queued = page.locator("#queue tr[data-status=queued]")
    assert "#1 in line on gpt2-8xh100" in queued.inner_text() and "expected start" in queued.inner_text()
    shot(page, artifacts_dir, "queued")
    # a worker takes it: preparing, training run 1/3 with the ETA over all three runs, then scoring
    lease = journey.lease(people["worker"], mine)  # run 1 of its job
    job_id, run_id = lease["verification_job_id"], lease["job_id"]
    with journey.api(people["worker"]) as api:
        for progress, phase in (
            ({"run_index": 0, "runs": 3, "message": "preparing the trainer"}, "preparing run 1/3"),
            ({"run_index": 0, "runs": 3, "step": 30, "steps": 60, "eta_seconds": 1800.0}, "training run 1/3"),
            ({"run_index": 0, "runs": 3, "step": 60, "steps": 60, "eta_seconds": 0.0}, "scoring CORE, run 1/3"),
        ):
            beat = {"lease_token": lease["lease_token"], "progress": progress}
            assert api.post(f"/api/worker/jobs/{run_id}/heartbeat", json=beat).status_code == 200
            job = journey.api().get(f"/api/jobs/{job_id}").json()
            assert job["phase"] == phase and job["verdict"] is None
            # the ETA counts the runs still to come, not just the one running
            assert job["eta_seconds"] is not None and job["eta_seconds"] > 2 * 3600
            page.goto(journey.url + "/queue")
            line = page.locator(f"#queue tr[data-job-id='{job_id}'] .eta").inner_text()
            assert phase in line and "for all 3 runs" in line
            shot(page, artifacts_dir, f"phase-{phase.split()[0]}")
    assert "step 30/60" not in line  # the scoring phase does not pretend the run is still training
    journey.verify(people["worker"], mine, runs_spec=FAST_RUNS, lease=lease)
    finished = journey.api().get(f"/api/jobs/{job_id}").json()
    assert finished["verdict"] == "verified" and finished["verdict_p_value"] is not None
    queue_json = journey.api().get("/api/queue").json()
    assert next(j for j in queue_json["jobs"] if j["id"] == job_id)["verdict"] == "verified"
    # the outcome: the new record, by how much, from the code that ranks
    page.goto(f"{journey.url}/entries/{entry_id}")
    headline = page.locator("#headline").inner_text()
    assert headline.startswith("V1 · record on GPT-2") and f"% faster than #{bob_entry}" in headline
    assert "29.9% faster" in headline  # 1.11 h vs bob's 1.5833 h
    twin = journey.api().get(f"/api/entries/{entry_id}").json()
    assert twin["outcome"]["headline"] == headline and twin["outcome"]["versus_entry_id"] == bob_entry
    page.goto(f"{journey.url}/entries/{bob_entry}")
    assert "V2 · 42.6% behind the record" in page.locator("#headline").inner_text()
    shot(page, artifacts_dir, "outcome-record")


def test_browse_on_a_desktop_and_a_phone(
    journey: Site, people: dict[str, str], first_record: tuple[int, dict[str, Any]], browser: Any, artifacts_dir: Path
) -> None:
    bob_entry, _ = first_record
    desk = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        pg = desk.new_page()
        pg.goto(journey.url + "/")
        strip = pg.locator("#record-banner").bounding_box()
        main = pg.evaluate("(() => { const m = document.querySelector('main'); const s = getComputedStyle(m); "
                           "return m.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); })()")  # fmt: skip
        assert strip is not None and strip["width"] >= main - 1  # a full-width record strip
        wrap = pg.locator("#board").locator("xpath=..")
        assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth")  # the board fits at 1440 px
        baseline = pg.locator("#board tr.baseline")
        assert baseline.locator(".rank-n").inner_text() == "0" and "32 × tpu-v3 chips" in baseline.inner_text()
        ranks = [r.inner_text() for r in pg.locator("#board tr.entry-row:not(.baseline) .rank-col .rank-n").all()]
        assert all(r.startswith(("V", "R", "–")) for r in ranks) and "R7" not in ranks  # 2019 is not ranked
        shot(pg, artifacts_dir, "desktop-board")
    finally:
        desk.close()
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        pg = phone.new_page()
        pg.goto(journey.url + "/")
        rows = pg.locator("#board tr.entry-row")
        for i in range(min(3, rows.count())):
            row = rows.nth(i)
            for cell in ("td.hours", "td.cost", "td.core", ".hw"):
                box = row.locator(cell).first.bounding_box()
                assert row.locator(cell).first.is_visible(), cell
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (cell, box)
        assert "±0" in rows.first.locator("td.core").inner_text() or "+0." in rows.first.locator("td.core").inner_text()
        shot(pg, artifacts_dir, "phone-board")
        pg.goto(f"{journey.url}/compare?a={bob_entry}&b={bob_entry + 1}")
        table = pg.locator("#compare")
        assert table.locator("xpath=..").evaluate("w => w.scrollWidth <= w.clientWidth")
        header = [h.inner_text() for h in table.locator("thead th").all()]
        assert header[1].startswith("A: #") and header[2].startswith("B: #") and header[3] == "B − A"
        shot(pg, artifacts_dir, "phone-compare")
        pg.goto(journey.url + "/queue")
        progress = pg.locator("#queue .progress-cell").first
        box = progress.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390
        shot(pg, artifacts_dir, "phone-queue")
        for path in ("/progression", f"/entries/{bob_entry}", "/progression?track=cpu-smoke"):
            pg.goto(journey.url + path)
            assert pg.locator(".chart-narrow svg.chart").first.is_visible(), path
            assert font_sizes_under(pg, 11) == [], path
            name = path.strip("/").replace("/", "-").replace("?track=", "-")
            shot(pg, artifacts_dir, f"phone-{name}")
    finally:
        phone.close()


def test_reverify_is_explained_confirmed_and_linked(
    journey: Site, people: dict[str, str], first_record: tuple[int, dict[str, Any]], page: Any, artifacts_dir: Path
) -> None:
    bob_entry, _ = first_record
    sign_in(page, journey, people["bob"])
    page.goto(f"{journey.url}/entries/{bob_entry}")
    terms = page.locator("#reverify").inner_text()
    assert "1 of 3 used, 2 left" in terms
    assert "look 2" in terms and "0.05 / 2 = 0.025" in terms  # the pool, tested at alpha / k
    assert "$" in page.locator("#reverify-cost").inner_text()  # what it costs on this track
    assert "can end it failed" in page.locator("#reverify-stake").inner_text()
    shot(page, artifacts_dir, "reverify-terms")
    page.click("#reverify-start")  # a confirmation step, not the spend
    assert "/reverify" in page.url
    with journey.api() as api:
        assert api.get("/api/queue").json()["counts"].get("queued", 0) == 0
    shot(page, artifacts_dir, "reverify-confirm")
    page.click("#reverify-confirm-button")
    flash = page.locator("#flash-job")
    href = flash.get_attribute("href") or ""
    assert href.startswith("/queue#job-") and flash.inner_text().startswith("Follow job #")
    shot(page, artifacts_dir, "reverify-flash")
    # a failed entry whose pool cannot pass: the button is muted and says why
    hopeless = journey.submission("bob's unlucky try", "journey-bob-00002")
    hopeless_id = int(journey.submit(people["bob"], hopeless)["entry_id"])
    journey.verify(people["worker"], first_record[1], verdict=Verdict.verified)  # the queued re-verification
    journey.verify(people["worker"], hopeless, runs_spec=HOPELESS_RUNS, verdict=Verdict.failed, p_value=0.99)
    page.goto(f"{journey.url}/entries/{hopeless_id}")
    assert page.locator("#headline").inner_text().startswith("failed: p = ")
    why = page.locator("#reverify-hopeless").inner_text()
    assert "cannot pass" in why and "not above the bar 0.256525" in why
    assert "secondary" in (page.locator("#reverify-start").get_attribute("class") or "")
    shot(page, artifacts_dir, "reverify-hopeless")


def test_a_way_in(journey: Site, people: dict[str, str], page: Any) -> None:
    sign_in(page, journey, people["bob"])
    page.goto(journey.url + "/me")
    assert page.locator("#my-entries tr[data-entry-id]").count() >= 1
    assert "GPU runs used in the last 7 days" in page.locator("#quota").inner_text()
    with journey.api() as api:
        robots = api.get("/robots.txt")
        assert robots.status_code == 200 and "Disallow: /api/" in robots.text
        html = api.get("/entries/abc", headers={"Accept": "text/html"})
        assert html.status_code == 422 and "text/html" in html.headers["content-type"] and "entry_id" in html.text
        assert (
            api.get("/entries/abc", headers={"Accept": "application/json"})
            .headers["content-type"]
            .startswith("application/json")
        )
        assert api.get("/me", headers={"Accept": "text/html"}).status_code == 401
