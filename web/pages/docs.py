"""The API documentation, offline: Swagger UI at ``/docs`` and ReDoc at ``/redoc`` from the assets
of the ``fastapi-offline`` package (served under ``/docs-assets``), started by a script of this
site, never a CDN. Scripts stay ``'self'`` only; these two pages allow inline styles, which both
viewers inject at run time."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from web.pages.common import CSP

router = APIRouter(include_in_schema=False)

ASSETS_DIR = str(files("fastapi_offline") / "static")
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "script-src 'self'", "script-src 'self'; worker-src 'self' blob:"
)
_HEADERS = {
    "content-security-policy": DOCS_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-cache",
}


def assets() -> StaticFiles:
    return StaticFiles(directory=ASSETS_DIR)


def _page(title: str, head: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} · speedrun</title>\n"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">\n'
        f"{head}</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
    return HTMLResponse(html, headers=_HEADERS)


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    return _page(
        "API (Swagger UI)",
        '<link rel="stylesheet" href="/docs-assets/swagger-ui.css">\n',
        '<main id="swagger-ui" data-spec="/openapi.json"></main>\n'
        '<script src="/docs-assets/swagger-ui-bundle.js"></script>\n'
        '<script src="/static/docs.js"></script>',
    )


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    return _page(
        "API (ReDoc)",
        "",
        '<main id="redoc" data-spec="/openapi.json"></main>\n'
        '<script src="/docs-assets/redoc.standalone.js"></script>\n'
        '<script src="/static/docs.js"></script>',
    )
