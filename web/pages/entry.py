"""An entry's page (runs, deltas, charts, logs, jobs, a fork's code review with its diff page by page)
and its actions: re-verify, retract and, for a fork on a review track, approve its code."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from leaderboard.db import SessionDep, utcnow
from leaderboard.entries.actions import approve, check_reverification, request_reverification, retract
from leaderboard.entries.board import get_entry_row
from leaderboard.entries.compare import duplicates_of, record_holder_id
from leaderboard.entries.outcome import entry_detail
from leaderboard.entries.queue import entry_jobs
from leaderboard.entries.reverify import reverify_plan
from leaderboard.errors import DomainError, NotFound
from leaderboard.tracks.service import list_prices
from leaderboard.users.models import Role
from web.pages import entry_parts as parts
from web.pages import review_view
from web.pages.common import (
    Viewer,
    bytes_response,
    cached_route,
    detail_text,
    error_page,
    posted,
    redirect,
    render_html,
    render_page,
    settings_of,
    shared_page,
    sign_in_first,
    store_of,
    viewer_of,
)
from web.render import entry_summary, markdown

router = APIRouter(include_in_schema=False)


def _key(request: Request, entry_id: int) -> tuple[object, ...]:
    return ("entry", entry_id, _diff_page(request))


def _diff_page(request: Request) -> int:
    """The page of a fork's diff shown (``?diff_page=N``, from 1)."""
    raw = request.query_params.get("diff_page", "1")
    page = int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1
    return page if 1 <= page <= review_view.MAX_PAGES else 1  # a bounded set of cache keys


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
async def entry_page(entry_id: int, request: Request) -> Response:
    return await cached_route(request, _key(request, entry_id), lambda r, s: _entry(r, s, entry_id))


def _entry(request: Request, session: Session, entry_id: int) -> Response:
    viewer = viewer_of(request, session)
    try:
        detail = entry_detail(session, entry_id, store_of(request))
    except NotFound:
        return error_page(request, viewer, 404, "No such entry", f"There is no entry #{entry_id}.")
    user = viewer.user
    can_retract = user is not None and user.role == Role.admin and detail.entry.status != "retracted"
    # signed in, the forms (sign out, re-verify, retract) carry this browser's token, spliced in
    page = shared_page(
        request,
        session,
        viewer,
        _key(request, entry_id),
        lambda: _render(request, session, viewer, detail, can_retract),
    )
    return bytes_response(request, page)


def _render(request: Request, session: Session, viewer: Viewer, detail: Any, can_retract: bool) -> str:
    entry = detail.entry
    jobs = entry_jobs(session, detail.jobs)
    refusal = parts.reverify_refusal(
        viewer.user,
        entry,
        detail.owner,
        jobs,
        counted=detail.counted_verifications,
        allowed=detail.track_info.max_verifications,
    )
    latest = detail.verifications[0] if detail.verifications else None
    user = viewer.user
    plan = None
    if refusal is None and user is not None:
        plan = reverify_plan(session, detail, admin=user.role == Role.admin, today=utcnow().date())
    active = next((j for j in jobs if str(j.status) in ("queued", "running")), None)
    verified_runs = detail.verified_runs
    loss = parts.curve_series(detail.curves, "loss", markers=False)
    bpb = parts.curve_series(detail.curves, "val_bpb", markers=True)
    context = {
        "title": entry.title,
        "nav": "board",
        "json_twin": f"/api/entries/{entry.id}",
        "page_description": entry_summary(entry, detail.track_info),
        "entry": entry,
        "track": detail.track_info,
        "description": markdown(detail.description),
        "owner": detail.owner,
        "trainer": detail.trainer,
        "recipe": detail.recipe,
        "run_config": detail.run_config,
        "run_plan": detail.plan,
        "retracted_reason": detail.retracted_reason,
        "runs": [*detail.claimed_runs, *detail.reported_runs],
        "outcome": detail.outcome,
        "plan": plan,
        "active_job": active,
        "self_reported": any(
            r.self_reported_training_seconds is not None for v in detail.verifications for r in v.runs
        ),
        "clock_rule": detail.clock_rule,
        "val_bpb_note": detail.val_bpb_note,
        "review": review_view.code_review(session, store_of(request), detail, user, _diff_page(request)),
        "latest": latest,
        "failed": entry.status in ("failed", "inconclusive", "error", "rejected"),
        "deltas": parts.deltas(
            detail.claimed_runs, verified_runs, judged=latest is not None and latest.verdict == "verified"
        ),
        "core_rows": parts.core_table(detail.core_tasks, parts.compares_with_gpt2(detail.track_info)),
        "core_chart": parts.core_chart(detail.core_tasks, parts.compares_with_gpt2(detail.track_info))
        if detail.core_tasks
        else None,
        "with_gpt2": parts.compares_with_gpt2(detail.track_info),
        "priced": {p.sku for p in list_prices(session)},
        "loss_chart": parts.curve_chart(loss, "loss", "Training loss", "loss") if loss else None,
        "bpb_chart": parts.curve_chart(bpb, "val_bpb", "Validation bits per byte", "val_bpb") if bpb else None,
        "verifications": detail.verifications,
        "jobs": jobs,
        "hardware": sorted((k, v) for k, v in (detail.hardware or {}).items() if v is not None),
        "artifacts": detail.artifacts,
        "logs": parts.log_tails(store_of(request), detail.artifacts),
        "duplicates": duplicates_of(session, entry.id),
        "record_id": record_holder_id(session, detail.track_info.id),
        "can_reverify": refusal is None,
        "reverify_refusal": refusal,
        "can_retract": can_retract,
    }
    return render_html(request, "entry.html", context, viewer=viewer, forms=refusal is None or can_retract)


def _confirm_page(
    request: Request, session: Session, viewer: Viewer, entry_id: int, status_code: int = 200
) -> Response:
    """The terms of a re-verification, and the one button that spends it."""
    assert viewer.user is not None
    detail = entry_detail(session, entry_id, None)
    plan = reverify_plan(session, detail, admin=viewer.user.role == Role.admin, today=utcnow().date())
    context = {
        "title": f"Re-verify {detail.entry.title}",
        "nav": "board",
        "entry": detail.entry,
        "track": detail.track_info,
        "plan": plan,
        "unconfirmed": status_code == 422,
    }
    return render_page(request, "reverify.html", context, viewer=viewer, status_code=status_code)


@router.get("/entries/{entry_id}/reverify", response_class=HTMLResponse)
def reverify_terms(entry_id: int, request: Request, session: SessionDep) -> Response:
    """The confirmation step: what a re-verification spends and decides, before it is asked for."""
    viewer = viewer_of(request, session)
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    try:
        check_reverification(session, viewer.principal.user, get_entry_row(session, entry_id))
    except DomainError as exc:
        return error_page(request, viewer, exc.status, "Not possible", detail_text(exc.detail))
    return _confirm_page(request, session, viewer, entry_id)


@router.post("/entries/{entry_id}/reverify", response_class=HTMLResponse)
async def reverify(entry_id: int, request: Request, session: SessionDep) -> Response:
    viewer, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    try:
        if form.get("confirm") != "yes":  # the terms first: the service's refusals, else the page
            check_reverification(session, viewer.principal.user, get_entry_row(session, entry_id))
            return _confirm_page(request, session, viewer, entry_id, status_code=422)
        job = request_reverification(
            session, viewer.principal.user, entry_id, max_attempts=int(settings_of(request).max_job_attempts)
        )
    except DomainError as exc:
        session.rollback()
        return error_page(request, viewer, exc.status, "Not possible", detail_text(exc.detail))
    return redirect(f"/entries/{entry_id}?done=reverify#job-{job.id}")


@router.post("/entries/{entry_id}/retract", response_class=HTMLResponse)
async def retract_entry(entry_id: int, request: Request, session: SessionDep) -> Response:
    """An admin withdraws an entry from the board, saying why (audited by the service)."""
    viewer, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    reason = form.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 2000:
        return error_page(
            request, viewer, 422, "Reason needed", "reason: say in 1 to 2000 characters why it is retracted"
        )
    try:
        retract(session, viewer.principal.user, entry_id, reason)
    except DomainError as exc:
        session.rollback()
        return error_page(request, viewer, exc.status, "Not possible", detail_text(exc.detail))
    return redirect(f"/entries/{entry_id}?done=retracted")


@router.post("/entries/{entry_id}/approve", response_class=HTMLResponse)
async def approve_entry(entry_id: int, request: Request, session: SessionDep) -> Response:
    """An admin approves a fork's code after reading its diff on this page (the service refuses a
    missing, cut or changed diff with a 409 and its reason; audited with the diff's sha256)."""
    viewer, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    note = form.get("note")
    note = note.strip() if isinstance(note, str) else ""
    sha = form.get("diff_sha256")
    if len(note) > 2000 or not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        return error_page(
            request, viewer, 422, "Not possible", "note: at most 2000 characters; diff_sha256: the diff you read"
        )
    try:
        approve(session, viewer.principal.user, entry_id, note, sha)
    except DomainError as exc:
        session.rollback()
        return error_page(request, viewer, exc.status, "Not approved", detail_text(exc.detail))
    return redirect(f"/entries/{entry_id}?done=approved")
