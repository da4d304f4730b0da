"""Tracks and prices: reading them, admin edits (audited), and the price a cost is computed at."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from leaderboard.audit.service import record
from leaderboard.cache import cached
from leaderboard.db import utcnow
from leaderboard.errors import Invalid, NotFound
from leaderboard.revision import bump_revision
from leaderboard.tracks import repository
from leaderboard.tracks.models import SITE_SETTINGS_FIELDS, Price, Track
from leaderboard.tracks.schemas import RULE_FIELDS, PriceCreate, PricePublic, TrackPublic, TrackUpdate
from leaderboard.users.models import User
from submissions.tracks import TrackRules


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


def update_track(session: Session, actor: User, slug: str, data: TrackUpdate) -> TrackPublic:
    """An admin's edit of a track, validated as a whole against ``TrackRules`` and audited.

    A change of a rule (``RULE_FIELDS``) re-reads every verified entry of the track under the new
    rules (docs/RULES.md): statuses, figures and ranks follow, and each change is audited."""
    from leaderboard.entries.verification import reevaluate_track  # entries import this module

    track = get_track_row(session, slug)
    changes = data.model_dump(exclude_unset=True)
    rule_changes = {k: v for k, v in changes.items() if k not in SITE_SETTINGS_FIELDS}
    merged = {**track.rules_dict(), **rule_changes}
    try:
        TrackRules.model_validate(merged)
    except ValueError as exc:
        raise Invalid(next(iter(rule_changes), "track"), str(exc)) from exc
    current = {**track.rules_dict(), **track.site_settings()}
    before = {k: current[k] for k in changes}
    for key, value in changes.items():
        setattr(track, key, value)
    track.updated_at = utcnow()
    session.flush()
    record(session, actor, "track.update", "track", slug, before=before, after=changes)
    if RULE_FIELDS & {k for k in changes if before[k] != changes[k]}:
        reevaluated = reevaluate_track(session, track)
        record(session, actor, "track.reevaluate", "track", slug, fields=sorted(changes), entries=reevaluated)
    bump_revision(session)
    return TrackPublic.model_validate(track)


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
