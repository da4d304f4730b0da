"""The Jinja2 environment of the pages (autoescape always on) and the number formats they share."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from web import TEMPLATES_DIR
from web.charts import fmt_hours


def hours(v: float | None, digits: int = 2) -> str:
    """Training hours for a table cell: '2.76', '168', '0.0123'."""
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 0.01:
        return f"{v:.{digits}f}"
    return f"{v:.2g}"


def usd(v: float | None) -> str:
    """Dollars, with cents under $1000: '$39.60', '$0.04', '<$0.01', '$43,008'."""
    if v is None:
        return "—"
    if v >= 1000:
        return f"${v:,.0f}"
    if 0 < v < 0.005:
        return "<$0.01"
    return f"${v:,.2f}"


def hms(v: float | None, *, seconds: bool = False) -> str:
    """A duration as h:mm:ss: hours (or ``seconds=True``) -> '1:39:00', '0:02:24', '168:00:00'."""
    if v is None:
        return "—"
    total = round(abs(v) * (1 if seconds else 3600))
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{'-' if v < 0 else ''}{h}:{m:02d}:{s:02d}"


def signed_hms(v: float | None) -> str:
    """A signed difference of hours as h:mm:ss: '+0:02:42', '-1:05:00', '±0:00:00'."""
    if v is None:
        return "—"
    text = hms(abs(v))
    return ("±" if text == "0:00:00" else "+" if v > 0 else "-") + text


def minutes(seconds: float | None) -> str:
    """A remaining time in minutes with one decimal: '6.7 min' (h:mm:ss from 10 h on)."""
    if seconds is None:
        return "—"
    if seconds >= 36_000:
        return hms(seconds, seconds=True)
    return f"{max(0.0, seconds) / 60:.1f} min"


def num(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def pvalue(v: float | None) -> str:
    if v is None:
        return "—"
    if v < 1e-4:
        return f"{v:.1e}"
    return f"{v:.4f}"


def signed(v: float | None, digits: int = 4) -> str:
    return "—" if v is None else f"{v:+.{digits}f}"


def core_summary(mean: float | None, std: float | None, n: int | None) -> str:
    """'0.2626 ± 0.0031 (5)'; the std and n only when known."""
    if mean is None:
        return "—"
    text = f"{mean:.4f}"
    if std is not None and n is not None and n > 1:
        text += f" ± {std:.4f}"
    if n is not None:
        text += f" ({n})"
    return text


def day(v: date | datetime | str | None) -> str:
    if v is None:
        return "—"
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d")
    if isinstance(v, date):
        return v.isoformat()
    return str(v)


def moment(v: datetime | None) -> str:
    return "—" if v is None else v.strftime("%Y-%m-%d %H:%M UTC")


def pretty_json(v: Any) -> str:
    """Indented JSON for a <pre> (escaped by the template like any other text)."""
    if hasattr(v, "model_dump"):
        v = v.model_dump(mode="json")
    return json.dumps(v, indent=2, sort_keys=True, default=str)


def percent(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.0f}%"


def size(v: int | None) -> str:
    if v is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v = v / 1024  # type: ignore[assignment]
    return str(v)


_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")


def linkify(text: str | None) -> Markup:
    """``text`` escaped, with its http(s) URLs turned into links that send no referrer or opener."""
    raw = text or ""
    out: list[str] = []
    last = 0
    for m in _URL.finditer(raw):
        url = escape(m.group(0))
        out += [str(escape(raw[last : m.start()])), f'<a href="{url}" rel="nofollow noopener noreferrer">{url}</a>']
        last = m.end()
    out.append(str(escape(raw[last:])))
    return Markup("".join(out))


def json_script(v: Any) -> Markup:
    """JSON safe to place inside <script type="application/json"> (no '</' or '<!--' can close it)."""
    text = json.dumps(v, default=str).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The pages' Jinja2 environment: autoescape for every template, undefined names are errors."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters.update(
        hours=hours,
        hms=hms,
        signed_hms=signed_hms,
        minutes=minutes,
        usd=usd,
        num=num,
        pvalue=pvalue,
        signed=signed,
        day=day,
        moment=moment,
        pretty_json=pretty_json,
        percent=percent,
        size=size,
        duration=fmt_hours,
        json_script=json_script,
        linkify=linkify,
    )
    env.globals.update(core_summary=core_summary)
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)
