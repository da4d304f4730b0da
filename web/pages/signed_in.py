"""Signed-in pages from a read cache of their own: one page per (viewer, page, board revision).

A signed-in page differs from the signed-out one in its header (who, the sign-out form) and, on
an entry, in what this user may do there (re-verify, retract, approve); its CSRF token belongs to
the browser (``web.security``: an HMAC of the browser's nonce cookie), not to the user. So a page is
kept per viewer with an unguessable *slot* rendered where the token goes, and each answer puts
this browser's token into the slot (``splice``). The key holds the user's id, name and role and the
UTC day, read fresh on every request (``leaderboard.users.sessions.SessionReader``: the session
check stays real, one indexed read per request), so a rename, a new role, a sign-out, a revoked
token or a disabled user show on the next request; the board revision keys the value as for the
signed-out pages (``leaderboard.cache``). ``VIEWER_PAGES`` bounds the memory (least recently used
out first), apart from the signed-out pages' cache.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from leaderboard.cache import ReadCache

VIEWER_PAGES = 256  # signed-in pages kept per process, least recently used out first
CSRF_SLOT_SCOPE = "speedrun.csrf_slot"  # request.scope key: render the slot instead of the token


class ViewerPages:
    """The signed-in pages' cache (``app.state.viewer_pages``) and the slot its pages carry."""

    def __init__(self, *, ttl_seconds: float, max_items: int = VIEWER_PAGES) -> None:
        self.cache = ReadCache(max_items=max_items, ttl_seconds=ttl_seconds)
        # random per process: no user content can contain it, so only the forms' token fields match
        self.slot = "csrf-slot-" + secrets.token_urlsafe(24)
        self._slot_bytes = self.slot.encode()

    def key(self, user_id: int, name: str, role: str, page: tuple[Any, ...]) -> tuple[Any, ...]:
        """The cache key of ``page`` as ``user_id`` (named ``name``, in ``role``) sees it today."""
        return ("viewer", user_id, name, str(role), int(time.time() // 86_400), *page)

    def splice(self, body: bytes, etag: str, token: str) -> tuple[bytes, str]:
        """The page with this browser's CSRF token in its slot, and an entity tag of both."""
        spliced = body.replace(self._slot_bytes, token.encode())
        tag = '"' + hashlib.blake2b(f"{etag}|{token}".encode(), digest_size=16).hexdigest() + '"'
        return spliced, tag
