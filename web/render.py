"""The Jinja2 environment of the pages (autoescape always on) and the number formats they share."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markdown_it import MarkdownIt
from markupsafe import Markup

from leaderboard.formatting import hms, usd
from submissions.stats import p_text

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


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
    """A p-value in the project's one format (``submissions.stats.p_text``)."""
    return "—" if v is None else p_text(v)


def units(row: Any) -> str:
    """What a row ran on, counted in its own units: '8 GPUs', '32 TPU v3 chips', 'CPU only'."""
    gpus = int(getattr(row, "gpus", 0) or 0)
    sku = str(getattr(row, "hardware_class", ""))
    if not gpus or sku == "cpu":
        return "CPU only"
    if sku.startswith("tpu"):
        return f"{gpus} {sku.replace('tpu-', 'TPU ').replace('TPU v', 'TPU v')} chips"
    return f"{gpus} GPU{'s' if gpus != 1 else ''}"


def hardware(row: Any) -> str:
    """A row's hardware for people: '8 × h100-sxm', '32 × tpu-v3 chips', 'cpu (no GPU)'."""
    gpus = int(getattr(row, "gpus", 0) or 0)
    sku = str(getattr(row, "hardware_class", ""))
    if not gpus or sku == "cpu":
        return f"{sku} (no GPU)"
    nodes = int(getattr(row, "nodes", 1) or 1)
    where = f" on {nodes} nodes" if nodes > 1 else ""
    return f"{gpus} × {sku}{' chips' if sku.startswith('tpu') else ''}{where}"


_ENTRY_REF = re.compile(r"#(\d{1,18})\b")


def entry_links(text: str) -> Markup:
    """Plain text with each '#N' made a link to entry N (everything else escaped)."""
    escaped = str(Markup.escape(text))
    return Markup(_ENTRY_REF.sub(lambda m: f'<a href="/entries/{m.group(1)}">#{m.group(1)}</a>', escaped))


GPT2_CORE_TEXT = "0.256525"


def core_value(v: float | None, threshold: float = float(GPT2_CORE_TEXT)) -> str:
    """CORE with 4 digits, or as many more (up to 6) as it takes not to read equal to the
    threshold when it differs from it: GPT-2's own 0.256525 never prints as a failing 0.2565."""
    if v is None:
        return "—"
    for digits in (4, 5, 6):
        if v == threshold or f"{v:.{digits}f}" != f"{threshold:.{digits}f}":
            break
    return f"{v:.{6 if v == threshold else digits}f}"


def core_margin(v: float | None, threshold: float = float(GPT2_CORE_TEXT)) -> str:
    """CORE minus the threshold: '+0.0061', '-0.0002', '±0' (GPT-2 itself)."""
    if v is None:
        return "—"
    d = v - threshold
    if abs(d) < 5e-7:
        return "±0"
    return f"{d:+.4f}" if abs(d) >= 5e-5 else f"{d:+.6f}"


def core_summary(mean: float | None, std: float | None, n: int | None) -> str:
    """'0.2626 ± 0.0031 (5)'; the std and n only when known."""
    if mean is None:
        return "—"
    text = core_value(mean)
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


def percent1(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}%"


def basename(name: str) -> str:
    """The last path part of an artifact's name (a download's file name)."""
    return name.rsplit("/", 1)[-1] or name


def size(v: int | None) -> str:
    if v is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if v < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v = v / 1024  # type: ignore[assignment]
    return str(v)


_URL = re.compile(r"https?://[^\s<>\"'`]+[^\s<>\"'`.,;:!?)\]]")


_MD = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image")


def _md_link_open(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    tokens[idx].attrSet("rel", "nofollow noopener noreferrer")
    return str(renderer.renderToken(tokens, idx, options, env))


_MD.add_render_rule("link_open", _md_link_open)


def markdown(text: str | None) -> Markup:
    """A submitter's description as Markdown (CommonMark): raw HTML and images are not rendered,
    links get rel=nofollow and only safe schemes (markdown-it's link validation)."""
    bare = re.sub(r"(?<![(<\[\w/])" + _URL.pattern, lambda m: f"<{m.group(0)}>", text or "")
    return Markup(_MD.render(bare))


def entry_summary(entry: Any, track: Any) -> str:
    """One line for a shared link's preview: who, what time, verified or reported, CORE."""
    parts = [f"{entry.title} on {track.name}"]
    if entry.hours is not None:
        parts.append(f"{hms(entry.hours)} training")
    if entry.cost_usd is not None:
        parts.append(usd(entry.cost_usd))
    if entry.core_mean is not None:
        parts.append(f"CORE {core_value(entry.core_mean)}")
    parts.append(str(entry.status))
    return " · ".join(parts)


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
        hms=hms,
        signed_hms=signed_hms,
        minutes=minutes,
        usd=usd,
        num=num,
        pvalue=pvalue,
        day=day,
        moment=moment,
        pretty_json=pretty_json,
        percent=percent,
        percent1=percent1,
        basename=basename,
        size=size,
    )
    env.filters.update(
        core=core_value,
        core_margin=core_margin,
        markdown=markdown,
        entry_links=entry_links,
        hardware=hardware,
        units=units,
    )
    env.globals.update(core_summary=core_summary)
    return env


def render(template: str, context: dict[str, Any]) -> str:
    return environment().get_template(template).render(**context)
