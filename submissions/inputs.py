"""The verifier's synthetic inputs (corpus, tokenizer, eval bundle): built once per machine, reused
while their digests match.

A CPU-track job is verified one run per ``verify`` call (a lease per run), so whatever a run needs
besides training itself must cost nothing the second time. The corpus + tokenizer of a seed and its
synthetic eval bundle live under ``<SPEEDRUN_HOME or ~/.cache/speedrun>/verifier-inputs/``, a
directory only the verifier writes (every sandboxed step sees it read-only at most). When one is
built, the canonical digest of its files (``trainer.evaluation.bundle.directory_digest``) is
recorded in ``digests.json``; a later call reuses it only when the files still hash to the record,
and rebuilds it otherwise (a half-written, edited or truncated file, a record from another build).
The training sandbox is given the same corpus and tokenizer read-only: they are a pure function of
the public seed, so a run sees nothing it could not build itself, and no run rebuilds them.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock

from trainer.data.paths import default_cache_dir
from trainer.data.prepare import ensure_synthetic_dataset
from trainer.evaluation.bundle import directory_digest, ensure_synthetic_bundle
from trainer.evaluation.synthetic import SYNTHETIC_VERSION

INPUTS_DIR = "verifier-inputs"
DIGESTS_FILE = "digests.json"


@dataclass(frozen=True)
class SyntheticInputs:
    """Paths of the verifier's checked synthetic inputs, and which of them this call built."""

    data_dir: Path
    tokenizer_dir: Path
    bundle: Path | None
    digests: dict[str, str]
    built: list[str] = field(default_factory=list)


def inputs_root() -> Path:
    return default_cache_dir() / INPUTS_DIR


def _read_record(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def synthetic_inputs(*, seed: int, vocab_size: int, bundle: bool, root: Path | None = None) -> SyntheticInputs:
    """The corpus + tokenizer of ``seed`` (and its eval bundle when ``bundle``), from the cache when
    their digests match the record, else rebuilt and recorded."""
    root = Path(root) if root is not None else inputs_root()
    root.mkdir(parents=True, exist_ok=True)
    dataset_root = root / f"synthetic-{seed}-v{vocab_size}"
    built: list[str] = []
    with FileLock(str(root / ".lock")):
        record = _read_record(root / DIGESTS_FILE)

        def checked(name: str, path: Path) -> bool:
            return path.is_dir() and record.get(name) == directory_digest(path)

        if not checked(dataset_root.name, dataset_root):
            shutil.rmtree(dataset_root, ignore_errors=True)
            ensure_synthetic_dataset(dataset_root, seed=seed, vocab_size=vocab_size)
            record[dataset_root.name] = directory_digest(dataset_root)
            built.append(dataset_root.name)
        bundle_dir = None
        if bundle:
            bundle_dir = root / f"eval-bundle-synthetic-{seed}-v{SYNTHETIC_VERSION}"  # ensure_synthetic_bundle's
            if not checked(bundle_dir.name, bundle_dir):
                shutil.rmtree(bundle_dir, ignore_errors=True)
                bundle_dir = ensure_synthetic_bundle(root, seed=seed)
                record[bundle_dir.name] = directory_digest(bundle_dir)
                built.append(bundle_dir.name)
        if built:
            tmp = root / f".{DIGESTS_FILE}.tmp"
            tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
            tmp.replace(root / DIGESTS_FILE)
    return SyntheticInputs(
        data_dir=dataset_root / "data",
        tokenizer_dir=dataset_root / "tokenizer",
        bundle=bundle_dir,
        digests=dict(record),
        built=built,
    )
