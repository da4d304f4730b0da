"""The pages that go through the read caches, over real HTTP on a site with its caches on and on
one with them off: a signed-in page's forms carry the token of the CSRF nonce cookie the browser
holds, or of the one the same response sets."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import SECRET, Site, serve
from web import security

# every page answered through ``cached_route`` / ``shared_page`` ({entry}: an entry of the site)
PAGES = (
    "/",
    "/tracks/gpt2-8xh100",
    "/entries/{entry}",
    "/about",
    "/progression",
    "/queue",
    "/compare",
    "/compare?a={entry}&b={entry}",
    "/me",
)


@pytest.fixture(scope="module")
def cached_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home: Path = tmp_path_factory.mktemp("cached-pages")
    with serve(home, f"sqlite:///{home / 'site.db'}", cache_ttl_seconds=3600) as running:
        yield running


@pytest.fixture(scope="module", params=["cache on", "cache off"])
def any_site(request: pytest.FixtureRequest) -> Site:
    site: Site = request.getfixturevalue("cached_site" if request.param == "cache on" else "site")
    return site


@pytest.fixture(scope="module")
def viewer(any_site: Site) -> tuple[Site, str, int]:
    """The site, a submitter's API token and an entry of theirs."""
    key = uuid.uuid4().hex[:10]
    token = any_site.create_user(f"cached-pages-{key}", "submitter")
    entry = any_site.submit(token, any_site.submission("cached pages entry", f"cached-pages-{key}"))
    return any_site, token, int(entry["entry_id"])


def tokens(html: str) -> set[str]:
    return set(re.findall(r'name="csrf_token" value="([^"]+)"', html))


def signed_in(site: Site, token: str) -> httpx.Client:
    """A browser that signed in with ``token`` (sign-in drops its CSRF nonce cookie)."""
    client = httpx.Client(base_url=site.url, timeout=30)
    r = client.post("/login", data={"token": token, "csrf_token": tokens(client.get("/submit").text).pop()})
    assert r.status_code == 303
    return client


@pytest.mark.parametrize("path", PAGES)
def test_a_signed_in_page_sets_the_csrf_nonce_its_forms_carry(viewer: tuple[Site, str, int], path: str) -> None:
    """A browser holding a session cookie but no nonce cookie (a restarted browser keeps the 30-day
    session, not the nonce) gets one with the page, and the page's sign-out form works with it;
    two such browsers of one user get a token each, never the other's."""
    site, token, entry = viewer
    url = path.format(entry=entry)
    browsers = [signed_in(site, token) for _ in range(2)]
    try:
        nonces = []
        for browser in browsers:
            browser.cookies.delete(security.CSRF_COOKIE)
            page = browser.get(url)
            assert page.status_code == 200, url
            nonce = page.cookies.get(security.CSRF_COOKIE)
            assert nonce, f"{url} rendered a sign-out form but set no CSRF nonce cookie"
            assert tokens(page.text) == {security.csrf_token(nonce, secret=SECRET)}, url
            assert page.headers["cache-control"] == "no-store"  # a response setting a cookie is nobody else's
            nonces.append(nonce)
            out = browser.post("/logout", data={"csrf_token": tokens(page.text).pop()}, follow_redirects=False)
            assert out.status_code == 303, f"signing out from {url} failed: {out.status_code}"
            assert "sign in</a>" in browser.get("/").text
        assert nonces[0] != nonces[1]
    finally:
        for browser in browsers:
            browser.close()


def test_a_signed_in_page_keeps_the_nonce_a_browser_has(viewer: tuple[Site, str, int]) -> None:
    """A browser that holds a nonce cookie is given no other: its forms carry that nonce's token."""
    site, token, _ = viewer
    browser = signed_in(site, token)
    try:
        browser.cookies.delete(security.CSRF_COOKIE)
        nonce = browser.get("/").cookies[security.CSRF_COOKIE]
        for _ in range(2):  # the second from the signed-in pages' cache where it is on
            page = browser.get("/")
            assert security.CSRF_COOKIE not in page.cookies
            assert tokens(page.text) == {security.csrf_token(nonce, secret=SECRET)}
    finally:
        browser.close()
