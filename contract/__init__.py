"""The shared language of the trainer, the verifier and the site: pydantic models and constants.

This package imports nothing of ours and no framework (no torch, fastapi or sqlalchemy):
`schema` (the run and submission documents), `protocol` (the HTTP paths and bodies between the
CLI, the worker and the site), `tracks` (what a record means), `hardware` (SKU classes, the one
table of peak FLOP/s and the physical floor) and `core_v1` (the CORE task list and the GPT-2 bar).
The import rule that keeps it a leaf is checked in CI (`lint-imports`, pyproject.toml).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("speedrun")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"

# The files a run directory holds: written by the trainer, read by the verifier and the worker.
RESULT_FILE = "result.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
MODEL_FILE = "model.pt"
