"""Number formats and the escaping helpers of the templates."""

from __future__ import annotations

import pytest

from web.render import core_summary, environment, hours, json_script, linkify, pvalue, usd


def test_templates_autoescape_and_reject_unknown_names() -> None:
    env = environment()
    assert env.from_string("{{ t }}").render(t="<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()


def test_linkify_links_only_http_urls_and_escapes_the_rest() -> None:
    html = linkify('see https://github.com/karpathy/nanochat). <script>x</script> javascript:alert(1) "q"')
    assert '<a href="https://github.com/karpathy/nanochat" rel="nofollow noopener noreferrer">' in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert 'href="javascript' not in html
    assert html.endswith("&#34;q&#34;")
    tricky = linkify('http://a.b/?q="><img src=x onerror=alert(1)>')
    assert "<img" not in tricky and 'href="http://a.b/?q="' in tricky


def test_json_script_cannot_close_its_script_tag() -> None:
    text = json_script({"title": "</script><script>alert(1)</script>", "x": "<!--"})
    assert "</" not in text and "<!--" not in text


def test_number_formats() -> None:
    assert hours(168.0) == "168"
    assert hours(1.6499) == "1.65"
    assert hours(None) == "—"
    assert usd(43_000) == "$43,000"
    assert usd(39.6) == "$39.60"
    assert pvalue(0.00001) == "1.0e-05"
    assert pvalue(0.0312) == "0.0312"
    assert core_summary(0.2571, 0.0052, 7) == "0.2571 ± 0.0052 (7)"
    assert core_summary(0.2626, None, 5) == "0.2626 (5)"
    assert core_summary(None, None, None) == "—"
