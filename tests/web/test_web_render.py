"""Number formats and the escaping helpers of the templates."""

from __future__ import annotations

import pytest

from leaderboard.formatting import usd
from web.render import core_summary, environment, markdown, pvalue


def test_templates_autoescape_and_reject_unknown_names() -> None:
    env = environment()
    assert env.from_string("{{ t }}").render(t="<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()


def test_descriptions_link_only_http_urls_and_escape_the_rest() -> None:
    html = str(markdown('see https://github.com/karpathy/nanochat). <script>x</script> javascript:alert(1) "q"'))
    assert '<a href="https://github.com/karpathy/nanochat" rel="nofollow noopener noreferrer">' in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert 'href="javascript' not in html
    tricky = str(markdown('http://a.b/?q="><img src=x onerror=alert(1)>'))
    assert "<img" not in tricky and 'href="http://a.b/?q="' in tricky


def test_number_formats() -> None:
    assert usd(43_000) == "$43,000"
    assert usd(39.6) == "$39.60"
    assert pvalue(0.00001) == "1.0e-05"
    assert pvalue(0.0312) == "0.0312"
    assert core_summary(0.2571, 0.0052, 7) == "0.2571 ± 0.0052 (7)"
    assert core_summary(0.2626, None, 5) == "0.2626 (5)"
    assert core_summary(None, None, None) == "—"
