"""The training loader: BOS-aligned best-fit crop packing over parquet shards, resumable exactly.

The document stream of one rank, ``order="record"`` (the default, the record's): rank ``r`` of
``W`` reads row groups ``r, r + W, r + 2W, ...`` of each shard, shard after shard in file order,
every epoch the same (the seed plays no part). ``order="seeded"``: the row groups of all shards
permuted per epoch from ``(seed, epoch)``, rank ``r`` taking positions ``r, r + W, ...`` (the
validation split always keeps file order). Either way ranks read disjoint row groups and together
cover every one. A background thread reads row groups and tokenizes them (tiktoken, several
threads) into a bounded queue; the consumer packs.

Packing (the record's rule, bit for bit): each document is ``[BOS] + tokens``. Before every pick
the buffer is topped up, ``refill_docs`` (128) documents of a row group at a time, until it holds
at least ``buffer_docs`` (1000), so it holds 1000-1127. A row of ``seq_len + 1`` tokens is filled
by repeatedly taking the *longest document that fits* the remaining space, the oldest among equal
lengths (a bisect over the sorted lengths, not a scan); when none fits, the *shortest* document
(again the oldest among equals) is cropped to fill the row and its rest is dropped. Every row
starts at a document start; there is no padding. inputs = row[:-1], targets = row[1:].

State: the stream cursor (epoch, row-group position, document offset), the buffered documents as
references (shard, row group, document index) in buffer order, and the counters. A resumed loader
re-reads and re-tokenizes the referenced documents, so it yields exactly the batches an
uninterrupted loader would. The state is a plain JSON-able dict (torch.save works too).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from trainer.data.manifest import read_manifest
from trainer.data.tokenizer import Tokenizer

if TYPE_CHECKING:
    import torch

STATE_VERSION = 2  # 2: record refill (whole 128-document chunks) and ties (oldest first)
REFILL_DOCS = 128  # the record tokenizes this many documents of a row group per refill
ORDERS = ("record", "seeded")
DocRef = tuple[int, int, int]  # (shard index in the split, row group, document index in the row group)


class BestFitBuffer:
    """Documents sorted by length: insert, take the longest that fits, take the shortest (all O(log n) search)."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.docs: list[np.ndarray] = []
        self.refs: list[DocRef] = []

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, doc: np.ndarray, ref: DocRef) -> None:
        i = bisect.bisect_right(self.lengths, len(doc))
        self.lengths.insert(i, len(doc))
        self.docs.insert(i, doc)
        self.refs.insert(i, ref)

    def pop(self, i: int) -> tuple[np.ndarray, DocRef]:
        self.lengths.pop(i)
        return self.docs.pop(i), self.refs.pop(i)

    def longest_fitting_index(self, space: int) -> int | None:
        """Index of the longest document with length <= ``space`` (the oldest among equal lengths), or None.

        Equal lengths sit in insertion order (``add`` inserts after its equals), so the oldest is the first.
        """
        i = bisect.bisect_right(self.lengths, space) - 1
        return bisect.bisect_left(self.lengths, self.lengths[i]) if i >= 0 else None


def fill_row(buffer: BestFitBuffer, row: np.ndarray, refill: Callable[[], None]) -> tuple[int, int]:
    """Fill ``row`` in place by best-fit crop; returns (document tokens taken, tokens cropped away)."""
    row_len = len(row)
    pos = taken = cropped = 0
    while pos < row_len:
        refill()
        space = row_len - pos
        i = buffer.longest_fitting_index(space)
        if i is not None:
            doc, _ = buffer.pop(i)
            row[pos : pos + len(doc)] = doc
            pos += len(doc)
            taken += len(doc)
        else:  # nothing fits: crop the shortest document to fill the row
            doc, _ = buffer.pop(0)
            row[pos:] = doc[:space]
            pos = row_len
            taken += len(doc)
            cropped += len(doc) - space
    return taken, cropped


@dataclass
class _RowGroupDocs:
    epoch: int
    pos: int
    first_doc: int  # index in the row group of docs[0]
    shard: int
    row_group: int
    docs: list[np.ndarray]


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class DataLoader:
    """An endless iterator of ``(inputs, targets)`` int64 tensors ``[batch_size, seq_len]``."""

    def __init__(
        self,
        data_dir: Path | str,
        tokenizer: Tokenizer,
        *,
        batch_size: int,
        seq_len: int,
        rank: int = 0,
        world_size: int = 1,
        device: str | torch.device = "cpu",
        buffer_docs: int = 1000,
        seed: int = 0,
        order: str = "record",
        refill_docs: int = REFILL_DOCS,
        split: Literal["train", "val"] = "train",
        tokenizer_threads: int | None = None,
        prefetch_row_groups: int = 4,
    ) -> None:
        import pyarrow.parquet as pq

        for name, value, low in (
            ("batch_size", batch_size, 1),
            ("seq_len", seq_len, 1),
            ("world_size", world_size, 1),
            ("buffer_docs", buffer_docs, 1),
            ("prefetch_row_groups", prefetch_row_groups, 1),
            ("refill_docs", refill_docs, 1),
            ("seed", seed, 0),
        ):
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, got {order!r}")
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if tokenizer_threads is not None and tokenizer_threads < 1:
            raise ValueError(f"tokenizer_threads must be >= 1, got {tokenizer_threads}")
        self.data_dir = Path(data_dir)
        self.tokenizer = tokenizer
        self.batch_size, self.seq_len = batch_size, seq_len
        self.rank, self.world_size = rank, world_size
        self.device = device
        self.buffer_docs, self.seed, self.split = buffer_docs, seed, split
        self.order, self.refill_docs = order, refill_docs
        self.tokenizer_threads = tokenizer_threads or min(4, os.cpu_count() or 1)
        self.prefetch_row_groups = prefetch_row_groups

        manifest = read_manifest(self.data_dir)
        self.shards = manifest.train_shards if split == "train" else [manifest.val_shard]
        manifest.check_files(self.data_dir, names=self.shards)  # a training loader never opens the val shard
        if not self.shards:
            raise ValueError(f"{self.data_dir}: the manifest has no {split} shards")
        self._row_groups: list[tuple[int, int]] = []  # (shard index, row group) in file order
        most = 0
        for s, name in enumerate(self.shards):
            meta = pq.ParquetFile(self.data_dir / name).metadata
            if "text" not in meta.schema.names:
                raise ValueError(f"shard {name} has no 'text' column (columns: {', '.join(meta.schema.names)})")
            self._row_groups += [(s, g) for g in range(meta.num_row_groups)]
            most = max(most, meta.num_row_groups)
        # every rank needs a row group: the record's order strides within each shard
        groups = most if order == "record" else len(self._row_groups)
        if groups < world_size:
            raise ValueError(
                f"the {split} split has {groups} row groups {'in its largest shard' if order == 'record' else ''}"
                f", fewer than world_size={world_size}"
            )

        # consumer state
        self._epoch, self._pos, self._doc_offset = 0, 0, 0
        self._buffer = BestFitBuffer()
        self.batches = 0
        self.tokens_taken = 0
        self.tokens_cropped = 0
        # producer
        self._item: _RowGroupDocs | None = None
        self._item_index = 0
        self._queue: queue.Queue[_RowGroupDocs | _Failure] | None = None
        self._stop: threading.Event | None = None
        self._thread: threading.Thread | None = None

    # -- the stream --------------------------------------------------------------------------------

    def _rank_order(self, epoch: int) -> list[tuple[int, int]]:
        """The (shard, row group) this rank reads in ``epoch``, in reading order."""
        if self.order == "record" or self.split == "val":
            return [(s, g) for s, g in self._row_groups if g % self.world_size == self.rank]
        order = list(self._row_groups)
        random.Random(f"speedrun-loader-{self.seed}-{epoch}").shuffle(order)
        return order[self.rank :: self.world_size]

    def _read_texts(self, shard: int, row_group: int) -> list[str]:
        import pyarrow.parquet as pq

        name = self.shards[shard]
        try:
            table = pq.ParquetFile(self.data_dir / name, page_checksum_verification=True).read_row_group(
                row_group, columns=["text"]
            )
        except Exception as e:  # pyarrow raises several types for a damaged file
            raise ValueError(f"cannot read row group {row_group} of shard {name}: {e}") from e
        return [t if t is not None else "" for t in table.column("text").to_pylist()]

    def _tokenize(self, texts: list[str]) -> list[np.ndarray]:
        batch = self.tokenizer.encode_batch(texts, prepend_bos=True, num_threads=self.tokenizer_threads)
        return [np.array(ids, dtype=np.int32) for ids in batch]

    def _produce(self, epoch: int, pos: int, doc_offset: int, out: queue.Queue[Any], stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                order = self._rank_order(epoch)
                while pos < len(order) and not stop.is_set():
                    shard, row_group = order[pos]
                    texts = self._read_texts(shard, row_group)[doc_offset:]
                    item = _RowGroupDocs(epoch, pos, doc_offset, shard, row_group, self._tokenize(texts))
                    while not stop.is_set():
                        try:
                            out.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    pos, doc_offset = pos + 1, 0
                epoch, pos = epoch + 1, 0
        except BaseException as e:  # handed to the consumer, which raises it
            out.put(_Failure(e))

    def _start(self) -> None:
        self._stop = threading.Event()
        self._queue = queue.Queue(maxsize=self.prefetch_row_groups)
        self._thread = threading.Thread(
            target=self._produce,
            args=(self._epoch, self._pos, self._doc_offset, self._queue, self._stop),
            name=f"speedrun-loader-rank{self.rank}",
            daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the background thread (the loader can be iterated again afterwards)."""
        if self._thread is not None and self._stop is not None and self._queue is not None:
            self._stop.set()
            while self._thread.is_alive():
                with contextlib.suppress(queue.Empty):
                    self._queue.get(timeout=0.05)
            self._thread.join()
        self._thread = self._queue = self._stop = None
        self._item, self._item_index = None, 0

    def __enter__(self) -> DataLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _current_item(self) -> _RowGroupDocs:
        while self._item is None or self._item_index >= len(self._item.docs):
            if self._queue is None:
                self._start()
            assert self._queue is not None
            got = self._queue.get()
            if isinstance(got, _Failure):
                self.close()
                raise got.error
            self._item, self._item_index = got, 0
        return self._item

    def _next_doc(self) -> tuple[np.ndarray, DocRef]:
        item = self._current_item()
        doc = item.docs[self._item_index]
        index_in_group = item.first_doc + self._item_index
        self._item_index += 1
        self._epoch, self._pos, self._doc_offset = item.epoch, item.pos, index_in_group + 1
        return doc, (item.shard, item.row_group, index_in_group)

    def documents(self) -> Iterator[tuple[DocRef, np.ndarray]]:
        """The raw document stream of this rank (``[BOS] + tokens`` each), bypassing the buffer."""
        while True:
            doc, ref = self._next_doc()
            yield ref, doc

    def _refill(self) -> None:
        """Top the buffer up to >= buffer_docs in whole chunks: a row group's documents [0, k), [k, 2k), ..."""
        while len(self._buffer) < self.buffer_docs:
            item = self._current_item()
            index_in_group = item.first_doc + self._item_index
            chunk_end = (index_in_group // self.refill_docs + 1) * self.refill_docs  # in the row group
            for _ in range(min(chunk_end, item.first_doc + len(item.docs)) - index_in_group):
                doc, ref = self._next_doc()
                self._buffer.add(doc, ref)

    # -- batches -----------------------------------------------------------------------------------

    def next_rows(self) -> np.ndarray:
        """The next ``[batch_size, seq_len + 1]`` int32 rows."""
        rows = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int32)
        for b in range(self.batch_size):
            taken, cropped = fill_row(self._buffer, rows[b], self._refill)
            self.tokens_taken += taken
            self.tokens_cropped += cropped
        self.batches += 1
        return rows

    def __iter__(self) -> DataLoader:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        rows = torch.from_numpy(self.next_rows())
        device = torch.device(self.device)
        if device.type == "cuda":
            pinned = torch.empty(rows.shape, dtype=torch.int64, pin_memory=True)
            pinned.copy_(rows)
            on_device = pinned.to(device, non_blocking=True)
            return on_device[:, :-1].contiguous(), on_device[:, 1:].contiguous()
        rows64 = rows.to(torch.int64)
        return rows64[:, :-1].contiguous().to(device), rows64[:, 1:].contiguous().to(device)

    @property
    def cropped_fraction(self) -> float:
        """Fraction of the documents' tokens taken so far that were cropped away."""
        return self.tokens_cropped / self.tokens_taken if self.tokens_taken else 0.0

    # -- state -------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "split": self.split,
            "shards": list(self.shards),
            "seed": self.seed,
            "order": self.order,
            "refill_docs": self.refill_docs,
            "rank": self.rank,
            "world_size": self.world_size,
            "epoch": self._epoch,
            "row_group_pos": self._pos,
            "doc_offset": self._doc_offset,
            "buffer_refs": [list(ref) for ref in self._buffer.refs],
            "batches": self.batches,
            "tokens_taken": self.tokens_taken,
            "tokens_cropped": self.tokens_cropped,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')!r} is not {STATE_VERSION}")
        for key in ("split", "shards", "seed", "order", "refill_docs", "rank", "world_size"):
            mine = getattr(self, key)
            if state[key] != mine:
                raise ValueError(f"loader state has {key}={state[key]!r} but this loader has {key}={mine!r}")
        refs = [(int(s), int(g), int(d)) for s, g, d in state["buffer_refs"]]
        self.close()
        self._buffer = self._rebuild_buffer(refs)
        self._epoch, self._pos, self._doc_offset = (
            int(state["epoch"]),
            int(state["row_group_pos"]),
            int(state["doc_offset"]),
        )
        self.batches = int(state["batches"])
        self.tokens_taken = int(state["tokens_taken"])
        self.tokens_cropped = int(state["tokens_cropped"])

    def _rebuild_buffer(self, refs: list[DocRef]) -> BestFitBuffer:
        wanted: dict[tuple[int, int], list[int]] = {}
        for shard, row_group, doc in refs:
            if not 0 <= shard < len(self.shards):
                raise ValueError(f"loader state references shard index {shard} outside the split")
            wanted.setdefault((shard, row_group), []).append(doc)
        docs: dict[DocRef, np.ndarray] = {}
        for (shard, row_group), indices in wanted.items():
            texts = self._read_texts(shard, row_group)
            for index, tokens in zip(indices, self._tokenize([texts[i] for i in indices]), strict=True):
                docs[(shard, row_group, index)] = tokens
        buffer = BestFitBuffer()
        for ref in refs:  # already in buffer order: append without re-sorting, then check the order
            buffer.lengths.append(len(docs[ref]))
            buffer.docs.append(docs[ref])
            buffer.refs.append(ref)
        if buffer.lengths != sorted(buffer.lengths):
            raise ValueError("loader state does not match the data: buffered documents are not in length order")
        return buffer


def val_batches(
    data_dir: Path | str,
    tokenizer: Tokenizer,
    *,
    batch_size: int,
    seq_len: int,
    num_tokens: int,
    rank: int = 0,
    world_size: int = 1,
    device: str | torch.device = "cpu",
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """A fixed slice of the validation shard: ``num_tokens // (batch_size * seq_len * world_size)`` batches
    per rank, packed like training batches, identical on every call."""
    steps = num_tokens // (batch_size * seq_len * world_size)
    if steps < 1:
        raise ValueError(
            f"num_tokens={num_tokens} is less than one batch on every rank "
            f"(batch_size * seq_len * world_size = {batch_size * seq_len * world_size})"
        )
    loader = DataLoader(
        data_dir,
        tokenizer,
        batch_size=batch_size,
        seq_len=seq_len,
        rank=rank,
        world_size=world_size,
        device=device,
        split="val",
    )
    try:
        for _ in range(steps):
            yield next(loader)
    finally:
        loader.close()
