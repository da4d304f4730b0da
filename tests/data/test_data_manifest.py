"""The data manifest: round trip, stable digest, clear errors for missing/corrupt/mismatched files."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.data.manifest import Manifest, ManifestError, read_manifest, write_manifest


def _shards(tmp_path: Path) -> Path:
    for i, body in enumerate([b"alpha", b"beta", b"gamma"]):
        (tmp_path / f"shard_{i:05d}.parquet").write_bytes(body)
    return tmp_path


def test_round_trip_keeps_digest(tmp_path: Path) -> None:
    names = [f"shard_{i:05d}.parquet" for i in range(3)]
    written = write_manifest(_shards(tmp_path), names, val_shard=names[-1])
    read = read_manifest(tmp_path)
    assert read == written
    assert read.sha256 == written.sha256 and len(read.sha256) == 64
    assert read.train_shards == names[:2]


def test_digest_changes_with_content(tmp_path: Path) -> None:
    names = [f"shard_{i:05d}.parquet" for i in range(3)]
    before = write_manifest(_shards(tmp_path), names, val_shard=names[-1]).sha256
    (tmp_path / names[0]).write_bytes(b"ALPHA")
    assert write_manifest(tmp_path, names, val_shard=names[-1]).sha256 != before


def test_missing_manifest_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="speedrun data"):
        read_manifest(tmp_path)


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_validation_shard_must_be_listed() -> None:
    with pytest.raises(ManifestError, match="validation shard"):
        Manifest(shards={"a.parquet": "0" * 64}, val_shard="b.parquet")


def test_check_files_names_the_truncated_shard(tmp_path: Path) -> None:
    names = [f"shard_{i:05d}.parquet" for i in range(3)]
    manifest = write_manifest(_shards(tmp_path), names, val_shard=names[-1])
    manifest.check_files(tmp_path, hash_files=True)
    (tmp_path / names[1]).write_bytes(b"be")
    with pytest.raises(ManifestError, match=r"shard_00001\.parquet"):
        manifest.check_files(tmp_path)


def test_hash_check_names_a_same_size_replacement(tmp_path: Path) -> None:
    names = [f"shard_{i:05d}.parquet" for i in range(3)]
    manifest = write_manifest(_shards(tmp_path), names, val_shard=names[-1])
    (tmp_path / names[2]).write_bytes(b"GAMMA")
    manifest.check_files(tmp_path)  # same size: only the hash can tell
    with pytest.raises(ManifestError, match=r"shard_00002\.parquet"):
        manifest.check_files(tmp_path, hash_files=True)
