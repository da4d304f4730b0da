"""Curves for the entry page, read from a run's stored metrics log (JSON lines).

The trainer writes one JSON object per line; training-time points carry a step, a loss and the
elapsed training seconds, evaluation points carry ``val_bpb`` and a step (their training time is the train line's at that step). Key names are read tolerantly
(``training_seconds`` / ``elapsed_seconds`` / ``elapsed`` / ``time_s``) so older logs still plot.
"""

from __future__ import annotations

import json
import math
from typing import Any

from leaderboard.artifacts.storage import ArtifactStore
from leaderboard.entries.schemas import CurvePointPublic

MAX_POINTS = 400
_TIME_KEYS = ("training_seconds", "elapsed_seconds", "train_seconds", "elapsed", "time_s", "t")
_LOSS_KEYS = ("loss", "train_loss", "smooth_loss")


def _number(obj: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = obj.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None


def parse_points(text: str) -> list[CurvePointPublic]:
    """Points with a loss or a val_bpb; the training-loss points are thinned to at most MAX_POINTS."""
    loss_points: list[CurvePointPublic] = []
    eval_points: list[CurvePointPublic] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(obj, dict):
            continue
        step = obj.get("step")
        point = CurvePointPublic(
            step=step if isinstance(step, int) and not isinstance(step, bool) else None,
            training_seconds=_number(obj, _TIME_KEYS),
            loss=_number(obj, _LOSS_KEYS),
            val_bpb=_number(obj, ("val_bpb",)),
        )
        if point.val_bpb is not None:
            eval_points.append(point)
        elif point.loss is not None:
            loss_points.append(point)
    eval_points = [_with_time(p, loss_points) for p in eval_points]
    if len(loss_points) > MAX_POINTS:
        stride = math.ceil(len(loss_points) / MAX_POINTS)
        loss_points = loss_points[::stride] + ([loss_points[-1]] if (len(loss_points) - 1) % stride else [])
    points = loss_points + eval_points
    points.sort(key=lambda p: (p.step if p.step is not None else -1, p.val_bpb is not None))
    return points


def _with_time(point: CurvePointPublic, train_points: list[CurvePointPublic]) -> CurvePointPublic:
    """Evaluation lines carry only a step: take the training time of the last train line at or before it."""
    if point.training_seconds is not None or point.step is None:
        return point
    seconds = 0.0 if point.step == 0 else None
    for t in train_points:
        if t.step is not None and t.step <= point.step and t.training_seconds is not None:
            seconds = t.training_seconds
    return point.model_copy(update={"training_seconds": seconds})


def read_curve(store: ArtifactStore, sha256: str) -> list[CurvePointPublic]:
    data = store.read(sha256)
    if data is None:
        return []
    return parse_points(data.decode("utf-8", errors="replace"))
