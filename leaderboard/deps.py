"""Request-scoped access to the app's settings (the artifact store: ``artifacts.storage.StoreDep``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from leaderboard.settings import Settings


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(app_settings)]
