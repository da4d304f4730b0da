"""The board as a visitor reads it, in headless Chromium on a site of its own: the record banner,
a failed verification told as a failure (queue and entry), honest progress and ETA, the
progression with an empty track, one point and two points on one day, the cost chart, compare,
keyboard use of the filters, and duplicates. Screenshots go to test-artifacts/story-*.png.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from contract.schema import Verdict

pytestmark = pytest.mark.browser

GREEN_BG = "rgb(209, 250, 229)"  # --ok-bg: the colour of a pass
FAILING_RUNS = ((21, 0.2500, 1.20), (22, 0.2512, 1.25), (23, 0.2490, 1.22))  # seed, CORE, hours


Site = Any


@pytest.fixture(scope="module")
def story(own_site: Any) -> Any:
    return own_site


@pytest.fixture(scope="module")
def people(story: Site) -> dict[str, str]:
    return {
        "alice": story.create_user("story-alice", "submitter"),
        "worker": story.create_user("story-worker", "worker"),
    }


@pytest.fixture(scope="module")
def verified(story: Site, people: dict[str, str]) -> int:
    body = story.submission("d24 + value embeddings", "story-verified-0001", description="Runs **fast**.")
    entry_id = int(story.submit(people["alice"], body)["entry_id"])
    story.verify(people["worker"], body)
    return entry_id


@pytest.fixture(scope="module")
def failed(story: Site, people: dict[str, str], verified: int) -> tuple[int, int]:
    body = story.submission("too good to be true", "story-failed-0001")
    entry_id = int(story.submit(people["alice"], body)["entry_id"])
    job_id = story.verify(
        people["worker"],
        body,
        runs_spec=FAILING_RUNS,
        verdict=Verdict.failed,
        p_value=0.845,
        reasons=("mean CORE 0.2501 is not above the threshold 0.256525",),
    )
    return entry_id, job_id


FORK_DIFF = "--- a/trainer/model.py\n+++ b/trainer/model.py\n@@ -10,2 +10,3 @@\n-x = 1\n+x = 2\n+y = 3\n"
FORK_OWN_SECONDS = (5600.0, 5700.0, 1000.0)  # the trainer's own times; the third is far from its clock


@pytest.fixture(scope="module")
def fork(story: Site, people: dict[str, str]) -> int:
    """A sealed fork verified under speedrun-v2: the trainer's own times beside the clock, its diff uploaded."""
    body = story.submission("a sealed fork", "story-fork-0001")
    body["run_config"]["trainer"] = {
        "kind": "git",
        "git_url": "https://example.org/someone/fork.git",
        "commit": "c" * 40,
    }
    forker = story.create_user("story-forker", "submitter")  # the track's weekly GPU-run quota is per user
    entry_id = int(story.submit(forker, body)["entry_id"])
    story.verify(people["worker"], body, self_reported=FORK_OWN_SECONDS, fork_diff=FORK_DIFF)
    return entry_id


def test_a_sealed_fork_shows_both_clocks_its_diff_and_review(
    story: Site, page: Any, fork: int, artifacts_dir: Path
) -> None:
    page.goto(f"{story.url}/entries/{fork}")
    review = page.locator("#code-review")
    assert "verified, awaiting code review" in review.inner_text()
    assert "0123456789abcdef0123456789abcdef01234567" in review.inner_text()
    assert "+2" in review.inner_text() and "−1" in review.inner_text()
    with page.expect_download() as download:
        page.locator("#fork-diff-link").click()
    assert Path(download.value.path()).read_text() == FORK_DIFF and download.value.suggested_filename == "fork.diff"
    assert "trainer's own time" in page.locator("#runs thead").inner_text()
    assert page.locator("#runs .clock-flag").count() == 1  # only the run whose own time is far off
    assert "of the clock" in page.locator("#clock-rule").inner_text()
    assert "0.05%" in page.locator("#val-bpb-note").inner_text()
    shot(page, artifacts_dir, "fork-review")


def shot(page: Any, artifacts_dir: Path, name: str) -> None:
    page.screenshot(path=str(artifacts_dir / f"story-{name}.png"), full_page=True)


def test_the_banner_says_who_holds_the_record_and_by_how_much(
    story: Site, page: Any, verified: int, artifacts_dir: Path
) -> None:
    page.goto(story.url + "/")
    banner = page.locator("#record-banner")
    verified_card = banner.locator(".record.verified")
    assert verified_card.get_attribute("data-entry-id") == str(verified)
    text = verified_card.inner_text()
    assert "Verified record" in text and "d24 + value embeddings" in text
    assert "1:35:00" in text  # the mean of the verified runs (1.58, 1.60, 1.57 h)
    assert "× faster than GPT-2 (2019)" in text  # 168 h / 1.5833 h = 106x
    assert "106× faster" in text
    reported = banner.locator(".record.reported").inner_text()
    assert "Reported record" in reported and "autoresearch round 2" in reported and "1:39:00" in reported
    assert "% faster than the previous record" in reported
    # the board: the status next to the rank, the two rankings labelled apart, hardware shown
    first = page.locator("#board tr.entry-row:not(.baseline)").first
    assert first.locator(".rank-n").inner_text() == "V1"
    assert first.locator("td.rank .badge").inner_text() == "verified"
    gpt2 = page.locator("#board tr.entry-row", has_text="original OpenAI run")
    assert gpt2.locator(".rank-n").inner_text() == "0"  # the 2019 baseline: row 0, not ranked
    assert "32 × tpu-v3" in gpt2.inner_text()
    # GPT-2's own CORE does not read as failing, and ClimbMix (p = 0.38) is flagged
    assert "0.256525" in gpt2.locator("td.core").inner_text() and "±0" in gpt2.locator("td.core").inner_text()
    climbmix = page.locator("#board tr.entry-row", has_text="ClimbMix")
    assert climbmix.locator("[data-flag=fails-test]").count() == 1
    assert "p = 0.3" in climbmix.locator("[data-flag=fails-test]").inner_text()
    assert page.locator("[data-flag=fails-test]").count() == 1
    description = page.locator("meta[name=description]").get_attribute("content") or ""
    assert "record: d24 + value embeddings, 1:35:00 (verified), 106× faster than GPT-2 (2019)" in description
    og = page.locator("meta[property='og:url']").get_attribute("content")
    assert og is not None and og.startswith("http://127.0.0.1:")
    shot(page, artifacts_dir, "banner")


def test_a_failed_verification_looks_like_a_failure(
    story: Site, page: Any, failed: tuple[int, int], artifacts_dir: Path
) -> None:
    entry_id, job_id = failed
    page.goto(story.url + "/queue")
    row = page.locator(f"#queue tr[data-job-id='{job_id}']")
    assert row.get_attribute("data-verdict") == "failed"
    verdict = row.locator(".verdict")
    assert verdict.inner_text().startswith("failed (p = ")
    assert row.locator("td.state .badge").first.inner_text() == "finished"
    colours = [b.evaluate("e => getComputedStyle(e).backgroundColor") for b in row.locator(".badge").all()]
    assert GREEN_BG not in colours  # nothing on a failed job's row is the colour of a pass
    assert row.locator("progress").get_attribute("value") == "100"
    assert re.search(r"took \d+:\d\d:\d\d", row.inner_text())
    shot(page, artifacts_dir, "queue-failed")

    page.goto(f"{story.url}/entries/{entry_id}")
    banner = page.locator("#failed-banner")
    assert "Verification failed" in banner.inner_text()
    assert banner.locator(".reasons li").count() >= 1
    assert page.locator("#deltas .delta-good").count() == 0  # a failed rerun's faster time is no win
    job = page.locator(f"li[data-job-id='{job_id}']")
    assert "failed" in job.locator(".verdict").inner_text()
    shot(page, artifacts_dir, "entry-failed")


def test_reverify_shows_only_when_allowed_and_says_why_not(
    story: Site, page: Any, people: dict[str, str], failed: tuple[int, int]
) -> None:
    entry_id, _ = failed
    page.goto(f"{story.url}/entries/{entry_id}")
    assert page.locator("#reverify").count() == 0
    assert "Sign in as the entry's owner" in page.locator("#reverify-why").inner_text()
    page.goto(story.url + "/submit")
    page.fill("#token", people["alice"])
    page.click("#login button[type=submit]")
    page.wait_for_url("**/submit?done=signed-in")
    assert page.locator("#signout button").is_visible()  # sign-out in the header of every page
    page.goto(f"{story.url}/entries/{entry_id}")
    assert page.locator("#signout button").is_visible()
    page.click("#reverify-start")  # the terms first, then the one button that spends it
    page.click("#reverify-confirm-button")
    page.wait_for_url(f"**/entries/{entry_id}?done=reverify*")
    assert page.locator("#reverify").count() == 0  # a job is queued now: the reason instead
    assert "already queued" in page.locator("#reverify-why").inner_text()
    page.click("#signout button")
    page.wait_for_url("**/submit?done=signed-out")


def test_a_running_job_shows_minutes_left_and_keeps_them_on_redraw(
    story: Site, page: Any, people: dict[str, str], failed: tuple[int, int], artifacts_dir: Path
) -> None:
    """The re-verification queued above, leased and reporting progress."""
    entry_id, _ = failed
    fingerprint = story.submission("x", "story-fp-0001")["claimed_results"][0]["hardware"]
    with story.api(people["worker"]) as api:
        r = api.post(
            "/api/worker/lease", json={"worker_id": "gpu-box-2", "fingerprint": fingerprint, "tracks": ["gpt2-8xh100"]}
        )
        assert r.status_code == 200, r.text
        lease = r.json()
        assert lease["entry_id"] == entry_id and lease["run_index"] == 0  # run 1 of the job
        progress = {"run_index": 0, "runs": 3, "step": 2500, "steps": 5000, "eta_seconds": 400, "message": "run 1/3"}
        hb = api.post(
            f"/api/worker/jobs/{lease['job_id']}/heartbeat",
            json={"lease_token": lease["lease_token"], "progress": progress},
        )
        assert hb.status_code == 200, hb.text
    page.goto(story.url + "/queue?poll_ms=250")
    job_id = lease["verification_job_id"]
    row = page.locator(f"#queue tr[data-job-id='{job_id}']")
    line = row.locator(".eta").inner_text()
    # the phase, and an ETA over every run left (run 1's 400 s of training, then runs 2 and 3)
    found = re.fullmatch(r"training run 1/3 · step 2500/5000 · ETA ([\d.]+) min for all 3 runs", line)
    assert found is not None and float(found.group(1)) > 6.7, line
    assert row.locator("progress").get_attribute("value") == "17"
    # queue.js has redrawn the table once its "updated" line reads as a time of day
    expect(page.locator("#live")).to_have_text(re.compile(r"^updated \d\d:\d\d:\d\d UTC$"))
    row = page.locator(f"#queue tr[data-job-id='{job_id}']")  # redrawn by queue.js
    assert row.locator(".eta").inner_text() == line  # the same words and numbers as the server's
    shot(page, artifacts_dir, "queue-running")


def _add_verified(story: Site, title: str, hours: float, day: date) -> int:
    """A verified row on the CPU track, written the way the verification service leaves one."""
    from leaderboard.entries.models import Entry, EntryStatus
    from leaderboard.entries.standing import recompute_ranks
    from leaderboard.revision import bump_revision
    from leaderboard.tracks import repository as tracks_repository

    with story.app.state.sessionmaker() as session:
        track = tracks_repository.by_slug(session, "cpu-smoke")
        assert track is not None
        entry = Entry(
            track_id=track.id, status=EntryStatus.verified, title=title, description="", contributors=["@cpu"],
            run_config={}, trainer="reference@0.1.0", recipe="cpu_smoke", hardware_class="cpu", gpus_per_node=0,
            nodes=1, rules_version=track.rules_version, record_date=day, hours=hours, core_mean=0.05, core_n=3,
            cost_usd=0.0, verified_at=None,
        )  # fmt: skip
        session.add(entry)
        session.flush()
        recompute_ranks(session, track.id)
        bump_revision(session)
        session.commit()
        return int(entry.id)


def _x_ticks(page: Any, box: str) -> list[str]:
    return [t.strip() for t in page.locator(f"{box} svg g.ticks text").all_text_contents()]


def test_progression_empty_one_point_and_two_on_one_day(story: Site, page: Any, artifacts_dir: Path) -> None:
    page.goto(story.url + "/progression?track=cpu-smoke")
    assert "No records on" in page.locator("#progression-summary").inner_text()
    assert "—" not in page.locator("#progression-summary").inner_text()
    assert page.locator("#progression-chart .chart-wide .chart-empty").count() == 1
    shot(page, artifacts_dir, "progression-empty")

    _add_verified(story, "first cpu run", 0.05, date(2026, 11, 20))
    page.goto(story.url + "/progression?track=cpu-smoke")
    ticks = " ".join(_x_ticks(page, "#progression-chart .chart-wide"))
    years = {int(y) for y in re.findall(r"\b(1[89]\d\d|2[01]\d\d)\b", ticks)}
    assert years <= {2026, 2027}, ticks  # one point: a month either side, not 1825..2182
    assert "Nov" in ticks or "Dec" in ticks
    assert page.locator("#progression-chart text.point-note").count() == 1
    assert "0:03:00" in page.locator("#progression-summary").inner_text()
    shot(page, artifacts_dir, "progression-one-point")

    _add_verified(story, "second cpu run, same day", 0.04, date(2026, 11, 20))
    page.goto(story.url + "/progression?track=cpu-smoke")
    ticks = " ".join(_x_ticks(page, "#progression-chart .chart-wide"))
    assert {int(y) for y in re.findall(r"\b(1[89]\d\d|2[01]\d\d)\b", ticks)} <= {2026, 2027}, ticks
    assert page.locator("#progression-chart text.point-note").count() == 2
    assert page.locator("#records tbody tr").count() == 2
    # 0.04 h and 0.05 h read apart (h:mm:ss, not two decimals of an hour)
    assert page.locator("#records tbody tr").nth(1).locator("td.num").first.inner_text() == "0:02:24"
    shot(page, artifacts_dir, "progression-same-day")


def test_progression_draws_verified_and_reported_apart(
    story: Site, page: Any, verified: int, artifacts_dir: Path
) -> None:
    page.goto(story.url + "/progression")
    chart = page.locator("#progression-chart .chart-wide svg")
    names = [g.get_attribute("data-name") for g in chart.locator("g.series").all()]
    assert "verified record (speedrun-v2)" in names or any(n and n.startswith("verified record") for n in names)
    assert any(n and n.startswith("reported record (nanochat-2026)") for n in names)
    assert chart.locator("rect.marker.hollow").count() >= 1  # reported: open squares
    assert chart.locator("circle.marker").count() >= 1  # verified: dots
    assert chart.locator("text.point-note").count() >= 3  # every record point is labelled
    shot(page, artifacts_dir, "progression")


def test_cost_chart_tells_the_dollar_story(story: Site, page: Any, artifacts_dir: Path) -> None:
    page.goto(story.url + "/progression?track=gpt2-cost")
    chart = page.locator("#cost-chart .chart-wide svg.cost-chart")
    assert chart.count() == 1
    notes = " ".join(chart.locator("text.point-note").all_text_contents())
    assert "$43,008" in notes  # 2019's GPT-2 on the log-scale dollar axis
    first = page.locator("#cost-records tbody tr").first.inner_text()
    assert "$43,008" in first and "32 TPU v3 chips × 168 h × $8.00/h (price its authors reported)" in first
    # the record today is on the chart too: the cheapest reported row's cost is labelled
    assert "autoresearch round 2" in notes
    shot(page, artifacts_dir, "cost-chart")


def test_compare_two_entries(
    story: Site, page: Any, verified: int, failed: tuple[int, int], artifacts_dir: Path
) -> None:
    page.goto(f"{story.url}/entries/{failed[0]}")
    page.click("#compare-record")
    page.wait_for_url(f"**/compare?a={failed[0]}&b={verified}")
    table = page.locator("#compare")
    assert "1:35:00" in table.locator("tr", has_text="training time").inner_text()
    names = [g.get_attribute("data-name") or "" for g in page.locator("#loss-chart .chart-wide g.series").all()]
    assert any(n.startswith(f"#{failed[0]} ") for n in names) and any(n.startswith(f"#{verified} ") for n in names)
    assert len(names) == 2 + 3 + 2 + 3  # every run of both: claimed and verified
    shot(page, artifacts_dir, "compare")


def test_duplicates_are_linked(story: Site, page: Any, people: dict[str, str], verified: int) -> None:
    body = story.submission("d24 + value embeddings (again)", "story-dup-0001")
    dup = int(story.submit(people["alice"], body)["entry_id"])
    page.goto(f"{story.url}/entries/{dup}")
    notice = page.locator(f".duplicate[data-duplicate-of='{verified}']")
    assert "Same config and claimed result as" in notice.inner_text()
    page.goto(f"{story.url}/entries/{verified}")
    assert page.locator(f".duplicate[data-duplicate-of='{dup}']").count() == 1


def test_filters_by_keyboard_apply_only_on_request(story: Site, page: Any) -> None:
    page.goto(story.url + "/")
    start = page.url
    page.focus("select[name=sort]")
    page.keyboard.press("ArrowDown")  # choosing with the keyboard changes nothing yet (WCAG 3.2.2)
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert page.url == start
    page.focus("input[name=q]")
    page.keyboard.type("karpathy")
    page.keyboard.press("Enter")  # Enter in the search field applies the form
    page.wait_for_url("**q=karpathy*")
    assert "sort=" in page.url  # the sort chosen by keyboard went with it
    titles = page.locator("#board tr.entry-row td.title a").all_inner_texts()
    assert titles and all("original OpenAI" not in t for t in titles)
    # the skip link is the first thing a keyboard reaches, and it lands on the content
    page.goto(story.url + "/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"


def test_csv_and_atom_parse(story: Site, verified: int) -> None:
    import csv
    import io
    import xml.etree.ElementTree as ET

    r = httpx.get(story.url + "/api/tracks/gpt2-8xh100/leaderboard.csv", params={"per_page": 2, "sort": "core"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    board = httpx.get(story.url + "/api/tracks/gpt2-8xh100/leaderboard", params={"per_page": 200}).json()
    assert len(rows) == board["total"]  # every page of the view, not the first two rows
    first = rows[0]
    assert first["section"] == "verified" and first["url"] == f"{story.url}/entries/{verified}"
    assert first["time_hms"] == "1:35:00" and re.fullmatch(r"\d+\.\d\d", first["cost_usd"])
    cores = [float(x["core_mean"]) for x in rows if x["section"] == "reported"]
    assert cores == sorted(cores, reverse=True)  # sorted by CORE within the section

    atom = httpx.get(story.url + "/records.atom")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    ns = {"a": "http://www.w3.org/2005/Atom"}
    feed = ET.fromstring(atom.content)
    entries = feed.findall("a:entry", ns)
    links = [e.find("a:link", ns).get("href") for e in entries]  # type: ignore[union-attr]
    assert f"{story.url}/entries/{verified}" in links
    assert all(e.find("a:updated", ns) is not None for e in entries)


def test_api_urls_are_absolute_and_money_in_cents(story: Site, verified: int) -> None:
    row = httpx.get(story.url + "/api/tracks/gpt2-8xh100/leaderboard").json()["rows"][0]
    assert row["url"] == f"{story.url}/entries/{verified}"
    assert row["cost_usd"] == round(row["cost_usd"], 2)
    detail = httpx.get(f"{story.url}/api/entries/{verified}").json()
    assert all(a["url"].startswith(story.url + "/api/artifacts/") for a in detail["artifacts"])
    jobs = httpx.get(story.url + "/api/queue").json()["jobs"]
    assert all(j["entry_url"].startswith(story.url) for j in jobs)


def test_html_errors_for_browsers_json_for_clients_and_head(story: Site, verified: int) -> None:
    html = httpx.get(story.url + "/no/such/page", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert html.status_code == 404 and html.headers["content-type"].startswith("text/html")
    assert "There is no page at /no/such/page" in html.text and "content-security-policy" in html.headers
    as_json = httpx.get(story.url + "/no/such/page", headers={"accept": "application/json"})
    assert as_json.status_code == 404 and as_json.json()["error"] == "not_found"
    api = httpx.get(story.url + "/api/entries/999999", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.headers["content-type"].startswith("application/json")
    for path in ("/", "/queue", f"/entries/{verified}", "/progression", "/records.atom"):
        head = httpx.head(story.url + path)
        assert head.status_code == 200 and head.content == b"", path
    detail = httpx.get(f"{story.url}/api/entries/{verified}").json()
    log = next(a for a in detail["artifacts"] if a["name"].endswith(".jsonl"))
    head = httpx.head(log["url"])
    assert head.status_code == 200 and head.content == b""
    disposition = httpx.get(log["url"]).headers["content-disposition"]
    assert f'filename="{log["name"].rsplit("/", 1)[-1]}"' in disposition  # its name, not 64 hex digits


def test_docs_render_with_the_network_off(story: Site, browser: Any, artifacts_dir: Path) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    outside: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(story.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(story.url + "/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "speedrun leaderboard" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".swagger-ui .opblock").count() > 10
    shot(page, artifacts_dir, "docs")
    page.goto(story.url + "/redoc")
    page.wait_for_selector("#redoc h1")
    assert "speedrun leaderboard" in page.locator("#redoc h1").first.inner_text()
    shot(page, artifacts_dir, "redoc")
    context.close()
    assert outside == []
    # the one refusal: ReDoc's "by Redocly" logo, which it links from a CDN, blocked by the CSP
    assert [e for e in errors if "cdn.redoc.ly" not in e] == []


def _pages(verified: int, failed: int, fork: int) -> list[str]:
    return [
        "/", "/tracks/gpt2-cost", "/tracks/cpu-smoke", "/tracks/gpt2-8xh100?status=all&sort=date", "/progression",
        "/progression?track=gpt2-cost", "/progression?track=cpu-smoke", "/queue", "/about", "/submit",
        f"/entries/{verified}", f"/entries/{failed}", f"/entries/{fork}", "/entries/1",
        f"/compare?a={failed}&b={verified}", "/compare", "/no/such/page",
    ]  # fmt: skip


def test_no_page_scrolls_sideways_on_a_phone(
    story: Site, browser: Any, verified: int, failed: tuple[int, int], fork: int, artifacts_dir: Path
) -> None:
    phone = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    try:
        pg = phone.new_page()
        wide = {}
        for path in _pages(verified, failed[0], fork):
            pg.goto(story.url + path)
            width = pg.evaluate("document.documentElement.scrollWidth")
            if width > 391:
                wide[path] = width
            name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
            pg.screenshot(path=str(artifacts_dir / f"story-phone-{name}.png"), full_page=True)
        assert wide == {}
        # on a phone the status stays next to the rank
        pg.goto(story.url + "/")
        assert pg.locator("#board tr.entry-row:not(.baseline)").first.locator(".rank-inline .badge").is_visible()
    finally:
        phone.close()


def test_axe_finds_no_serious_violation_on_any_page(
    story: Site, browser: Any, verified: int, failed: tuple[int, int], fork: int
) -> None:
    axe = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    found: dict[str, list[str]] = {}
    try:
        pg = context.new_page()
        for path in _pages(verified, failed[0], fork):
            pg.goto(story.url + path)
            pg.add_script_tag(content=axe)
            result = pg.evaluate(
                "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', "
                "'best-practice']})).violations.map(v => ({id: v.id, impact: v.impact, n: v.nodes.length, "
                "target: v.nodes[0].target.join(' ')}))"
            )
            bad = [f"{v['id']} ({v['impact']}, {v['n']}x, e.g. {v['target']})" for v in result
                   if v["impact"] in ("serious", "critical")]  # fmt: skip
            if bad:
                found[path] = bad
    finally:
        context.close()
    assert found == {}
