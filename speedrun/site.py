"""The site, assembled: the leaderboard's API with the pages of ``web`` mounted on it.

``create_app`` is what ``speedrun serve``, ``speedrun demo``, the tests and uvicorn's factory
(``speedrun.site:create_app``, several worker processes) run; nothing below this package builds it.
"""

from __future__ import annotations

from fastapi import FastAPI

import web
from leaderboard.app import create_api
from leaderboard.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """``/api``, ``/openapi.json``, the HTML pages, ``/static`` and ``/docs``."""
    app = create_api(settings)
    web.mount(app)
    return app
