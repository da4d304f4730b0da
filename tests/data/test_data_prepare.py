"""ensure_synthetic_dataset: built once, atomically, deterministically, where the cache says."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from trainer.data.loader import DataLoader
from trainer.data.paths import default_cache_dir
from trainer.data.prepare import Dataset, ensure_synthetic_dataset


def test_default_cache_dir_follows_speedrun_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEEDRUN_HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home"
    monkeypatch.delenv("SPEEDRUN_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "speedrun"


def test_default_dataset_is_built_once_under_the_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEEDRUN_HOME", str(tmp_path))
    results: list[Dataset] = []
    threads = [threading.Thread(target=lambda: results.append(ensure_synthetic_dataset())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    first, second = results
    assert first == second
    assert first.data_dir == tmp_path / "synthetic-0-v2048" / "data"
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["synthetic-0-v2048"]
    tokenizer = first.load_tokenizer()
    assert tokenizer.vocab_size == 2048
    mtime = (first.tokenizer_dir / "tokenizer.json").stat().st_mtime_ns
    assert ensure_synthetic_dataset() == first  # cached: nothing rebuilt
    assert (first.tokenizer_dir / "tokenizer.json").stat().st_mtime_ns == mtime
    with DataLoader(first.data_dir, tokenizer, batch_size=2, seq_len=128) as loader:
        inputs, targets = next(loader)
    assert int(inputs.max()) < 2048 and int(targets.min()) >= 0


def test_same_seed_same_bytes_in_two_places(tmp_path: Path) -> None:
    kw = {"seed": 4, "vocab_size": 500, "docs_per_shard": 400}
    a = ensure_synthetic_dataset(tmp_path / "a", **kw)  # type: ignore[arg-type]
    b = ensure_synthetic_dataset(tmp_path / "b", **kw)  # type: ignore[arg-type]
    assert a.manifest.sha256 == b.manifest.sha256
    assert a.manifest.shards == b.manifest.shards
    assert (a.tokenizer_dir / "tokenizer.json").read_bytes() == (b.tokenizer_dir / "tokenizer.json").read_bytes()
    assert a.load_tokenizer().sha256 == b.load_tokenizer().sha256
    c = ensure_synthetic_dataset(tmp_path / "c", **{**kw, "seed": 5})  # type: ignore[arg-type]
    assert c.manifest.sha256 != a.manifest.sha256


def test_an_incomplete_directory_is_not_used(tmp_path: Path) -> None:
    (tmp_path / "broken" / "data").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="not a complete synthetic dataset"):
        ensure_synthetic_dataset(tmp_path / "broken")
