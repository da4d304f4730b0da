"""Absolute URLs and money in the API's JSON.

Links in the public schemas are stored as site paths (``/entries/8``) and written out absolute
(``https://site/entries/8``) under the base URL of the app serving the request: ``BaseUrlMiddleware``
sets it per request (a context variable, so worker threads inherit it and two apps in one process
never mix), and the ``AbsoluteUrl`` type applies it when a schema is serialized. Dollar amounts
(``Money``) are written rounded to cents.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Annotated

from pydantic import PlainSerializer
from starlette.types import ASGIApp, Receive, Scope, Send

_BASE_URL: ContextVar[str] = ContextVar("base_url", default="")


def absolute(path: str) -> str:
    """``path`` under the current request's base URL; unchanged when it is not a site path."""
    return _BASE_URL.get() + path if path.startswith("/") and not path.startswith("//") else path


def cents(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


AbsoluteUrl = Annotated[str, PlainSerializer(absolute, return_type=str)]
Money = Annotated[float | None, PlainSerializer(cents, return_type=float | None)]


class BaseUrlMiddleware:
    """Sets the base URL (``settings.base_url``) for the schemas serialized during a request."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self.app = app
        self.base_url = base_url.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token = _BASE_URL.set(self.base_url)
        try:
            await self.app(scope, receive, send)
        finally:
            _BASE_URL.reset(token)
