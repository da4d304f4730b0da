"""Signed cookies and CSRF tokens: what is signed verifies, anything altered or stale does not."""

from __future__ import annotations

from web.security import csrf_ok, csrf_token, new_csrf_nonce, sign, unsign

SECRET = "test-secret-key-0123456789"


def test_signed_value_round_trips() -> None:
    signed = sign("sr_token/with.odd+chars", secret=SECRET, purpose="session", now_s=1000)
    assert unsign(signed, secret=SECRET, purpose="session", max_age_s=60, now_s=1030) == "sr_token/with.odd+chars"


def test_signature_is_bound_to_its_purpose() -> None:
    signed = sign("value", secret=SECRET, purpose="session", now_s=1000)
    assert unsign(signed, secret=SECRET, purpose="other", max_age_s=60, now_s=1000) is None


def test_tampered_value_wrong_secret_or_garbage_is_rejected() -> None:
    signed = sign("alice", secret=SECRET, purpose="session", now_s=1000)
    _, issued, mac = signed.split(".")
    forged = sign("mallory", secret="another-secret", purpose="session", now_s=1000).split(".")[0]
    assert unsign(f"{forged}.{issued}.{mac}", secret=SECRET, purpose="session", max_age_s=60, now_s=1000) is None
    assert unsign(signed, secret="another-secret", purpose="session", max_age_s=60, now_s=1000) is None
    for garbage in ("", "a.b", "a.b.c", "..", signed + "x"):
        assert unsign(garbage, secret=SECRET, purpose="session", max_age_s=60, now_s=1000) is None


def test_expired_value_is_rejected() -> None:
    signed = sign("alice", secret=SECRET, purpose="session", now_s=1000)
    assert unsign(signed, secret=SECRET, purpose="session", max_age_s=60, now_s=1061) is None


def test_csrf_token_matches_only_its_nonce_and_secret() -> None:
    nonce, other = new_csrf_nonce(), new_csrf_nonce()
    assert nonce != other
    token = csrf_token(nonce, secret=SECRET)
    assert csrf_ok(nonce, token, secret=SECRET)
    assert not csrf_ok(other, token, secret=SECRET)
    assert not csrf_ok(nonce, csrf_token(nonce, secret="another-secret"), secret=SECRET)
    assert not csrf_ok(nonce, None, secret=SECRET)
    assert not csrf_ok(None, token, secret=SECRET)
    assert not csrf_ok(nonce, "", secret=SECRET)
