"""Domain errors carry their HTTP status; one handler renders them as ``{"error", "detail"}``."""

from __future__ import annotations

import errno
import time
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException


class DomainError(Exception):
    """An expected failure: ``status`` and ``code`` are fixed by the subclass, ``detail`` says why."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, detail: Any, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else repr(detail))
        self.detail = detail
        self.headers = headers


class BadRequest(DomainError):
    status = 400
    code = "bad_request"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class Invalid(DomainError):
    """Input that parses but breaks a rule; ``detail`` is a list of ``{"loc", "msg"}`` naming the field."""

    status = 422
    code = "validation_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__([{"loc": field.split("."), "field": field, "msg": message}])


class RateLimited(DomainError):
    status = 429
    code = "rate_limited"


class InsufficientStorage(DomainError):
    """The site cannot store what it was sent (disk or quota full); nothing was half-stored."""

    status = 507
    code = "insufficient_storage"


def storage_full(exc: BaseException) -> bool:
    """True for the errors of a full disk or exhausted quota: the OS's, SQLite's and PostgreSQL's."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        text = str(seen)
        if "database or disk is full" in text or "No space left on device" in text:
            return True
        if getattr(seen, "pgcode", None) == "53100" or getattr(seen, "sqlstate", None) == "53100":
            return True
        # SQLite: a full disk, or a write the OS refused (EFBIG past a file size limit, EDQUOT)
        if getattr(seen, "sqlite_errorname", None) in ("SQLITE_FULL", "SQLITE_IOERR_WRITE"):
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


def overloaded(exc: BaseException) -> bool:
    """True when the database cannot take another connection now (the pool timed out waiting, or
    PostgreSQL's max_connections is reached: SQLSTATE 53300): a 503 to retry, not a 500."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, PoolTimeout):
            return True
        text = str(seen)
        if getattr(seen, "sqlstate", None) == "53300" or "too many clients" in text or "too many connections" in text:
            return True
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


def error_body(code: str, detail: Any) -> dict[str, Any]:
    return {"error": code, "detail": detail}


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def validation_detail(errors: Any) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors as JSON-safe ``{"loc", "field", "msg", "type"}`` items."""
    out: list[dict[str, Any]] = []
    for err in errors:
        loc = list(err.get("loc", ()))
        out.append(
            {
                "loc": [p if isinstance(p, int | str) else str(p) for p in loc],
                "field": _field_name(loc),
                "msg": str(err.get("msg", "")),
                "type": str(err.get("type", "")),
            }
        )
    return out


def _html_error(request: Request, status_code: int, detail: Any) -> Response | None:
    """A browser's HTML error page (``app.state.html_error``, set by the site), else None for JSON."""
    render = getattr(request.app.state, "html_error", None)
    return None if render is None else render(request, status_code, detail)


def install_error_handlers(app: FastAPI) -> None:
    """Render domain errors, validation errors and HTTP errors the same way."""

    async def on_domain(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        page = _html_error(request, exc.status, exc.detail)  # a browser on a page route gets a page
        if page is not None:
            return page
        return JSONResponse(error_body(exc.code, exc.detail), status_code=exc.status, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = validation_detail(exc.errors())
        page = _html_error(request, 422, detail)
        if page is not None:
            return page
        return JSONResponse(error_body("validation_error", detail), status_code=422)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        page = _html_error(request, exc.status_code, exc.detail)
        if page is not None:
            return page
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return JSONResponse(
            error_body(codes.get(exc.status_code, "http_error"), exc.detail),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        if storage_full(exc):  # a full disk under the database: 507, and /api/health says degraded
            request.app.state.storage_full = (time.monotonic(), f"{type(exc).__name__}: the database could not write")
            detail = "the site's storage is full; nothing was stored, try again later"
            return JSONResponse(error_body("insufficient_storage", detail), status_code=507)
        if overloaded(exc):  # every connection busy: nothing was done, the client may retry shortly
            detail = "the site is busy (no database connection free); nothing was stored, retry shortly"
            return JSONResponse(error_body("overloaded", detail), status_code=503, headers={"Retry-After": "5"})
        # the traceback is logged by the server; the client gets the one error shape, no internals
        page = _html_error(request, 500, None)
        if page is not None:
            return page
        return JSONResponse(error_body("internal_error", "an unexpected error; it was logged"), status_code=500)

    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
