"""Where downloaded shards, synthetic corpora and tokenizers live by default."""

from __future__ import annotations

from pathlib import Path

from contract import speedrun_home

CLIMBMIX_BASE_URL = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main"
CLIMBMIX_NUM_SHARDS = 6543
CLIMBMIX_VAL_SHARD_INDEX = CLIMBMIX_NUM_SHARDS - 1  # shard_06542 is the validation shard


def default_cache_dir() -> Path:
    """``$SPEEDRUN_HOME`` if set, else ``~/.cache/speedrun`` (read at call time, never at import)."""
    return speedrun_home() or Path.home() / ".cache" / "speedrun"


def shard_name(index: int) -> str:
    """The file name of shard ``index`` in the ClimbMix layout: ``shard_00042.parquet``."""
    if index < 0:
        raise ValueError(f"shard index must be >= 0, got {index}")
    return f"shard_{index:05d}.parquet"
