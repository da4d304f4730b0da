"""The pieces of an entry's page computed in Python: claimed-vs-verified deltas, the per-task CORE
table (with GPT-2 XL's published accuracies), curve charts of every run, log tails, and whether
the viewer may ask for a re-verification (or why not)."""

from __future__ import annotations

import math
import re
from typing import Any

from markupsafe import Markup

from contract.core_v1 import CORE_V1_EXAMPLES
from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.formatting import hms
from leaderboard.users.models import Role, User
from web import charts
from web.render import signed_hms

MAX_CURVE_POINTS = 400
LOG_TAIL_LINES = 40
LOG_TAIL_BYTES = 64 * 1024
MAX_INLINE_LOGS = 3

# GPT-2 XL (1558M) per-task accuracy under the nanochat harness, v1 (docs/CORE.md, "Reference numbers")
GPT2_XL_ACCURACY = {
    "hellaswag_zeroshot": 0.502,
    "lambada_openai": 0.523,
    "hellaswag": 0.512,
    "piqa": 0.725,
    "arc_easy": 0.595,
    "arc_challenge": 0.299,
}

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), two-byte escapes, then other C0/C1 controls
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def clean_log_line(line: str) -> str:
    """What a terminal would show for one line: the text after its last carriage return (progress
    bars redraw with ``\\r``), without escape sequences or other control characters."""
    return _ANSI.sub("", line.rstrip("\r").rsplit("\r", 1)[-1])


def log_tail(data: bytes, lines: int = LOG_TAIL_LINES) -> str:
    """The true last ``lines`` lines of a log, cleaned for display (a trailing newline is no line)."""
    text = data[-LOG_TAIL_BYTES:].decode("utf-8", errors="replace")
    kept = text.split("\n")
    if kept and kept[-1] == "":
        kept.pop()  # the newline that ends the last line
    if len(data) > LOG_TAIL_BYTES and kept:
        kept = kept[1:]  # the first line read is a fragment
    return "\n".join(clean_log_line(line) for line in kept[-lines:])


def log_tails(store: ArtifactStore, artifacts: list[Any]) -> list[dict[str, str]]:
    """The last lines of the entry's text logs, to show inline (escaped by the template like all text)."""
    out: list[dict[str, str]] = []
    # human logs before machine-readable JSON lines
    for a in sorted(artifacts, key=lambda a: a.name.endswith(".jsonl")):
        if a.kind != "log" or len(out) >= MAX_INLINE_LOGS:
            continue
        data = store.read(a.sha256)
        if data is None:
            continue
        out.append({"name": a.name, "sha256": a.sha256, "tail": log_tail(data)})
    return out


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None


def deltas(claimed: list[Any], verified: list[Any], *, judged: bool) -> list[dict[str, str]]:
    """Verified minus claimed means of time (h:mm:ss), CORE and val_bpb. The better direction is
    coloured only when ``judged`` (the verification passed): a failed rerun's numbers are no win."""
    out: list[dict[str, str]] = []
    specs = (("training time", "training_hours", -1), ("CORE", "core", 1), ("val_bpb", "val_bpb", -1))
    for label, attr, better in specs:
        c = _mean([getattr(r, attr) for r in claimed])
        v = _mean([getattr(r, attr) for r in verified])
        if c is None or v is None:
            continue
        d = v - c
        if attr == "training_hours":
            shown_c, shown_v, text = hms(c), hms(v), signed_hms(d)
            if c > 0:
                text += f" ({100 * d / c:+.1f}%)"
        else:
            digits = 4 if attr == "core" else 5
            shown_c, shown_v, text = f"{c:.{digits}f}", f"{v:.{digits}f}", f"{d:+.{digits}f}"
        css = "" if d == 0 or not judged else ("delta-good" if d * better > 0 else "delta-bad")
        out.append({"label": label, "claimed": shown_c, "verified": shown_v, "delta": text, "css": css})
    return out


FULL_BUNDLE_EXAMPLES = sum(CORE_V1_EXAMPLES.values())
CLAIMED_COLOR, VERIFIED_COLOR, GPT2_COLOR = "#2563eb", "#047857", "#6b7280"  # one meaning, one colour


def compares_with_gpt2(track: Any) -> bool:
    """GPT-2 XL's published accuracies are comparable only with runs scored on the full public
    bundle (the GPT-2 tracks), never with a toy model on the CPU track's synthetic bundle."""
    return bool(track.core_examples == FULL_BUNDLE_EXAMPLES)


def core_table(tasks: list[Any], with_gpt2: bool = True) -> list[dict[str, Any]]:
    """Per-task rows: claimed and verified mean accuracy, GPT-2 XL's where published and
    comparable (``with_gpt2``), and the margin."""
    rows = []
    for t in tasks:
        gpt2 = GPT2_XL_ACCURACY.get(t.task) if with_gpt2 else None
        best = t.verified if t.verified is not None else t.claimed
        rows.append(
            {
                "task": t.task,
                "claimed": t.claimed,
                "verified": t.verified,
                "gpt2": gpt2,
                "margin": None if gpt2 is None or best is None else best - gpt2,
            }
        )
    return rows


def core_chart(tasks: list[Any], with_gpt2: bool = True) -> charts.Responsive:
    groups = []
    for name, attr, color in (("claimed", "claimed", CLAIMED_COLOR), ("verified", "verified", VERIFIED_COLOR)):
        values = {t.task: float(getattr(t, attr)) for t in tasks if getattr(t, attr) is not None}
        if values:
            groups.append(charts.BarGroup(name, values, color))
    gpt2 = {t.task: GPT2_XL_ACCURACY[t.task] for t in tasks if t.task in GPT2_XL_ACCURACY}
    if gpt2 and with_gpt2:
        groups.append(charts.BarGroup("GPT-2 XL", gpt2, GPT2_COLOR))

    def draw(width: int, title: str) -> Markup:
        return charts.bar_chart(groups, title=title, value_label="accuracy", css_class="core-bars", width=width)

    return charts.Responsive(draw(720, "CORE per task (mean accuracy)"), draw(charts.NARROW_WIDTH, "CORE per task"))


def _thin(points: list[tuple[float, float]], limit: int = MAX_CURVE_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points, evenly spaced, always keeping the last."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    kept = [points[int(i * step)] for i in range(limit - 1)]
    return [*kept, points[-1]]


def run_name(curve: Any, prefix: str = "") -> str:
    seed = "" if curve.seed is None else f" seed {curve.seed}"
    return f"{prefix}{curve.kind}{seed}"


def curve_series(
    curves: list[Any], attr: str, *, markers: bool, prefix: str = "", dashed: bool = False, first_color: int = 0
) -> list[Any]:
    """One series per run (every run: none is dropped), thinned to ``MAX_CURVE_POINTS``; colors
    from the palette starting at ``first_color``."""
    series: list[Any] = []
    for c in curves:
        pts = [
            (float(p.training_seconds), float(getattr(p, attr)))
            for p in c.points
            if p.training_seconds is not None and getattr(p, attr) is not None
        ]
        if pts:
            color = charts.PALETTE[(first_color + len(series)) % len(charts.PALETTE)]
            series.append(
                charts.Series(run_name(c, prefix), _thin(sorted(pts)), markers=markers, dashed=dashed, color=color)
            )
    return series


def curve_chart(series: list[Any], attr: str, title: str, y_label: str) -> charts.Responsive:
    def draw(frame: charts.Frame) -> Markup:
        return charts.line_chart(
            series,
            title=title,
            x_label="training time",
            y_label=y_label,
            x_kind="seconds",
            frame=frame,
            css_class=f"curve-chart {attr}",
            empty_message=f"no {y_label} curve recorded",
        )

    narrow = charts.Frame(width=charts.NARROW_WIDTH, height=260, left=52, right=10)
    return charts.Responsive(draw(charts.Frame(width=560, height=320, left=56)), draw(narrow))


def has_points(curves: list[Any], attr: str) -> bool:
    return any(getattr(p, attr) is not None for c in curves for p in c.points)


def reverify_refusal(
    user: User | None, entry: Any, owner: str | None, jobs: list[Any], counted: int = 0, allowed: int | None = None
) -> str | None:
    """None when ``user`` may request a re-verification now, else why not (the service's rules:
    ``counted`` verifications pooled so far, ``allowed`` the track's limit for owners)."""
    status = str(entry.status)
    if status == "reported":
        return "Imported history is reported, not verifiable here: it has no run config to rerun."
    if status == "retracted":
        return "This entry was retracted."
    active = next((j for j in jobs if str(j.status) in ("queued", "running")), None)
    if active is not None:
        return f"Job #{active.id} is already {active.status}: a new verification can be asked once it finishes."
    if user is None:
        return "Sign in as the entry's owner or an admin to request a re-verification."
    if user.role != Role.admin and not (user.role == Role.submitter and owner == user.name):
        return "Only the entry's owner or an admin can request a re-verification."
    if user.role != Role.admin and allowed is not None and counted >= allowed:
        return f"This entry has had {counted} counted verifications, the track's limit for owners; an admin can ask for more."
    return None
