"""An entry's page (runs, deltas, charts, logs, jobs) and its two actions: re-verify and retract."""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.db import SessionDep
from leaderboard.entries.service import (
    can_request_reverification,
    entry_detail,
    request_reverification,
    retract,
)
from leaderboard.errors import DomainError, NotFound
from leaderboard.users.models import Role
from web import charts
from web.pages.common import (
    detail_text,
    error_page,
    posted,
    redirect,
    render_page,
    settings_of,
    sign_in_first,
    store_of,
    viewer_of,
)

router = APIRouter(include_in_schema=False)

MAX_CURVE_POINTS = 400

# ---------------------------------------------------------------------------- number helpers


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return math.fsum(known) / len(known) if known else None


def _deltas(claimed: list[Any], verified: list[Any]) -> list[dict[str, str]]:
    """Verified minus claimed means of hours, CORE and val_bpb, with the better direction marked."""
    out: list[dict[str, str]] = []
    specs = (
        ("training hours", "training_hours", 3, -1),
        ("CORE", "core", 4, 1),
        ("val_bpb", "val_bpb", 5, -1),
    )
    for label, attr, digits, better in specs:
        c = _mean([getattr(r, attr) for r in claimed])
        v = _mean([getattr(r, attr) for r in verified])
        if c is None or v is None:
            continue
        d = v - c
        text = f"{d:+.{digits}f}"
        if attr == "training_hours" and c > 0:
            text += f" ({100 * d / c:+.1f}%)"
        css = "" if d == 0 else ("delta-good" if d * better > 0 else "delta-bad")
        out.append(
            {"label": label, "claimed": f"{c:.{digits}f}", "verified": f"{v:.{digits}f}", "delta": text, "css": css}
        )
    return out


LOG_TAIL_LINES = 40
LOG_TAIL_CHARS = 6000
MAX_INLINE_LOGS = 3


def _log_tails(store: ArtifactStore, artifacts: list[Any]) -> list[dict[str, str]]:
    """The last lines of the entry's text logs, to show inline (escaped by the template like all text)."""
    out: list[dict[str, str]] = []
    # human logs before machine-readable JSON lines
    for a in sorted(artifacts, key=lambda a: a.name.endswith(".jsonl")):
        if a.kind != "log" or len(out) >= MAX_INLINE_LOGS:
            continue
        data = store.read(a.sha256)
        if data is None:
            continue
        text = data[-4 * LOG_TAIL_CHARS :].decode("utf-8", errors="replace")
        tail = "\n".join(text.splitlines()[-LOG_TAIL_LINES:])[-LOG_TAIL_CHARS:]
        out.append({"name": a.name, "sha256": a.sha256, "tail": tail})
    return out


def _thin(points: list[tuple[float, float]], limit: int = MAX_CURVE_POINTS) -> list[tuple[float, float]]:
    """At most ``limit`` points, evenly spaced, always keeping the last."""
    if len(points) <= limit:
        return points
    step = len(points) / limit
    kept = [points[int(i * step)] for i in range(limit - 1)]
    return [*kept, points[-1]]


def _run_name(curve: Any) -> str:
    seed = "" if curve.seed is None else f" seed {curve.seed}"
    return f"{curve.kind}{seed}"


def _curve_chart(curves: list[Any], attr: str, title: str, y_label: str, markers: bool) -> Any:
    series = []
    for c in curves:
        pts = [
            (float(p.training_seconds), float(getattr(p, attr)))
            for p in c.points
            if p.training_seconds is not None and getattr(p, attr) is not None
        ]
        if pts:
            series.append(charts.Series(_run_name(c), _thin(sorted(pts)), markers=markers))
    return charts.line_chart(
        series[: len(charts.PALETTE)],
        title=title,
        x_label="training time",
        y_label=y_label,
        x_kind="seconds",
        frame=charts.Frame(width=560, height=320, left=56),
        css_class=f"curve-chart {attr}",
        empty_message=f"no {y_label} curve recorded",
    )


def _core_chart(tasks: list[Any]) -> Any:
    groups = []
    for name, attr in (("claimed", "claimed"), ("verified", "verified")):
        values = {t.task: float(getattr(t, attr)) for t in tasks if getattr(t, attr) is not None}
        if values:
            groups.append(charts.BarGroup(name, values))
    return charts.bar_chart(
        groups, title="CORE per task (mean accuracy)", value_label="accuracy", css_class="core-bars"
    )


@router.get("/entries/{entry_id}", response_class=HTMLResponse)
def entry_page(entry_id: int, request: Request, session: SessionDep) -> HTMLResponse:

    viewer = viewer_of(request, session)
    try:
        detail = entry_detail(session, entry_id, store_of(request))
    except NotFound:
        return error_page(request, viewer, 404, "No such entry", f"There is no entry #{entry_id}.")
    user = viewer.user
    owner_id = user.id if user is not None and detail.owner is not None and detail.owner == user.name else None
    can_reverify = can_request_reverification(user, detail.entry, owner_id)
    can_retract = user is not None and user.role == Role.admin and detail.entry.status != "retracted"
    runs = [*detail.claimed_runs, *detail.verified_runs, *detail.reported_runs]
    hardware = sorted((k, v) for k, v in (detail.hardware or {}).items() if v is not None)
    context = {
        "title": detail.entry.title,
        "nav": "board",
        "json_twin": f"/api/entries/{entry_id}",
        "entry": detail.entry,
        "track": detail.track_info,
        "description": detail.description,
        "owner": detail.owner,
        "trainer": detail.trainer,
        "recipe": detail.recipe,
        "run_config": detail.run_config,
        "plan": detail.plan,
        "retracted_reason": detail.retracted_reason,
        "runs": runs,
        "deltas": _deltas(detail.claimed_runs, detail.verified_runs),
        "core_chart": _core_chart(detail.core_tasks) if detail.core_tasks else None,
        "loss_chart": _curve_chart(detail.curves, "loss", "Training loss", "loss", markers=False)
        if any(p.loss is not None for c in detail.curves for p in c.points)
        else None,
        "bpb_chart": _curve_chart(detail.curves, "val_bpb", "Validation bits per byte", "val_bpb", markers=True)
        if any(p.val_bpb is not None for c in detail.curves for p in c.points)
        else None,
        "verifications": detail.verifications,
        "jobs": detail.jobs,
        "hardware": hardware,
        "artifacts": detail.artifacts,
        "logs": _log_tails(store_of(request), detail.artifacts),
        "can_reverify": can_reverify,
        "can_retract": can_retract,
    }
    return render_page(request, "entry.html", context, viewer=viewer, forms=can_reverify or can_retract)


@router.post("/entries/{entry_id}/reverify", response_class=HTMLResponse)
async def reverify(entry_id: int, request: Request, session: SessionDep) -> Response:
    viewer, _, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    try:
        request_reverification(
            session, viewer.principal.user, entry_id, max_attempts=int(settings_of(request).max_job_attempts)
        )
    except DomainError as exc:
        session.rollback()
        return error_page(request, viewer, exc.status, "Not possible", detail_text(exc.detail))
    return redirect(f"/entries/{entry_id}?done=reverify")


@router.post("/entries/{entry_id}/retract", response_class=HTMLResponse)
async def retract_entry(entry_id: int, request: Request, session: SessionDep) -> Response:
    """An admin withdraws an entry from the board, saying why (audited by the service)."""
    viewer, form, refused = await posted(request, session)
    if refused is not None:
        return refused
    if viewer.principal is None:
        return sign_in_first(request, viewer)
    reason = form.get("reason")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason or len(reason) > 2000:
        return error_page(
            request, viewer, 422, "Reason needed", "reason: say in 1 to 2000 characters why it is retracted"
        )
    try:
        retract(session, viewer.principal.user, entry_id, reason)
    except DomainError as exc:
        session.rollback()
        return error_page(request, viewer, exc.status, "Not possible", detail_text(exc.detail))
    return redirect(f"/entries/{entry_id}?done=retracted")
