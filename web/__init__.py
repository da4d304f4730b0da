"""Server-rendered pages of the leaderboard site (Jinja2 templates, static CSS/JS, SVG charts).

``mount(app)`` puts them on the API that ``leaderboard.app.create_api`` built: the pages, ``/static``,
the offline assets of ``/docs`` and ``/redoc``, HTML error pages for browsers and ``HEAD`` on every
GET route. ``speedrun.site.create_app`` is the one caller.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from web.http import HeadAsGet, html_error
from web.pages import router
from web.pages.docs import assets as docs_assets
from web.pages.signed_in import ViewerPages

STATIC_DIR = Path(__file__).resolve().parent / "static"


def mount(app: FastAPI) -> None:
    """Add the pages, their static files, the docs assets, HTML errors and HEAD handling to ``app``."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.mount("/docs-assets", docs_assets(), name="docs-assets")
    app.add_middleware(HeadAsGet)
    app.state.html_error = html_error
    app.state.viewer_pages = ViewerPages(ttl_seconds=float(app.state.settings.cache_ttl_seconds))
