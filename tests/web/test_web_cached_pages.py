"""The pages that go through the read caches, over real HTTP on a site with its caches on and on
one with them off: a signed-in page's forms carry the token of the CSRF nonce cookie the browser
holds, or of the one the same response sets; a cached page is never another URL's (its og:url)."""

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


def og_url(html: str) -> str:
    found = re.search(r'<meta property="og:url" content="([^"]+)"', html)
    assert found, "the page has no og:url"
    return found.group(1)


# pairs of URLs answered by one route with the same parameters: the default track's board under
# both its names, an entry under its number with and without a leading zero
SAME_PAGE_TWO_URLS = (
    ("/", "/tracks/gpt2-8xh100"),
    ("/tracks/gpt2-8xh100", "/"),
    ("/entries/{entry}", "/entries/0{entry}"),
    ("/entries/0{entry}", "/entries/{entry}"),
)


@pytest.mark.parametrize("who", ["signed out", "signed in"])
@pytest.mark.parametrize("urls", SAME_PAGE_TWO_URLS, ids=" then ".join)
def test_a_cached_page_names_its_own_url(viewer: tuple[Site, str, int], who: str, urls: tuple[str, str]) -> None:
    """Each URL's page says it is that URL (og:url), whichever was asked for first and however
    often (the second round from the caches where they are on)."""
    site, token, entry = viewer
    site.app.state.cache.clear()  # this order of the two URLs from empty caches
    site.app.state.viewer_pages.cache.clear()
    browser = signed_in(site, token) if who == "signed in" else httpx.Client(base_url=site.url, timeout=30)
    try:
        for _ in range(2):
            for path in urls:
                url = path.format(entry=entry)
                page = browser.get(url)
                assert page.status_code == 200, url
                assert ("sign out" in page.text) == (who == "signed in")
                assert og_url(page.text) == site.url + url
    finally:
        browser.close()
