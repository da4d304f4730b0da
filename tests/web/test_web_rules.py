"""The rules page is generated from the rules in force (issue 20): every track setting is shown
for every track, with a label; the rules versions side by side; prices incl. tpu-v3 and cpu."""

from __future__ import annotations

import re
from typing import Any

import httpx

from leaderboard.tracks.schemas import TrackPublic
from web.pages.rules import NOT_SETTINGS, SETTINGS


def _about(site: Any) -> str:
    r = httpx.get(site.url + "/about", timeout=30)
    assert r.status_code == 200
    return r.text


def test_every_track_setting_has_a_label() -> None:
    """A field added to TrackPublic without a label here fails: the page must say what it means."""
    missing = [f for f in TrackPublic.model_fields if f not in NOT_SETTINGS and f not in SETTINGS]
    assert missing == []


def test_the_rules_page_shows_every_setting_of_every_track(site: Any) -> None:
    html = _about(site)
    tracks = httpx.get(site.url + "/api/tracks", timeout=30).json()
    for field in TrackPublic.model_fields:
        if field in NOT_SETTINGS:
            continue
        row = re.search(rf'<tr data-setting="{field}">(.*?)</tr>', html, re.S)
        assert row is not None, f"track setting {field} is not on the rules page"
        cells = re.findall(r'<td data-track="([^"]+)">', row.group(1))
        assert cells == [t["slug"] for t in tracks], field


def test_the_rules_page_is_the_rules_in_force(site: Any) -> None:
    html = _about(site)
    assert "These are the rules of version" not in html  # the stale v1 wording is gone
    assert 'id="rules-versions"' in html and "<code>speedrun-v1</code>" in html and "<code>speedrun-v2</code>" in html
    for section in ("pooling", "quotas", "sealing", "prices-heading"):
        assert f'id="{section}"' in html
    assert "alpha / k" in html and "code review of forks" in html
    assert re.search(r'<tr data-sku="tpu-v3">.*?8\.00.*?reported by its authors', html, re.S)
    assert re.search(r'<tr data-sku="cpu">.*?no price', html, re.S)
