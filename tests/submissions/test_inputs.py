"""submissions.inputs: the verifier's synthetic corpus, tokenizer and eval bundle are built once and
reused while their digests match; a tampered copy is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from submissions.inputs import DIGESTS_FILE, synthetic_inputs
from trainer.data.manifest import read_manifest
from trainer.evaluation.bundle import directory_digest


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verifier-inputs")


def test_the_first_call_builds_and_records_the_digests(root: Path) -> None:
    first = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    assert first.built == ["synthetic-0-v2048", first.bundle.name if first.bundle else None]
    assert (root / DIGESTS_FILE).is_file()
    assert first.digests["synthetic-0-v2048"] == directory_digest(first.data_dir.parent)


def test_a_second_call_reuses_the_files_untouched(root: Path) -> None:
    first = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    shard = first.data_dir / read_manifest(first.data_dir).train_shards[0]
    before = shard.stat().st_ino, shard.stat().st_mtime_ns
    again = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    assert again.built == []
    assert again.digests == first.digests
    assert (shard.stat().st_ino, shard.stat().st_mtime_ns) == before


def test_a_tampered_shard_is_rebuilt_to_the_recorded_bytes(root: Path) -> None:
    ins = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    shard = ins.data_dir / read_manifest(ins.data_dir).train_shards[0]
    original = shard.read_bytes()
    shard.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    again = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    assert again.built == ["synthetic-0-v2048"]
    assert shard.read_bytes() == original  # the same pure function of the seed
    assert again.digests == ins.digests


def test_a_tampered_bundle_file_is_rebuilt(root: Path) -> None:
    ins = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    assert ins.bundle is not None
    victim = next(p for p in sorted(ins.bundle.rglob("*")) if p.is_file() and not p.name.startswith("."))
    victim.write_text("tampered\n")
    again = synthetic_inputs(seed=0, vocab_size=2048, bundle=True, root=root)
    assert again.built == [ins.bundle.name]
    assert again.digests == ins.digests
    assert victim.read_text() != "tampered\n"


def test_a_lost_record_rebuilds_rather_than_trusts(root: Path) -> None:
    synthetic_inputs(seed=0, vocab_size=2048, bundle=False, root=root)
    (root / DIGESTS_FILE).unlink()
    again = synthetic_inputs(seed=0, vocab_size=2048, bundle=False, root=root)
    assert again.built == ["synthetic-0-v2048"] and again.bundle is None
