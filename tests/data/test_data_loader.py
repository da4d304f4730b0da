"""The loader: BOS best-fit crop packing invariants, exact resume, disjoint ranks, the validation slice."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from trainer.data.loader import BestFitBuffer, DataLoader, fill_row, val_batches
from trainer.data.prepare import read_shard_texts
from trainer.data.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def train_docs(small_data: Path, small_tokenizer: Tokenizer) -> list[tuple[int, ...]]:
    texts = [t for name in ("shard_00000.parquet", "shard_00001.parquet") for t in read_shard_texts(small_data / name)]
    return [tuple(ids) for ids in small_tokenizer.encode_batch(texts, prepend_bos=True)]


def _loader(small_data: Path, tok: Tokenizer, **kw: object) -> DataLoader:
    args: dict[str, object] = {"batch_size": 4, "seq_len": 256, "buffer_docs": 64}
    args.update(kw)
    return DataLoader(small_data, tok, **args)  # type: ignore[arg-type]


def test_batches_are_shifted_int64_rows(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with _loader(small_data, small_tokenizer) as loader:
        rows = loader.next_rows()
        inputs, targets = next(loader)
    assert rows.shape == (4, 257)
    assert inputs.shape == targets.shape == (4, 256)
    assert inputs.dtype == targets.dtype == torch.int64
    assert inputs.is_contiguous() and targets.is_contiguous()
    assert torch.equal(inputs[:, 1:], targets[:, :-1])


def test_every_row_is_documents_then_one_cropped_prefix(
    small_data: Path, small_tokenizer: Tokenizer, train_docs: list[tuple[int, ...]]
) -> None:
    """Every row starts with BOS, has no padding, and each BOS-delimited segment is a whole document,
    except the last, which may be a document cropped to fit: every token sits at its offset in its document."""
    bos = small_tokenizer.bos_id
    whole = set(train_docs)
    with _loader(small_data, small_tokenizer, batch_size=8, seq_len=512) as loader:
        rows = [loader.next_rows() for _ in range(10)]
    for row in np.concatenate(rows):
        assert row[0] == bos
        starts = [*np.flatnonzero(row == bos).tolist(), len(row)]
        segments = [tuple(row[a:b].tolist()) for a, b in itertools.pairwise(starts)]
        for segment in segments[:-1]:
            assert segment in whole
        last = segments[-1]
        assert last in whole or any(doc[: len(last)] == last and len(doc) > len(last) for doc in train_docs)


def _reference_choice(lengths: list[int], space: int) -> tuple[str, int]:
    fitting = [n for n in lengths if n <= space]
    return ("fit", max(fitting)) if fitting else ("crop", min(lengths))


def test_best_fit_choice_matches_a_full_scan() -> None:
    rng = random.Random(0)
    buffer = BestFitBuffer()
    for step in range(3000):
        if len(buffer) < 50 or rng.random() < 0.5:
            n = rng.randint(1, 300)
            buffer.add(np.zeros(n, dtype=np.int32), (0, 0, step))
            continue
        space = rng.randint(1, 300)
        kind, length = _reference_choice(list(buffer.lengths), space)
        i = buffer.longest_fitting_index(space)
        if kind == "fit":
            assert i is not None and buffer.lengths[i] == length
        else:
            assert i is None and buffer.lengths[0] == length
        buffer.pop(i if i is not None else 0)
        assert buffer.lengths == sorted(buffer.lengths)


def test_fill_row_takes_longest_fit_then_crops_shortest() -> None:
    buffer = BestFitBuffer()
    for i, n in enumerate([5, 3, 9, 4]):
        buffer.add(np.full(n, i + 1, dtype=np.int32), (0, 0, i))
    row = np.zeros(12, dtype=np.int32)
    taken, cropped = fill_row(buffer, row, lambda: None)
    # space 12 -> longest fit is 9 (doc 3); space 3 -> fits 3 (doc 2); row full
    assert row.tolist() == [3] * 9 + [2] * 3
    assert (taken, cropped) == (12, 0)
    row = np.zeros(6, dtype=np.int32)
    taken, cropped = fill_row(buffer, row, lambda: None)
    # space 6 -> 5 (doc 1); space 1 -> nothing fits: crop the shortest (4, doc 4) to 1 token
    assert row.tolist() == [1] * 5 + [4]
    assert (taken, cropped) == (9, 3)


def test_resume_is_exact_across_epochs(tiny_data: Path, small_tokenizer: Tokenizer) -> None:
    with _loader(tiny_data, small_tokenizer, seq_len=1024, batch_size=8) as loader:
        for _ in range(12):
            next(loader)
        state = json.loads(json.dumps(loader.state_dict()))  # JSON-able
        expected = [next(loader) for _ in range(40)]  # the stream passes an epoch boundary
        assert loader.state_dict()["epoch"] >= 1
    with _loader(tiny_data, small_tokenizer, seq_len=1024, batch_size=8) as resumed:
        resumed.load_state_dict(state)
        got = [next(resumed) for _ in range(40)]
    for (xa, ya), (xb, yb) in zip(expected, got, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert resumed.cropped_fraction == loader.cropped_fraction


def test_resume_in_place_rewinds(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with _loader(small_data, small_tokenizer) as loader:
        next(loader)
        state = loader.state_dict()
        first = [next(loader)[0] for _ in range(5)]
        loader.load_state_dict(state)
        again = [next(loader)[0] for _ in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_state_from_another_rank_is_refused(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with _loader(small_data, small_tokenizer, rank=0, world_size=2) as a:
        next(a)
        state = a.state_dict()
    with _loader(small_data, small_tokenizer, rank=1, world_size=2) as b, pytest.raises(ValueError, match="rank"):
        b.load_state_dict(state)


def _first_epoch_refs(loader: DataLoader) -> list[tuple[int, int, int]]:
    refs = []
    for ref, _ in loader.documents():
        if loader.state_dict()["epoch"] > 0:
            break
        refs.append(ref)
    loader.close()
    return refs


def test_two_ranks_cover_one_rank_without_overlap(small_data: Path, small_tokenizer: Tokenizer) -> None:
    single = _first_epoch_refs(_loader(small_data, small_tokenizer))
    rank0 = _first_epoch_refs(_loader(small_data, small_tokenizer, rank=0, world_size=2))
    rank1 = _first_epoch_refs(_loader(small_data, small_tokenizer, rank=1, world_size=2))
    assert len(single) == len(set(single)) == 2 * 2100
    assert set(rank0).isdisjoint(rank1)
    assert set(rank0) | set(rank1) == set(single)
    assert {(s, g) for s, g, _ in rank0}.isdisjoint({(s, g) for s, g, _ in rank1})  # whole row groups per rank


def test_seed_changes_the_order_not_the_content(small_data: Path, small_tokenizer: Tokenizer) -> None:
    a = _first_epoch_refs(_loader(small_data, small_tokenizer, seed=0, order="seeded"))
    b = _first_epoch_refs(_loader(small_data, small_tokenizer, seed=1, order="seeded"))
    assert a != b and sorted(a) == sorted(b)


def test_record_order_is_each_shards_row_groups_of_the_rank_in_file_order(
    small_data: Path, small_tokenizer: Tokenizer
) -> None:
    # 2 train shards x 3 row groups. The record: rank r reads row groups r, r+W, ... of each shard in turn.
    # (A stride over the concatenated list would give rank 0 (0,0), (0,2), (1,1) instead.)
    rank0 = _loader(small_data, small_tokenizer, rank=0, world_size=2)
    rank1 = _loader(small_data, small_tokenizer, rank=1, world_size=2)
    assert rank0._rank_order(0) == [(0, 0), (0, 2), (1, 0), (1, 2)] == rank0._rank_order(5)
    assert rank1._rank_order(0) == [(0, 1), (1, 1)]
    # the seed plays no part in the record's order
    a = _first_epoch_refs(_loader(small_data, small_tokenizer, seed=0))
    b = _first_epoch_refs(_loader(small_data, small_tokenizer, seed=7))
    assert a == b and a[:3] == [(0, 0, 0), (0, 0, 1), (0, 0, 2)]


def test_ties_take_the_oldest_document() -> None:
    buffer = BestFitBuffer()
    for i, n in enumerate([3, 5, 3, 2, 2]):  # docs 0 and 2 tie at length 3, docs 3 and 4 at length 2
        buffer.add(np.full(n, i, dtype=np.int32), (0, 0, i))
    row = np.zeros(4, dtype=np.int32)
    fill_row(buffer, row, lambda: None)
    # space 4: the longest fit is length 3, the oldest of docs 0 and 2 -> doc 0; space 1: nothing fits,
    # crop the shortest (length 2), the oldest of docs 3 and 4 -> doc 3
    assert row.tolist() == [0, 0, 0, 3]
    assert [ref[2] for ref in buffer.refs] == [4, 2, 1]


def test_refill_tops_up_in_whole_chunks_of_a_row_group(small_data: Path, small_tokenizer: Tokenizer) -> None:
    # row group 0 of shard 0 holds 1024 documents. buffer_docs=5, chunks of 4: the first top-up takes
    # docs 0-3 (4 < 5) then 4-7 -> 8 held (one at a time would stop at exactly 5)
    with _loader(small_data, small_tokenizer, buffer_docs=5, refill_docs=4) as loader:
        loader._refill()
        assert sorted(ref[2] for ref in loader._buffer.refs) == list(range(8))
        loader._buffer.pop(0)
        loader._buffer.pop(0)
        loader._buffer.pop(0)
        loader._refill()  # 5 held: nothing to do; after one more pick it takes docs 8-11
        assert len(loader._buffer) == 5
        loader._buffer.pop(0)
        loader._refill()
        assert len(loader._buffer) == 8 and max(ref[2] for ref in loader._buffer.refs) == 11
    # the record's sizes: 1000 wanted, 128 at a time -> 1024 held after the first top-up
    with _loader(small_data, small_tokenizer, buffer_docs=1000) as loader:
        loader._refill()
        assert len(loader._buffer) == 1024


def test_cropped_fraction_counts_dropped_tokens(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with _loader(small_data, small_tokenizer, seq_len=64) as loader:
        for _ in range(20):
            next(loader)
        emitted = 20 * 4 * 65
        assert loader.tokens_taken - loader.tokens_cropped == emitted
        assert 0.0 < loader.cropped_fraction < 1.0


def test_val_batches_are_identical_every_call(small_data: Path, small_tokenizer: Tokenizer) -> None:
    kw = {"batch_size": 2, "seq_len": 128, "num_tokens": 2 * 128 * 5}
    first = list(val_batches(small_data, small_tokenizer, **kw))  # type: ignore[arg-type]
    second = list(val_batches(small_data, small_tokenizer, **kw))  # type: ignore[arg-type]
    assert len(first) == 5
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second, strict=True))
    row = first[0][0][0].tolist()
    segment = row[1 : row.index(small_tokenizer.bos_id, 1)] if small_tokenizer.bos_id in row[1:] else row[1:]
    text = small_tokenizer.decode(segment)
    assert any(doc.startswith(text) for doc in read_shard_texts(small_data / "shard_00002.parquet"))
    assert not any(doc.startswith(text) for doc in read_shard_texts(small_data / "shard_00000.parquet"))


def test_val_batches_need_at_least_one_batch(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="num_tokens"):
        next(val_batches(small_data, small_tokenizer, batch_size=2, seq_len=128, num_tokens=100))


@pytest.mark.parametrize(
    ("kw", "field"),
    [({"batch_size": 0}, "batch_size"), ({"seq_len": 0}, "seq_len"), ({"rank": 2, "world_size": 2}, "rank")],
)
def test_bad_arguments_name_the_field(
    small_data: Path, small_tokenizer: Tokenizer, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        _loader(small_data, small_tokenizer, **kw)


def test_more_ranks_than_row_groups_is_refused(small_data: Path, small_tokenizer: Tokenizer) -> None:
    with pytest.raises(ValueError, match="world_size"):
        _loader(small_data, small_tokenizer, split="val", rank=0, world_size=4)


def test_a_corrupted_shard_is_named(small_data: Path, small_tokenizer: Tokenizer, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(small_data, data)
    shard = data / "shard_00000.parquet"
    body = bytearray(shard.read_bytes())
    for i in range(1000, len(body) - 2000, 997):
        body[i] ^= 0x5A
    shard.write_bytes(bytes(body))  # same size: the manifest's size check passes, reading fails
    with _loader(data, small_tokenizer, seed=0) as loader, pytest.raises(ValueError, match="shard_00000"):
        for _ in range(200):
            next(loader)


@pytest.mark.gpu
def test_cuda_batches_equal_cpu_batches(small_data: Path, small_tokenizer: Tokenizer) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (pinned-memory, non-blocking copy path)")
    with _loader(small_data, small_tokenizer) as cpu, _loader(small_data, small_tokenizer, device="cuda") as gpu:
        for _ in range(5):
            (xc, yc), (xg, yg) = next(cpu), next(gpu)
            assert xg.device.type == "cuda" and xg.dtype == torch.int64
            assert torch.equal(xg.cpu(), xc) and torch.equal(yg.cpu(), yc)


def _record_loader_rows(
    data_dir: Path, tok: Tokenizer, *, batch: int, seq_len: int, rank: int, world: int, n: int, buffer_size: int
) -> list[np.ndarray]:
    """The record's loader restated from its code (nanochat a825e63): a list buffer topped up before every
    pick with 128-document chunks of the rank's row groups (r, r+W, ... of each shard in file order), a
    linear scan for the longest fitting document (strict '>': the oldest among equals), else the first
    shortest document cropped."""
    import pyarrow.parquet as pq

    from trainer.data.manifest import read_manifest

    def chunks() -> Any:
        while True:
            for name in read_manifest(data_dir).train_shards:
                pf = pq.ParquetFile(data_dir / name)
                for rg in range(rank, pf.num_row_groups, world):
                    texts = pf.read_row_group(rg).column("text").to_pylist()
                    for i in range(0, len(texts), 128):
                        yield texts[i : i + 128]

    stream, buf, out = chunks(), [], []
    for _ in range(n):
        rows = []
        for _ in range(batch):
            row: list[int] = []
            while len(row) < seq_len + 1:
                while len(buf) < buffer_size:
                    buf.extend(tok.encode_batch(next(stream), prepend_bos=True))
                remaining = seq_len + 1 - len(row)
                best, best_len = -1, 0
                for i, doc in enumerate(buf):
                    if best_len < len(doc) <= remaining:
                        best, best_len = i, len(doc)
                if best >= 0:
                    row.extend(buf.pop(best))
                else:
                    shortest = min(range(len(buf)), key=lambda i: len(buf[i]))
                    row.extend(buf.pop(shortest)[:remaining])
            rows.append(row)
        out.append(np.array(rows, dtype=np.int32))
    return out


@pytest.mark.parametrize(("rank", "world"), [(0, 1), (1, 2)])
def test_batches_are_the_records_bit_for_bit(
    small_data: Path, small_tokenizer: Tokenizer, rank: int, world: int
) -> None:
    # 40 batches of 8 x 1025 tokens: ~2200 documents, across row groups and (rank 0 of 1) the shard boundary
    kw = {"batch": 8, "seq_len": 1024, "rank": rank, "world": world, "n": 40, "buffer_size": 200}
    expected = _record_loader_rows(small_data, small_tokenizer, **kw)  # type: ignore[arg-type]
    with _loader(
        small_data, small_tokenizer, batch_size=8, seq_len=1024, rank=rank, world_size=world, buffer_docs=200
    ) as loader:
        got = [loader.next_rows() for _ in range(40)]
        assert loader.state_dict()["row_group_pos"] >= 1  # the stream went past the first row group
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(a, b)
