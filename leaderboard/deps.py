"""Request-scoped access to what the app's lifespan built (settings, artifact store)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.settings import Settings


def app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def artifact_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


SettingsDep = Annotated[Settings, Depends(app_settings)]
StoreDep = Annotated[ArtifactStore, Depends(artifact_store)]
