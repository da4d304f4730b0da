"""/api routes of the queue: the worker protocol (contract/protocol.py) and the public queue."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from contract import protocol
from contract.protocol import (
    ArtifactKind,
    ArtifactRef,
    Heartbeat,
    HeartbeatReply,
    JobComplete,
    JobFail,
    JobLease,
    JobState,
    LeaseRequest,
)
from leaderboard.artifacts.storage import StoreDep
from leaderboard.auth import SessionDep, WorkerPrincipal
from leaderboard.deps import SettingsDep
from leaderboard.entries import queue as entries_queue
from leaderboard.entries.leases import complete_job, fail_job, heartbeat_job, lease_job
from leaderboard.errors import error_body
from leaderboard.jobs import service
from leaderboard.jobs.leasing import Refused
from leaderboard.jobs.models import JobStatus
from leaderboard.jobs.schemas import JobPublic, QueuePublic
from leaderboard.twins import json_twin

router = APIRouter(tags=["queue"])

LEASE_REFUSED_HEADER = "X-Lease-Refused"
JobId = Annotated[int, Path(ge=1, le=2**62)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or invalid token"},
    403: {"description": "not a worker token, a paused worker, or another worker's lease"},
    404: {"description": "no such job"},
    409: {"description": "the lease expired or was taken over"},
}


@router.get(
    "/api/queue", response_class=Response, responses={200: {"model": QueuePublic, "content": {"application/json": {}}}}
)
async def queue(
    request: Request,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """The JSON twin of the queue page: running jobs with progress, queued, finished (with verdicts);
    progress at most the read cache's time to live old (heartbeats do not move the board revision)."""
    key = entries_queue.queue_key(status_filter, limit)
    return await json_twin(request, key, lambda s: entries_queue.queue_listing(s, status=status_filter, limit=limit))


@router.get("/api/jobs/{job_id}", response_model=JobPublic, responses={404: _ERRORS[404]})
def get_job(job_id: JobId, session: SessionDep) -> JobPublic:
    return entries_queue.get_job(session, job_id)


@router.post(
    protocol.LEASE,
    response_model=JobLease,
    responses={
        204: {"description": "no job for this worker now (header X-Lease-Refused: it holds its most leases)"},
        **_ERRORS,
    },
)
def lease(
    req: LeaseRequest, session: SessionDep, worker: WorkerPrincipal, settings: SettingsDep
) -> JobLease | Response:
    """Lease the oldest job this worker's hardware fits (204 when there is none)."""
    leased = lease_job(session, worker, req, service.policy_of(settings))
    if leased is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    if isinstance(leased, Refused):
        return _refusal(leased)
    return leased


def _refusal(refused: Refused) -> Response:
    """A refusal answered without raising, so what the call recorded (a reaped lease, a pause) commits."""
    if refused.status == status.HTTP_204_NO_CONTENT:
        return Response(status_code=refused.status, headers={LEASE_REFUSED_HEADER: refused.detail})
    return JSONResponse(error_body(refused.code, refused.detail), status_code=refused.status)


@router.post(protocol.HEARTBEAT, response_model=HeartbeatReply, responses=_ERRORS)
def heartbeat(
    job_id: JobId, hb: Heartbeat, session: SessionDep, worker: WorkerPrincipal, settings: SettingsDep
) -> HeartbeatReply | Response:
    """Renew the lease (only the worker account holding it) and report progress."""
    reply = heartbeat_job(session, worker, job_id, hb, service.policy_of(settings))
    return _refusal(reply) if isinstance(reply, Refused) else reply


@router.post(
    protocol.ARTIFACTS,
    response_model=ArtifactRef,
    status_code=status.HTTP_201_CREATED,
    responses={**_ERRORS, 413: {"description": "artifact larger than the limit"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_artifact(
    job_id: JobId,
    request: Request,
    session: SessionDep,
    worker: WorkerPrincipal,
    settings: SettingsDep,
    store: StoreDep,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    kind: Annotated[ArtifactKind, Query()],
    lease_token: Annotated[str, Header(alias=protocol.LEASE_TOKEN_HEADER, min_length=1, max_length=200)],
) -> ArtifactRef:
    """Upload raw bytes for the job (stored by SHA-256; attached to the entry on completion)."""
    data = await request.body()
    return await run_in_threadpool(
        service.upload_artifact,
        session,
        store,
        worker,
        job_id,
        lease_token,
        name=name,
        kind=kind,
        data=data,
        quota=service.quota_of(settings),
    )


@router.post(protocol.COMPLETE, response_model=JobState, responses={**_ERRORS, 422: {"description": "invalid report"}})
def complete(
    job_id: JobId, body: JobComplete, session: SessionDep, worker: WorkerPrincipal, store: StoreDep
) -> JobState:
    """Finish the job with the verifier's report; the entry's verdict and the ranks are recomputed."""
    return complete_job(session, store, worker, job_id, body)


@router.post(protocol.FAIL, response_model=JobState, responses=_ERRORS)
def fail(job_id: JobId, body: JobFail, session: SessionDep, worker: WorkerPrincipal, settings: SettingsDep) -> JobState:
    """Give up on the job; a retryable failure requeues it unless enough distinct workers failed it."""
    return fail_job(session, worker, job_id, body, service.policy_of(settings))
