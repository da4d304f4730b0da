"""HTTP client of the leaderboard service, used by `speedrun submit` and `speedrun worker`.

It speaks ``contract.protocol``: every call sends ``Authorization: Bearer <token>``; an error
reply ``{"error": ..., "detail": ...}`` becomes a ``ClientError`` whose message names the field
or the problem. Connection errors and 5xx replies are retried with exponential backoff, so a
worker outlives a restart of the server.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from contract import LOG_FILE, METRICS_FILE, RESULT_FILE, protocol
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
    SubmissionAccepted,
)
from contract.schema import MAX_LOG_FILE_BYTES, LogFile, RunConfig, RunResult, Submission, TrainerSource

USER_AGENT = "speedrun-client"
M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """A request the server refused (status >= 400) or could not be reached (status 0)."""

    def __init__(self, status: int, error: str, detail: Any = None) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        head = f"HTTP {self.status} {self.error}" if self.status else self.error
        if self.detail in (None, "", []):
            return head
        return f"{head}: {format_detail(self.detail)}"


def format_detail(detail: Any) -> str:
    """Render an error detail: a message, or a list of pydantic/FastAPI errors as 'loc: msg'."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and "msg" in item:
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return json.dumps(detail, sort_keys=True)
    return str(detail)


def validation_messages(exc: ValidationError) -> list[str]:
    """One line per problem of a pydantic error, naming the field ('run_config.recipe: ...')."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors(include_url=False)
    ]


class Client:
    """The service's HTTP API, typed with the protocol's models."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
        retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
        if retries < 0:
            raise ValueError("retries: must be >= 0")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        retry_until: float | None = None,
    ) -> httpx.Response:
        """One call with retries on connection errors and 5xx: ``retries`` of them with exponential
        backoff, or, with ``retry_until`` (a ``time.monotonic()`` deadline), as many as fit before it,
        each wait shortened so that no wait outlasts the deadline."""
        hdrs = dict(headers or {})
        data = content
        if body is not None:
            data = body.model_dump_json().encode()
            hdrs["Content-Type"] = "application/json"
        last: Exception | None = None
        attempts = itertools.count() if retry_until is not None else range(self.retries + 1)
        for attempt in attempts:
            if attempt:
                delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
                if retry_until is not None:
                    left = retry_until - time.monotonic()
                    if left <= 0:
                        break
                    delay = min(delay, max(0.05, left / 4))
                self._sleep(delay)
            try:
                resp = self._http.request(method, path, content=data, params=params, headers=hdrs)
            except httpx.TransportError as exc:
                last = exc
                continue
            if resp.status_code >= 500:
                last = _error_from(resp)
                continue
            if resp.status_code >= 400:
                raise _error_from(resp)
            return resp
        if isinstance(last, ClientError):
            raise last
        raise ClientError(0, "connection_failed", f"{method} {self.base_url}{path}: {last}")

    # -- submitting ------------------------------------------------------------------------

    def submit(self, submission: Submission) -> SubmissionAccepted:
        resp = self._request("POST", protocol.SUBMISSIONS, body=submission)
        return _parse(SubmissionAccepted, resp)

    def preflight(self, submission: Submission) -> dict[str, Any]:
        """The site's checks of a submission, nothing stored (``POST /api/submissions/preflight``):
        the checks that passed, or the ClientError a submission would get (422, 409, 429)."""
        resp = self._request("POST", protocol.SUBMISSIONS + "/preflight", body=submission)
        data = resp.json()
        if not isinstance(data, dict):
            raise ClientError(resp.status_code, "bad_response", "the site's pre-flight answer is not an object")
        return data

    # -- worker ----------------------------------------------------------------------------

    def lease(self, request: LeaseRequest) -> JobLease | None:
        resp = self._request("POST", protocol.LEASE, body=request)
        if resp.status_code == 204 or not resp.content:
            return None
        return _parse(JobLease, resp)

    def heartbeat(self, job_id: int, heartbeat: Heartbeat, *, retry_until: float | None = None) -> HeartbeatReply:
        """Renew a lease; with ``retry_until`` (monotonic), retried until then (the lease's expiry)."""
        resp = self._request("POST", protocol.HEARTBEAT.format(job_id=job_id), body=heartbeat, retry_until=retry_until)
        return _parse(HeartbeatReply, resp)

    def upload_artifact(
        self, job_id: int, lease_token: str, *, name: str, kind: ArtifactKind, data: bytes
    ) -> ArtifactRef:
        if len(data) > protocol.MAX_ARTIFACT_BYTES:
            raise ValueError(f"artifact {name}: {len(data)} bytes, more than {protocol.MAX_ARTIFACT_BYTES}")
        resp = self._request(
            "POST",
            protocol.ARTIFACTS.format(job_id=job_id),
            content=data,
            params={"name": name, "kind": kind},
            headers={protocol.LEASE_TOKEN_HEADER: lease_token, "Content-Type": "application/octet-stream"},
        )
        return _parse(ArtifactRef, resp)

    def complete(self, job_id: int, complete: JobComplete) -> JobState:
        resp = self._request("POST", protocol.COMPLETE.format(job_id=job_id), body=complete)
        return _parse(JobState, resp)

    def fail(self, job_id: int, fail: JobFail) -> JobState:
        resp = self._request("POST", protocol.FAIL.format(job_id=job_id), body=fail)
        return _parse(JobState, resp)

    def artifact(self, sha256: str) -> bytes:
        return self._request("GET", protocol.ARTIFACT.format(sha256=sha256)).content


def _error_from(resp: httpx.Response) -> ClientError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "error" in body:
        return ClientError(resp.status_code, str(body["error"]), body.get("detail"))
    if isinstance(body, dict) and "detail" in body:  # a plain FastAPI/Starlette error
        return ClientError(resp.status_code, resp.reason_phrase.lower().replace(" ", "_"), body["detail"])
    return ClientError(resp.status_code, resp.reason_phrase.lower().replace(" ", "_") or "error", resp.text[:500])


def _parse(model: type[M], resp: httpx.Response) -> M:
    try:
        return model.model_validate_json(resp.content)
    except ValidationError as exc:
        problems = "; ".join(validation_messages(exc))
        raise ClientError(resp.status_code, "bad_reply", f"{model.__name__}: {problems}") from exc


# -- building a submission from a run directory ----------------------------------------------


def read_run_result(run_dir: Path) -> RunResult:
    """The ``result.json`` of a finished run directory (ValueError naming the problem)."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        raise ValueError(f"{path}: no {RESULT_FILE}; is {run_dir} a finished run directory?")
    try:
        return RunResult.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise ValueError(f"{path}: not a valid run result: {'; '.join(validation_messages(exc))}") from exc


def _log_file(name: str, path: Path) -> LogFile:
    """A log attachment; a file over the size limit keeps its last part, marked as cut."""
    data = path.read_bytes()
    if len(data) > MAX_LOG_FILE_BYTES:
        marker = f"[speedrun: the first {{}} bytes of {name} were cut to fit {MAX_LOG_FILE_BYTES} bytes]\n"
        keep = MAX_LOG_FILE_BYTES - len(marker.format(len(data)).encode()) - 16
        cut = len(data) - keep
        data = marker.format(cut).encode() + data[cut:]
    return LogFile(name=name, content=data.decode("utf-8", errors="replace"))


def run_config_from_result(result: RunResult, trainer: TrainerSource | str | None = None) -> RunConfig:
    """The RunConfig that reproduces a finished run (its recipe, overrides, hardware and seed)."""
    source: TrainerSource | str = trainer if trainer is not None else f"reference@{result.trainer_version}"
    hw = result.hardware
    return RunConfig.model_validate(
        {
            "trainer": source,
            "recipe": result.recipe,
            "overrides": dict(result.overrides),
            "hardware_class": hw.sku,
            "gpus_per_node": 0 if hw.device_type == "cpu" else hw.device_count,
            "nodes": hw.nodes,
            "seed": result.seed,
        }
    )


def submission_from_run_dir(
    run_dir: Path,
    *,
    track: str,
    title: str,
    contributors: list[str],
    description: str = "",
    idempotency_key: str | None = None,
    trainer: TrainerSource | str | None = None,
    extra_run_dirs: list[Path] | None = None,
) -> Submission:
    """A Submission built from a finished run directory: its result.json is the claim, its
    train.log and metrics.jsonl are attached. ``extra_run_dirs`` add further claimed results of the
    same config (other seeds); their logs are attached under ``<dir name>-<file>``."""
    dirs = [Path(run_dir), *(Path(d) for d in extra_run_dirs or [])]
    results = [read_run_result(d) for d in dirs]
    logs: list[LogFile] = []
    for i, d in enumerate(dirs):
        prefix = "" if i == 0 else f"{d.name}-"
        for name in (LOG_FILE, METRICS_FILE):
            if (d / name).is_file():
                logs.append(_log_file(f"{prefix}{name}", d / name))
    if idempotency_key is None:
        h = hashlib.sha256()
        for d in dirs:
            h.update((d / RESULT_FILE).read_bytes())
        h.update(json.dumps([track, title]).encode())
        idempotency_key = f"run-{h.hexdigest()[:32]}"
    return Submission.model_validate(
        {
            "track": track,
            "title": title,
            "description": description,
            "contributors": contributors,
            "run_config": run_config_from_result(results[0], trainer),
            "claimed_results": results,
            "logs": logs,
            "idempotency_key": idempotency_key,
        }
    )
