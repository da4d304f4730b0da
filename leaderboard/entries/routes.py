"""/api routes of the board: leaderboards, entries, progression, submitting, re-verify, retract."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from contract.protocol import SUBMISSIONS, SubmissionAccepted
from contract.schema import Submission
from leaderboard.artifacts.storage import StoreDep
from leaderboard.auth import AdminPrincipal, CurrentUser, SessionDep, SubmitterPrincipal
from leaderboard.cache import peek_current
from leaderboard.db import request_session
from leaderboard.deps import SettingsDep
from leaderboard.entries import actions, board, mine, outcome, submission
from leaderboard.entries.compare import progression_records
from leaderboard.entries.schemas import (
    ApproveRequest,
    EntryDetailPublic,
    EntryPublic,
    LeaderboardPublic,
    LeaderboardQuery,
    MinePublic,
    PreflightPublic,
    ProgressionPublic,
    RetractRequest,
    ReverifyRequest,
)
from leaderboard.jobs.schemas import JobPublic
from leaderboard.twins import PAGE_TTL_S, json_twin

router = APIRouter(tags=["board"])

EntryId = Annotated[int, Path(ge=1, le=2**62)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "the token's role may not do this"},
    404: {"description": "not found"},
    409: {"description": "conflict"},
}


@router.get(
    "/api/tracks/{slug}/leaderboard",
    response_class=Response,
    responses={200: {"model": LeaderboardPublic, "content": {"application/json": {}}}, 404: _ERRORS[404]},
)
async def leaderboard(slug: str, query: Annotated[LeaderboardQuery, Query()], request: Request) -> Response:
    """The JSON twin of the leaderboard page of a track (``LeaderboardPublic``).

    Served from the event loop when the read cache holds it at the current board revision (one
    indexed read, no Session, no worker thread); else computed in a worker thread in its own
    transaction, committed before the response goes out."""
    body = peek_current(request.app.state, board.leaderboard_json_key(slug, query))
    if not isinstance(body, bytes):
        body = await run_in_threadpool(_leaderboard_json, request, slug, query)
    return Response(body, media_type="application/json")


def _leaderboard_json(request: Request, slug: str, query: LeaderboardQuery) -> bytes:
    with request_session(request) as session:
        return board.leaderboard_json(session, slug, query)


@router.get(
    "/api/tracks/{slug}/progression",
    response_class=Response,
    responses={200: {"model": ProgressionPublic, "content": {"application/json": {}}}, 404: _ERRORS[404]},
)
async def progression(
    slug: str, request: Request, points: Annotated[Literal["records", "all"], Query()] = "records"
) -> Response:
    """The JSON twin of the record progression page (``ProgressionPublic``): ``points`` are the rows
    that set a record in time or cost within their section and rules version (what the page draws),
    or with ``points=all`` every verified and reported row."""
    return await json_twin(
        request,
        ("progression.json", slug, points),
        lambda s: board.progression(s, slug) if points == "all" else progression_records(s, slug),
        PAGE_TTL_S,
    )


@router.get(
    "/api/entries/{entry_id}",
    response_class=Response,
    responses={200: {"model": EntryDetailPublic, "content": {"application/json": {}}}, 404: _ERRORS[404]},
)
async def entry(entry_id: EntryId, request: Request) -> Response:
    """The JSON twin of an entry page (``EntryDetailPublic``)."""
    store = request.app.state.store
    key = ("entry.json", entry_id)
    return await json_twin(request, key, lambda s: outcome.entry_detail(s, entry_id, store), PAGE_TTL_S)


@router.post(
    SUBMISSIONS,
    response_model=SubmissionAccepted,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": SubmissionAccepted, "description": "an idempotent replay of an earlier submission"},
        **_ERRORS,
        413: {"description": "body larger than the limit"},
        429: {"description": "too many submissions for this token"},
    },
)
def submit(
    sub: Submission,
    response: Response,
    session: SessionDep,
    principal: SubmitterPrincipal,
    settings: SettingsDep,
    store: StoreDep,
) -> SubmissionAccepted:
    """Submit a run config and its claimed results; queues a verification job."""
    outcome = submission.submit(
        session,
        principal,
        sub,
        store=store,
        base_url=settings.base_url,
        max_attempts=settings.max_job_attempts,
        rate_per_minute=settings.submit_rate_per_minute,
        allow_local_git_urls=settings.allow_local_git_urls,
    )
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return outcome.accepted


@router.get("/api/me/entries", response_model=MinePublic, responses={401: _ERRORS[401]})
def my_entries(session: SessionDep, user: CurrentUser) -> MinePublic:
    """The caller's own entries (outcome, re-verifications left), jobs (phase, ETA, place in line)
    and weekly GPU-run quota: the JSON twin of ``/me``."""
    return mine.mine(session, user)


@router.post(
    SUBMISSIONS + "/preflight",
    response_model=PreflightPublic,
    responses={**_ERRORS, 422: {"description": "the submission would be refused: the field and why"}},
)
def preflight(
    sub: Submission, session: SessionDep, principal: SubmitterPrincipal, settings: SettingsDep
) -> PreflightPublic:
    """Run every check of ``POST /api/submissions`` and store nothing (``speedrun submit --dry-run``):
    200 with the checks that passed, or the refusal a submission would get (422, 409, 429)."""
    return submission.dry_run(session, principal, sub, allow_local_git_urls=settings.allow_local_git_urls)


@router.post(
    "/api/entries/{entry_id}/reverify",
    response_model=JobPublic,
    status_code=status.HTTP_201_CREATED,
    responses=_ERRORS,
)
def reverify(
    entry_id: EntryId, body: ReverifyRequest, session: SessionDep, user: CurrentUser, settings: SettingsDep
) -> JobPublic:
    """Queue a re-verification (the entry's owner or an admin)."""
    return actions.request_reverification(
        session, user, entry_id, reason=body.reason, max_attempts=settings.max_job_attempts
    )


@router.post("/api/admin/entries/{entry_id}/retract", response_model=EntryPublic, responses=_ERRORS, tags=["admin"])
def retract(entry_id: EntryId, body: RetractRequest, session: SessionDep, admin: AdminPrincipal) -> EntryPublic:
    """Withdraw an entry from the board (admin, audited)."""
    return actions.retract(session, admin.user, entry_id, body.reason)


@router.post("/api/admin/entries/{entry_id}/approve", response_model=EntryPublic, responses=_ERRORS, tags=["admin"])
def approve(entry_id: EntryId, body: ApproveRequest, session: SessionDep, admin: AdminPrincipal) -> EntryPublic:
    """Approve a verified fork's code after review: the entry is ranked (admin, audited)."""
    return actions.approve(session, admin.user, entry_id, body.note, body.diff_sha256)
