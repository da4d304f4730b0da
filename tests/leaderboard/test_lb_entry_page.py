"""What an entry page and its JSON twin say beside the ranked figures (SQLite and PostgreSQL):
the trainer's own time next to the verifier's clock with the site's flag and rule, how val_bpb
counts bytes, a fork's diff and review status, and a bounded page whatever a stored row holds."""

from __future__ import annotations

import html
import itertools
import json
import re
from typing import Any

from lb_factories import submission_json
from lb_support import Api, Users
from lb_verify import FORK, complete, complete_fork, entry, forge_runs, gpu_report, submit
from sqlalchemy.orm import Session

from contract import protocol
from contract.core_v1 import CORE_V1_LABELS
from contract.schema import CLOCK_TOLERANCE_S, VAL_BPB_NOTE, VerificationReport
from leaderboard.entries.models import Run, RunKind

_workers = itertools.count()
CLOCK = 1.5 * 3600  # the verifier's clock of every run in gpu_report()


def _with_self_reports(rep: VerificationReport, own: tuple[float, ...]) -> VerificationReport:
    runs = [
        r.model_copy(update={"self_reported_training_seconds": s, "clock_disagrees": s > CLOCK})
        for r, s in zip(rep.runs, own, strict=True)
    ]
    return rep.model_copy(update={"runs": runs})


def _text(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def test_the_trainers_own_time_is_shown_beside_the_clock_and_flagged(api: Api, users: Users) -> None:
    eid = submit(api, users.alice)["entry_id"]
    tolerance = api.get("/api/tracks/gpt2-cost").json()["clock_tolerance"]
    allowed = CLOCK_TOLERANCE_S + tolerance * CLOCK
    own = (CLOCK - 100.0, CLOCK + 30.0, CLOCK - allowed - 1.0)  # close, longer than the clock, too far
    assert complete(api, users, _with_self_reports(gpu_report(), own)) == 200
    detail = entry(api, eid)
    runs = detail["verified_runs"]
    assert [r["training_seconds"] for r in runs] == [CLOCK] * 3  # ranked: the verifier's clock
    assert detail["entry"]["hours"] == 1.5
    assert [r["self_reported_training_seconds"] for r in runs] == list(own)
    assert [r["clock_flagged"] for r in runs] == [False, True, True]
    assert [r["clock_disagrees"] for r in runs] == [False, True, False]  # the verifier's own flag, kept apart
    assert all(r["clock_allowed_gap_seconds"] == allowed for r in runs)
    assert f"{CLOCK_TOLERANCE_S:.0f} s + {tolerance:.0%} of the clock" in detail["clock_rule"]
    assert all(r["self_reported_training_seconds"] is None for r in detail["claimed_runs"])
    page = api.get(f"/entries/{eid}").text
    assert "trainer's own time" in page and page.count("clock disagrees</span>") == 2
    assert detail["clock_rule"] in _text(page)
    assert "1:28:20" in page  # the first run's own 5,300 s, as h:mm:ss


def test_runs_that_omit_or_dwarf_the_trainers_own_time_do_not_count(api: Api, users: Users) -> None:
    # a worker that omits the trainer's time avoided even the flag; one whose clock is 100x below
    # the trainer's own time was only flagged and still ranked first
    for own, words in ((None, "omits the trainer's own time"), (CLOCK * 100, "is far below the trainer's own time")):
        eid = submit(api, users.alice)["entry_id"]
        assert (
            complete(api, users, forge_runs(gpu_report(), lambda r, s=own: {"self_reported_training_seconds": s}))
            == 200
        )
        detail = entry(api, eid)
        assert detail["entry"]["status"] == "rejected" and detail["entry"]["rank"] is None
        assert any(words in reason for reason in detail["verifications"][0]["reasons"])


def test_val_bpb_says_how_it_counts_bytes(api: Api, users: Users) -> None:
    body = submission_json(track="gpt2-cost", sku="h100-sxm", gpus=8, hours=1.2, core=0.28)
    body["claimed_results"][0]["software"] = {"torch": "2.13.0", "val_bpb": VAL_BPB_NOTE}
    r = api.post(protocol.SUBMISSIONS, json=body, token=users.alice)
    assert r.status_code == 201, r.text
    eid = r.json()["entry_id"]
    pending = entry(api, eid)
    assert pending["claimed_runs"][0]["val_bpb_note"] == VAL_BPB_NOTE  # what the trainer's result said
    assert pending["val_bpb_note"] is None  # nothing verified: no figure to annotate
    assert complete(api, users, gpu_report()) == 200
    detail = entry(api, eid)
    assert detail["entry"]["val_bpb"] is not None
    assert detail["val_bpb_note"] == VAL_BPB_NOTE  # the evaluation code's own note, not a typed number
    summary = _text(re.search(r'<dl class="kv card" id="summary">.*?</dl>', api.get(f"/entries/{eid}").text, re.S)[0])
    assert re.search(r"val_bpb\s+[0-9.]+\s+" + re.escape(VAL_BPB_NOTE), summary), summary


def test_reported_history_carries_no_byte_note(api: Api) -> None:
    rows = api.get("/api/tracks/gpt2-8xh100/leaderboard").json()["rows"]
    reported = next(r for r in rows if r["section"] == "reported" and r["val_bpb"] is not None)
    assert entry(api, reported["id"])["val_bpb_note"] is None


def test_a_forks_page_shows_its_diff_and_review_until_approved(api: Api, users: Users) -> None:
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    diff_bytes = b"--- a/trainer/model.py\n+++ b/trainer/model.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    assert complete_fork(api, users, diff_bytes) == 200
    page = api.get(f"/entries/{eid}").text
    review = _text(re.search(r'<section class="card" id="code-review">.*?</section>', page, re.S)[0])
    assert "verified, awaiting code review" in review and "a" * 40 in review
    assert "2" in review and "+12" in review and "−3" in review
    link = re.search(r'id="fork-diff-link"', page)
    assert link is not None
    url = re.search(r'<a href="(/api/artifacts/[0-9a-f]{64})" download="fork.diff" id="fork-diff-link">', page)
    assert url is not None and api.get(url[1]).content == diff_bytes
    r = api.post(f"/api/admin/entries/{eid}/approve", json={"note": "read"}, token=users.admin)
    assert r.status_code == 200, r.text
    detail = entry(api, eid)
    assert detail["reviewed_by"] and detail["reviewed_at"] is not None
    review = _text(
        re.search(r'<section class="card" id="code-review">.*?</section>', api.get(f"/entries/{eid}").text, re.S)[0]
    )
    assert "approved" in review and detail["reviewed_by"] in review and "awaiting" not in review


def test_a_diff_summary_without_its_upload_is_not_linked(api: Api, users: Users) -> None:
    eid = submit(api, users.alice, trainer=FORK)["entry_id"]
    assert complete_fork(api, users, None) == 200
    page = api.get(f"/entries/{eid}").text
    assert 'id="fork-diff-link"' not in page and "fork.diff was not uploaded" in page


def test_the_reference_trainer_has_no_review_box(api: Api, users: Users) -> None:
    eid = submit(api, users.alice)["entry_id"]
    assert complete(api, users, gpu_report()) == 200
    assert 'id="code-review"' not in api.get(f"/entries/{eid}").text


def test_a_stored_row_with_100000_task_names_still_gives_a_bounded_page(
    api: Api, users: Users, session: Session
) -> None:
    """Rows stored before the contract bounded CORE tasks: only the protocol's 22 are listed."""
    eid = submit(api, users.alice)["entry_id"]
    heavy = {f"planted_task_{i:06d}": 0.5 for i in range(100_000)} | {label: 0.4 for label in CORE_V1_LABELS}
    for seed in (2, 3):
        session.add(Run(entry_id=eid, kind=RunKind.claimed, run_id=f"old-{seed}", seed=seed, core_tasks=heavy))
    odd: Any = ["hellaswag"] * 1000  # not even a mapping: shown as no per-task scores
    session.add(Run(entry_id=eid, kind=RunKind.claimed, run_id="old-4", seed=4, core_tasks=odd))
    session.commit()
    page = api.get(f"/entries/{eid}")
    twin = api.get(f"/api/entries/{eid}")
    assert page.status_code == twin.status_code == 200
    assert len(page.content) < 512 * 1024 and len(twin.content) < 512 * 1024, (len(page.content), len(twin.content))
    detail = json.loads(twin.content)
    assert [t["task"] for t in detail["core_tasks"]] == list(CORE_V1_LABELS)
    tasks = {run["run_id"]: run["core_tasks"] for run in detail["claimed_runs"]}
    assert list(tasks["old-2"]) == list(tasks["old-3"]) == list(CORE_V1_LABELS) and tasks["old-4"] is None
    assert "planted_task" not in page.text and "planted_task" not in twin.text
