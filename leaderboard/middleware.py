"""ASGI middleware: request body size limits (413) and security headers on every response."""

from __future__ import annotations

import json
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leaderboard.errors import error_body

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit_for(path)`` bytes with 413, before the app reads them.

    A declared Content-Length is checked up front; a chunked body is read up to the limit and
    then replayed to the app.
    """

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, _with_headers(send))
            return
        send = _with_headers(send)
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
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

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


def _with_headers(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            missing = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            if missing:
                message = {**message, "headers": headers + missing}
        await send(message)

    return wrapped


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
