"""The shared language of the trainer, the verifier and the site: pydantic models and constants.

This package imports nothing of ours and no framework (no torch, fastapi or sqlalchemy):
`schema` (the run and submission documents), `protocol` (the HTTP paths and bodies between the
CLI, the worker and the site), `tracks` (what a record means), `hardware` (SKU classes, the one
table of peak FLOP/s and the physical floor) and `core_v1` (the CORE task list and the GPT-2 bar).
The import rule that keeps it a leaf is checked in CI (`lint-imports`, pyproject.toml).
"""

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("speedrun")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

HOME_ENV = "SPEEDRUN_HOME"


def speedrun_home() -> Path | None:
    """``$SPEEDRUN_HOME``, the one directory every part keeps its state under when it is set; None when
    unset, and each part falls back to its own documented place: the site to the current directory
    (``./speedrun.db``), the trainer's downloads and caches to ``~/.cache/speedrun``. Read at call time."""
    value = os.environ.get(HOME_ENV)
    return Path(value).expanduser().resolve() if value else None


# The files a run directory holds: written by the trainer, read by the verifier and the worker.
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
MODEL_FILE = "model.pt"
