"""HTTP details of the site that are not a page: HEAD answered like GET without a body, and error
pages in HTML for browsers (JSON stays the answer for API clients and ``Accept: application/json``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ERROR_TITLES = {
    400: "Bad request",
    401: "Sign in first",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
}


class HeadAsGet:
    """``HEAD`` on any GET route: routed as GET, the headers sent, the body dropped (RFC 9110 9.3.2)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if not message.get("more_body", False):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


def wants_html(request: Request) -> bool:
    """A browser asking for a page: not the API, and HTML preferred over JSON in ``Accept``."""
    if request.url.path.startswith(("/api/", "/static/")) or request.url.path == "/openapi.json":
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept.split("text/html")[0]


def html_error(request: Request, status_code: int, detail: Any) -> Response | None:
    """The site's HTML error page for a browser, else None (the caller answers in JSON)."""
    if not wants_html(request):
        return None
    from web.pages.common import Viewer, error_page

    if status_code >= 500:
        message = "An unexpected error on our side; it was logged. Try again in a moment."
    elif status_code == 404:
        message = f"There is no page at {request.url.path}."
    elif isinstance(detail, list):  # validation errors: each names its field ("entry_id: ...")
        message = "; ".join(
            f"{d.get('field') or 'input'}: {d.get('msg')}" if isinstance(d, dict) else str(d) for d in detail
        )
    else:
        message = detail if isinstance(detail, str) else ERROR_TITLES.get(status_code, "Error")
    return error_page(request, Viewer(None), status_code, ERROR_TITLES.get(status_code, "Error"), message)
