"""Shared tiny real objects for the data tests: a small synthetic corpus and a BPE trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.data.prepare import train_tokenizer_on_shards
from trainer.data.synth import write_synthetic_corpus
from trainer.data.tokenizer import Tokenizer

SMALL_VOCAB = 512


@pytest.fixture(scope="session")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 shards x 2100 docs (3 row groups each: 1024, 1024, 52); the last shard is validation."""
    out = tmp_path_factory.mktemp("synthetic") / "data"
    write_synthetic_corpus(out, seed=0, num_shards=3, docs_per_shard=2100)
    return out


@pytest.fixture(scope="session")
def small_tokenizer(small_data: Path) -> Tokenizer:
    return train_tokenizer_on_shards(small_data, vocab_size=SMALL_VOCAB, progress=False)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 shards x 300 docs (one row group each): an epoch of training data is ~20 batches of 8 x 1024."""
    out = tmp_path_factory.mktemp("synthetic-tiny") / "data"
    write_synthetic_corpus(out, seed=1, num_shards=3, docs_per_shard=300)
    return out
