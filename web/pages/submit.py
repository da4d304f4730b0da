"""The submit page and its form handler."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from contract.schema import Submission
from leaderboard.db import SessionDep
from leaderboard.entries.submission import submit
from leaderboard.errors import DomainError
from leaderboard.middleware import StrictJsonError, strict_json
from leaderboard.users.models import Role
from leaderboard.users.service import require_role
from web.pages.common import (
    errors_of,
    posted,
    redirect,
    render_page,
    settings_of,
    store_of,
    viewer_of,
)

router = APIRouter(include_in_schema=False)

# ---------------------------------------------------------------------------- sign in and submit


# the shape of a submission, abridged where ``speedrun submit`` fills in whole files
EXAMPLE = json.dumps(
    {
        "track": "cpu-smoke",
        "title": "d4 smoke run, muon lr 0.03",
        "description": "What changed and why, in **Markdown**; link your fork and logs.",
        "contributors": ["@you"],
        "run_config": {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "hardware_class": "cpu",
            "gpus_per_node": 0,
            "seed": 1,
            "overrides": {"matrix_lr": 0.03},
        },
        "claimed_results": ["<the result.json of each claimed run, as `speedrun train` wrote it>"],
        "logs": [{"name": "train.log", "content": "<the run's log>"}],
        "idempotency_key": "d4-smoke-muon-0.03-2026-12-01",
    },
    indent=2,
)


def submit_context(request: Request, **extra: Any) -> dict[str, Any]:
    settings = settings_of(request)
    return {
        "account_url": settings.account_url,
        "account_contact": settings.account_contact,
        "title": "Submit",
        "nav": "submit",
        "errors": [],
        "body": "",
        "login_error": None,
        "example": EXAMPLE,
        "page_description": "Submit a speedrun: how to get an account, the submission format and its JSON Schema.",
        **extra,
    }


@router.get("/submit", response_class=HTMLResponse)
def submit_page(request: Request, session: SessionDep) -> HTMLResponse:
    return render_page(request, "submit.html", submit_context(request), viewer=viewer_of(request, session))


@router.post("/submit", response_class=HTMLResponse)
async def submit_form(request: Request, session: SessionDep) -> Response:
    viewer, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        context = submit_context(request, login_error="token: sign in with an API token before submitting")
        return render_page(request, "submit.html", context, viewer=viewer, status_code=401)
    pasted = form.get("body")
    text = pasted if isinstance(pasted, str) else ""
    upload = form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        text = (await upload.read()).decode("utf-8", errors="replace")
    text = text.strip()
    shown = text if len(text) <= 200_000 else ""  # refill the form, unless it is too large to echo

    def failed(errors: list[dict[str, str]], status_code: int = 422) -> HTMLResponse:
        session.rollback()
        return render_page(
            request,
            "submit.html",
            submit_context(request, errors=errors, body=shown),
            viewer=viewer,
            status_code=status_code,
        )

    if not text:
        return failed([{"field": "body", "msg": "paste a submission JSON or choose a file"}])
    try:
        payload = strict_json(text)  # duplicate keys, too deep, NUL: refused naming the key or path
    except StrictJsonError as exc:
        return failed([{"field": exc.field, "msg": exc.message}])
    except json.JSONDecodeError as exc:
        return failed([{"field": "body", "msg": f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"}])
    try:
        require_role(viewer.principal.user, Role.submitter, Role.admin)
        submission = Submission.model_validate(payload)
        settings = settings_of(request)
        outcome = submit(
            session,
            viewer.principal,
            submission,
            store=store_of(request),
            base_url=settings.base_url,
            max_attempts=settings.max_job_attempts,
            rate_per_minute=settings.submit_rate_per_minute,
            allow_local_git_urls=settings.allow_local_git_urls,  # the API's URL rules, no others
        )
    except ValidationError as exc:
        return failed(errors_of(exc))
    except DomainError as exc:
        return failed(errors_of(exc), status_code=exc.status)
    done = "submitted" if outcome.created else "resubmitted"
    return redirect(f"/entries/{outcome.accepted.entry_id}?done={done}")
