"""Queries on tracks and prices."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select
from sqlalchemy.orm import Session

from leaderboard.tracks.models import Price, Track


def by_slug(session: Session, slug: str) -> Track | None:
    return session.scalar(select(Track).where(Track.slug == slug))


def by_id(session: Session, track_id: int) -> Track | None:
    return session.get(Track, track_id)


def all_tracks(session: Session) -> list[Track]:
    return list(session.scalars(select(Track).order_by(Track.position, Track.id)))


def all_prices(session: Session) -> list[Price]:
    return list(session.scalars(select(Price).order_by(Price.sku, Price.effective_date, Price.id)))


def price_on(session: Session, sku: str, on: date) -> Price | None:
    """The price of ``sku`` in force on ``on``: the latest effective date <= on (newest row wins)."""
    return session.scalar(
        select(Price)
        .where(Price.sku == sku, Price.effective_date <= on)
        .order_by(Price.effective_date.desc(), Price.id.desc())
        .limit(1)
    )
