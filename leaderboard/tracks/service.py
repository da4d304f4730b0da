"""Tracks and prices: reading them, adding a price (audited), and the price a cost is computed at.

An admin's edit of a track re-reads the entries under the new rules: ``entries.actions.edit_track``.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from contract.tracks import TrackRules
from leaderboard.audit.service import record
from leaderboard.cache import cached
from leaderboard.errors import NotFound
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository
from leaderboard.tracks.models import Price, Track
from leaderboard.tracks.schemas import PriceCreate, PricePublic, TrackPublic
from leaderboard.users.models import User


def get_track_row(session: Session, slug: str) -> Track:
    track = repository.by_slug(session, slug)
    if track is None:
        raise NotFound(f"no track {slug!r}")
    return track


def track_rules(track: Track) -> TrackRules:
    """The stored track as the contract's ``TrackRules`` (what a job carries to the verifier)."""
    return TrackRules.model_validate(track.rules_dict())


def list_tracks(session: Session) -> list[TrackPublic]:
    return cached(session, ("tracks",), lambda: [TrackPublic.model_validate(t) for t in repository.all_tracks(session)])


def get_track(session: Session, slug: str) -> TrackPublic:
    return TrackPublic.model_validate(get_track_row(session, slug))


def list_prices(session: Session) -> list[PricePublic]:
    return [PricePublic.model_validate(p) for p in repository.all_prices(session)]


def add_price(session: Session, actor: User, data: PriceCreate) -> PricePublic:
    """Add a dated price row (prices are never edited in place, so old costs stay explainable)."""
    price = Price(
        sku=data.sku, usd_per_gpu_hour=data.usd_per_gpu_hour, effective_date=data.effective_date, note=data.note
    )
    session.add(price)
    session.flush()
    record(session, actor, "price.add", "price", price.id, **data.model_dump(mode="json"))
    bump_revision(session)
    return PricePublic.model_validate(price)


def price_on(session: Session, sku: str, on: date) -> Price | None:
    return repository.price_on(session, sku, on)
