"""`speedrun data synth|tokenizer|verify` end to end, in process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from speedrun.cli import main
from trainer.data.manifest import read_manifest
from trainer.data.tokenizer import Tokenizer


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any], str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else {}), err


def test_synth_then_tokenizer_then_verify(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, tok = tmp_path / "data", tmp_path / "tok"
    code, body, _ = _run(capsys, "data", "synth", "--out", str(data), "--docs-per-shard", "400", "--seed", "2")
    assert code == 0
    assert body["val_shard"] == "shard_00002.parquet"
    assert body["manifest_sha256"] == read_manifest(data).sha256
    code, body, _ = _run(
        capsys, "data", "tokenizer", "--data", str(data), "--out", str(tok), "--vocab-size", "400", "--quiet"
    )
    assert code == 0
    assert body["vocab_size"] == 400
    assert Tokenizer.load(tok).sha256 == body["sha256"]
    code, body, _ = _run(capsys, "data", "verify", "--dir", str(data))
    assert code == 0 and body["rows"]["shard_00000.parquet"] == 400


def test_synth_is_deterministic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    digests = []
    for name in ("a", "b"):
        code, body, _ = _run(capsys, "data", "synth", "--out", str(tmp_path / name), "--docs-per-shard", "100")
        assert code == 0
        digests.append(body["manifest_sha256"])
    assert digests[0] == digests[1]


def test_verify_names_a_damaged_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    assert _run(capsys, "data", "synth", "--out", str(data), "--docs-per-shard", "100")[0] == 0
    shard = data / "shard_00001.parquet"
    body = bytearray(shard.read_bytes())
    body[len(body) // 2] ^= 0xFF
    shard.write_bytes(bytes(body))
    code, _, err = _run(capsys, "data", "verify", "--dir", str(data))
    assert code == 1 and "shard_00001.parquet" in err


def test_tokenizer_without_data_explains(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "data", "tokenizer", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "t"))
    assert code == 1 and "manifest.json" in err and "speedrun data synth" in err


def test_too_few_shards_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "data", "synth", "--out", str(tmp_path), "--shards", "1")
    assert code == 1 and "num_shards" in err
