"""Build-once datasets: the synthetic corpus plus a tokenizer trained on it, cached on disk.

Used by the CPU track, the tests and the demos so that they run the real code path offline.
The build happens under a file lock in a temporary directory renamed into place, so concurrent
callers (several test workers, several ranks) build it once and never see a half-written dataset.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.data.manifest import Manifest, read_manifest
from trainer.data.paths import default_cache_dir

if TYPE_CHECKING:
    from trainer.data.tokenizer import Tokenizer

DEFAULT_NUM_SHARDS = 3
DEFAULT_DOCS_PER_SHARD = 4096
TOKENIZER_MAX_CHARS = 2_000_000_000


@dataclass(frozen=True)
class Dataset:
    data_dir: Path
    tokenizer_dir: Path
    manifest: Manifest

    def load_tokenizer(self) -> Tokenizer:
        from trainer.data.tokenizer import Tokenizer

        return Tokenizer.load(self.tokenizer_dir)


def synthetic_dataset_dir(
    *, seed: int, vocab_size: int, num_shards: int = DEFAULT_NUM_SHARDS, docs_per_shard: int = DEFAULT_DOCS_PER_SHARD
) -> Path:
    name = f"synthetic-{seed}-v{vocab_size}"
    if (num_shards, docs_per_shard) != (DEFAULT_NUM_SHARDS, DEFAULT_DOCS_PER_SHARD):
        name += f"-{num_shards}x{docs_per_shard}"
    return default_cache_dir() / name


def read_shard_texts(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return [str(t) for t in pq.read_table(path, columns=["text"]).column("text").to_pylist()]


def train_tokenizer_on_shards(
    data_dir: Path, *, vocab_size: int, max_chars: int = TOKENIZER_MAX_CHARS, progress: bool = True
) -> Tokenizer:
    """Train a tokenizer on the training shards of ``data_dir`` (in name order; never the validation shard)."""
    from trainer.data.tokenizer import train_tokenizer

    manifest = read_manifest(data_dir)

    def texts() -> Iterator[str]:
        for name in manifest.train_shards:
            yield from read_shard_texts(data_dir / name)

    return train_tokenizer(texts(), vocab_size=vocab_size, max_chars=max_chars, progress=progress)


def ensure_synthetic_dataset(
    root: Path | None = None,
    *,
    seed: int = 0,
    vocab_size: int = 2048,
    num_shards: int = DEFAULT_NUM_SHARDS,
    docs_per_shard: int = DEFAULT_DOCS_PER_SHARD,
    progress: bool = False,
) -> Dataset:
    """The synthetic corpus of ``seed`` and a ``vocab_size`` tokenizer trained on it, built once under ``root``.

    ``root`` defaults to ``default_cache_dir()/synthetic-<seed>-v<vocab_size>``. Same arguments ->
    the same shard bytes, tokenizer bytes and digests.
    """
    from filelock import FileLock

    from trainer.data.synth import write_synthetic_corpus

    root = (
        Path(root)
        if root is not None
        else synthetic_dataset_dir(
            seed=seed, vocab_size=vocab_size, num_shards=num_shards, docs_per_shard=docs_per_shard
        )
    )
    data_dir, tokenizer_dir = root / "data", root / "tokenizer"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root.parent / f".{root.name}.lock")):
        if not root.exists():
            tmp = root.parent / f".{root.name}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            if progress:
                print(f"building the synthetic dataset (seed {seed}, vocab {vocab_size}) in {root}", file=sys.stderr)
            write_synthetic_corpus(tmp / "data", seed=seed, num_shards=num_shards, docs_per_shard=docs_per_shard)
            tokenizer = train_tokenizer_on_shards(tmp / "data", vocab_size=vocab_size, progress=progress)
            tokenizer.save(tmp / "tokenizer")
            os.replace(tmp, root)
    if not (data_dir / "manifest.json").is_file() or not (tokenizer_dir / "tokenizer.json").is_file():
        raise FileNotFoundError(f"{root} exists but is not a complete synthetic dataset; remove it and retry")
    return Dataset(data_dir=data_dir, tokenizer_dir=tokenizer_dir, manifest=read_manifest(data_dir))
