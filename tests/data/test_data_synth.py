"""The synthetic corpus: deterministic bytes, the ClimbMix layout, and learnable, consistent content."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trainer.data.manifest import read_manifest
from trainer.data.synth import Fact, SyntheticWorld, write_synthetic_corpus


def _digests(paths: list[Path]) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_same_seed_gives_identical_parquet_bytes(tmp_path: Path) -> None:
    a = write_synthetic_corpus(tmp_path / "a", seed=3, num_shards=2, docs_per_shard=300)
    b = write_synthetic_corpus(tmp_path / "b", seed=3, num_shards=2, docs_per_shard=300)
    assert _digests(a) == _digests(b)
    assert read_manifest(tmp_path / "a").sha256 == read_manifest(tmp_path / "b").sha256


def test_different_seeds_give_different_corpora(tmp_path: Path) -> None:
    a = write_synthetic_corpus(tmp_path / "a", seed=0, num_shards=2, docs_per_shard=50)
    b = write_synthetic_corpus(tmp_path / "b", seed=1, num_shards=2, docs_per_shard=50)
    assert set(_digests(a)).isdisjoint(_digests(b))


def test_layout_is_climbmix(small_data: Path) -> None:
    manifest = read_manifest(small_data)
    assert sorted(manifest.shards) == [f"shard_{i:05d}.parquet" for i in range(3)]
    assert manifest.val_shard == "shard_00002.parquet"
    assert manifest.train_shards == ["shard_00000.parquet", "shard_00001.parquet"]
    pf = pq.ParquetFile(small_data / "shard_00000.parquet")
    assert pf.schema_arrow.names == ["text"]
    assert [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)] == [1024, 1024, 52]
    for name, digest in manifest.shards.items():
        assert hashlib.sha256((small_data / name).read_bytes()).hexdigest() == digest


def test_too_few_shards_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_shards"):
        write_synthetic_corpus(tmp_path, num_shards=1)


def test_fact_text_is_how_documents_state_facts() -> None:
    world = SyntheticWorld(0)
    text = "\n".join(world.documents(400, seed=0))
    stated = sum(f"{prefix} {obj}." in text for prefix, obj in map(world.fact_text, world.facts))
    assert stated >= 0.9 * len(world.facts)  # nearly every fact occurs verbatim in 400 docs
    # and no document contradicts a fact in its canonical form
    for fact in world.facts:
        prefix, obj = world.fact_text(fact)
        for match in re.finditer(re.escape(prefix) + r" (\w+)\.", text):
            assert match.group(1) == obj, (prefix, match.group(1), obj)


def test_world_api_is_consistent() -> None:
    world = SyntheticWorld(5)
    assert world.facts and all(isinstance(f, Fact) for f in world.facts)
    assert len({(f.subject, f.relation) for f in world.facts}) == len(world.facts)  # one object per question
    for fact in world.facts:
        assert fact.relation in world.relations
        assert fact.obj in world.objects_of(fact.relation)
        assert len(world.objects_of(fact.relation)) >= 4  # enough distractors for multiple choice
    assert SyntheticWorld(5).facts == world.facts
    with pytest.raises(ValueError, match="relation"):
        world.objects_of("no-such-relation")


def test_arithmetic_answers_are_correct() -> None:
    world = SyntheticWorld(0)
    rng = random.Random(0)
    ops = {"plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "times": lambda a, b: a * b}
    for _ in range(300):
        question, answer = world.arithmetic(rng)
        a, op, b, is_ = question.split()
        assert is_ == "is"
        assert ops[op](int(a), int(b)) == int(answer) >= 0


def test_sequences_continue_their_pattern() -> None:
    world = SyntheticWorld(0)
    rng = random.Random(1)
    for _ in range(300):
        question, answer = world.sequence(rng)
        items = question.split()
        assert len(items) >= 3
        if items[0].isdigit():  # counting by a constant step
            step = int(items[1]) - int(items[0])
            assert int(answer) == int(items[-1]) + step
        else:  # a repeated period: the answer repeats the item one period back
            period = next(p for p in range(1, len(items)) if all(items[i] == items[i % p] for i in range(len(items))))
            assert answer == items[(len(items)) % period]


def test_documents_vary_in_length() -> None:
    lengths = sorted(len(d) for d in SyntheticWorld(0).documents(1000, seed=7))
    assert lengths[0] < 300 and lengths[-1] > 3000
    assert len(set(lengths)) > 500
