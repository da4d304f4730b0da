"""Signed cookies and CSRF tokens for the pages (HMAC-SHA256 with the site's secret key).

- The login cookie holds a random server-side session id (never the API token), signed so it
  cannot be forged or altered; it is ``HttpOnly`` and ``SameSite=Lax`` and never rendered back
  into a page. Sign-out and token revocation end the session on the server.
- CSRF: a random per-browser nonce lives in its own ``HttpOnly`` cookie; each form carries
  ``HMAC(secret, "csrf" | nonce)``. A cross-site page can neither read the cookie nor compute
  the HMAC, so a forged post fails. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SESSION_COOKIE = "speedrun_session"
CSRF_COOKIE = "speedrun_csrf"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 30 * 24 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, purpose: str, payload: str) -> str:
    if not secret:
        raise ValueError("secret_key: empty; the site needs a secret to sign cookies and forms")
    digest = hmac.new(secret.encode(), f"{purpose}|{payload}".encode(), hashlib.sha256).digest()
    return _b64(digest)


def sign(value: str, *, secret: str, purpose: str, now_s: float | None = None) -> str:
    """``value`` with an issue time and a MAC bound to ``purpose``: ``b64(value).time.mac``."""
    issued = int(time.time() if now_s is None else now_s)
    payload = f"{_b64(value.encode())}.{issued}"
    return f"{payload}.{_mac(secret, purpose, payload)}"


def unsign(signed: str, *, secret: str, purpose: str, max_age_s: float, now_s: float | None = None) -> str | None:
    """The value inside ``signed`` when its MAC is right and it is younger than ``max_age_s``; else None."""
    try:
        encoded, issued_text, mac = signed.split(".")
        issued = int(issued_text)
    except ValueError:
        return None
    payload = f"{encoded}.{issued_text}"
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        return None
    now = time.time() if now_s is None else now_s
    if now - issued > max_age_s or issued - now > 60:
        return None
    try:
        return _unb64(encoded).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def new_csrf_nonce() -> str:
    return secrets.token_urlsafe(24)


def csrf_token(nonce: str, *, secret: str) -> str:
    """The form token for the browser holding ``nonce`` in its CSRF cookie."""
    return _mac(secret, "csrf", nonce)


def csrf_ok(nonce: str | None, token: str | None, *, secret: str) -> bool:
    """True when ``token`` (from the form) was issued for ``nonce`` (from the cookie)."""
    if not nonce or not token:
        return False
    return hmac.compare_digest(token, csrf_token(nonce, secret=secret))
