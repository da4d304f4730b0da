"""Where downloaded shards, synthetic corpora and tokenizers live by default."""

from __future__ import annotations

import os
from pathlib import Path

CLIMBMIX_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_NUM_SHARDS = 6543
CLIMBMIX_VAL_SHARD_INDEX = CLIMBMIX_NUM_SHARDS - 1  # shard_06542 is the validation shard


def default_cache_dir() -> Path:
    """``$SPEEDRUN_HOME`` if set, else ``~/.cache/speedrun`` (read at call time, never at import)."""
    env = os.environ.get("SPEEDRUN_HOME")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "speedrun"


def shard_name(index: int) -> str:
    """The file name of shard ``index`` in the ClimbMix layout: ``shard_00042.parquet``."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard_{index:05d}.parquet"
