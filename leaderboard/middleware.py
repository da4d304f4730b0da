"""ASGI middleware: request body limits (413), strict JSON bodies (422) and security headers.

- A body over ``limit_for(path)`` bytes gets 413 before the app reads it.
- A JSON body with a duplicate key, nested deeper than ``MAX_BODY_DEPTH`` or holding a NUL
  character gets 422 naming the key or path: the app's parser would keep the last duplicate
  silently, recurse until it crashes, or hand PostgreSQL a string it cannot store.
- Every response carries the security headers; when the site's public URL is https (settings,
  not what a proxy says), ``Strict-Transport-Security`` too and every cookie is ``Secure``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from contract.schema import json_problem
from leaderboard.errors import error_body

MAX_BODY_DEPTH = 64
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413, before the app reads them,
    and JSON bodies the app must not see (duplicate keys, too deep, NUL) with 422.

    A declared Content-Length is checked up front; a chunked body, and any JSON body, is read up
    to the limit and then replayed to the app.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int], https: bool = False) -> None:
        self.app = app
        self.limit_for = limit_for
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, _with_headers(send, self.https))
            return
        send = _with_headers(send, self.https)
        declared = _declared_length(scope)
        if declared is None and scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)  # the hot path: reads carry no body
            return
        limit = self.limit_for(scope["path"])
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size > limit:
                await _too_large(send, limit)
                return
            if not _is_json(scope):
                await self.app(scope, receive, send)
                return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            total += len(body)
            if total > limit:
                await _too_large(send, limit)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _is_json(scope):
            # a big body is parsed off the event loop, which keeps serving other requests meanwhile
            problem = _json_problem(body) if len(body) < 65536 else await run_in_threadpool(_json_problem, body)
            if problem is not None:
                await _invalid_json(send, *problem)
                return
        replay: list[Message] = [{"type": "http.request", "body": body, "more_body": False}]

        async def replay_receive() -> Message:
            if replay:
                return replay.pop()
            return await receive()

        await self.app(scope, replay_receive, send)


def _declared_length(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers") or ():
        if name == b"content-length":  # ASGI servers give header names in lower case
            return bytes(value)
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or ():
        if name == b"content-type":
            return bytes(value).split(b";")[0].strip().lower() == b"application/json"
    return False


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class StrictJsonError(Exception):
    """A JSON document the site refuses: ``field`` names the key or path, ``message`` says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def strict_json(text: str | bytes) -> Any:
    """``json.loads`` that refuses duplicate keys, nesting deeper than ``MAX_BODY_DEPTH`` and NUL
    characters (StrictJsonError); malformed JSON raises ``json.JSONDecodeError`` as usual."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise StrictJsonError(exc.key, f"duplicate key {exc.key!r} (each key may appear once per object)") from None
    except RecursionError:
        raise StrictJsonError("(body)", f"JSON nested deeper than {MAX_BODY_DEPTH} levels") from None
    problem = json_problem(data, MAX_BODY_DEPTH)
    if problem is not None:
        raise StrictJsonError(*problem)
    return data


def _json_problem(body: bytes) -> tuple[str, str] | None:
    """(field, message) when a JSON body must be refused; None when it is fine or not JSON at all
    (then the app's own parser answers with its usual error)."""
    try:
        strict_json(body)
    except StrictJsonError as exc:
        return exc.field, exc.message
    except ValueError:
        return None
    return None


def _with_headers(send: Send, https: bool) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            missing = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            if https:
                if HSTS[0] not in present:
                    missing.append(HSTS)
                headers = [(k, _secure_cookie(v) if k.lower() == b"set-cookie" else v) for k, v in headers]
            message = {**message, "headers": headers + missing}
        await send(message)

    return wrapped


def _secure_cookie(value: bytes) -> bytes:
    attributes = {part.strip().lower() for part in value.split(b";")}
    return value if b"secure" in attributes else value + b"; Secure"


async def _invalid_json(send: Send, field: str, message: str) -> None:
    detail = [{"loc": ["body", field], "field": field, "msg": message, "type": "json_invalid"}]
    body = json.dumps(error_body("validation_error", detail)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 422,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(error_body("payload_too_large", f"request body larger than {limit} bytes")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
