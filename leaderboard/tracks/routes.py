"""/api routes of tracks and prices (admin edits are audited)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from leaderboard.auth import AdminPrincipal, SessionDep
from leaderboard.entries.actions import edit_track
from leaderboard.tracks import service
from leaderboard.tracks.schemas import PriceCreate, PricePublic, TrackPublic, TrackUpdate
from leaderboard.twins import PAGE_TTL_S, json_twin

router = APIRouter(prefix="/api", tags=["tracks"])


@router.get(
    "/tracks",
    response_class=Response,
    responses={200: {"model": list[TrackPublic], "content": {"application/json": {}}}},
)
async def list_tracks(request: Request) -> Response:
    """The tracks (the JSON twin of the rules page), cached per board revision."""
    return await json_twin(request, ("tracks.json",), service.list_tracks, PAGE_TTL_S)


@router.get("/tracks/{slug}", response_model=TrackPublic)
def get_track(slug: str, session: SessionDep) -> TrackPublic:
    return service.get_track(session, slug)


@router.get("/prices", response_model=list[PricePublic])
def list_prices(session: SessionDep) -> list[PricePublic]:
    return service.list_prices(session)


@router.patch("/admin/tracks/{slug}", response_model=TrackPublic, tags=["admin"])
def update_track(slug: str, data: TrackUpdate, session: SessionDep, admin: AdminPrincipal) -> TrackPublic:
    return edit_track(session, admin.user, slug, data)


@router.post("/admin/prices", response_model=PricePublic, status_code=status.HTTP_201_CREATED, tags=["admin"])
def add_price(data: PriceCreate, session: SessionDep, admin: AdminPrincipal) -> PricePublic:
    return service.add_price(session, admin.user, data)
