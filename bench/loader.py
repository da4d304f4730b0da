"""Loader throughput: tokenize + best-fit pack + batch, one process, synthetic corpus, 32768 vocab, T=2048.

Prints one JSON object: tokens/s of the full DataLoader, the per-rank rate one H100 consumes in the
public record (~0.98M tokens/s per 8-GPU node -> ~123k tokens/s per rank), their ratio (target >= 8),
and the fraction of document tokens cropped away by the packing. The wall-clock rate depends on
what else the host runs, so the loader's own CPU time (all its threads) and the host load average
are printed too. Also the packing alone (documents
already tokenized) with the bisect search against a full-scan reference, in the same run.

    python bench/loader.py [--seconds 20] [--batch-size 16] [--seq-len 2048] [--vocab-size 32768]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

REFERENCE_NODE_TOKENS_PER_S = 980_000  # the public GPT-2 speedrun record, one 8xH100 node
REFERENCE_RANK_TOKENS_PER_S = REFERENCE_NODE_TOKENS_PER_S / 8


def _pack_rate(docs: list[np.ndarray], seq_len: int, rows: int, *, scan: bool) -> float:
    """Rows/s of best-fit packing over pre-tokenized docs: the bisect buffer, or a full-scan reference."""
    from trainer.data.loader import BestFitBuffer, fill_row

    class ScanBuffer(BestFitBuffer):
        def longest_fitting_index(self, space: int) -> int | None:
            best = None
            for i, n in enumerate(self.lengths):
                if n <= space and (best is None or n >= self.lengths[best]):
                    best = i
            return best

    buffer = ScanBuffer() if scan else BestFitBuffer()
    stream = iter(docs * 100)

    def refill() -> None:
        while len(buffer) < 1000:
            buffer.add(next(stream), (0, 0, 0))

    row = np.empty(seq_len + 1, dtype=np.int32)
    start = time.perf_counter()
    for _ in range(rows):
        fill_row(buffer, row, refill)
    return rows / (time.perf_counter() - start)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=20.0, help="measured time after a warm-up")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--vocab-size", type=int, default=32768)
    p.add_argument("--threads", type=int, default=None, help="tokenizer threads (default: min(4, CPUs))")
    p.add_argument("--shards", type=int, default=17, help="synthetic shards (the last is validation)")
    args = p.parse_args()

    import torch

    from trainer.data.loader import DataLoader
    from trainer.data.prepare import ensure_synthetic_dataset

    torch.set_num_threads(1)
    print("building/loading the synthetic dataset ...", file=sys.stderr)
    dataset = ensure_synthetic_dataset(seed=0, vocab_size=args.vocab_size, num_shards=args.shards, progress=True)
    tokenizer = dataset.load_tokenizer()

    loader = DataLoader(
        dataset.data_dir,
        tokenizer,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        tokenizer_threads=args.threads,
    )
    for _ in range(3):  # warm-up: thread start, first row groups
        next(loader)
    taken0, cropped0 = loader.tokens_taken, loader.tokens_cropped
    tokens = 0
    load_before = os.getloadavg()[0]
    cpu_start = time.process_time()  # all threads of this process: the loader's CPU cost, whatever the host load
    start = time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        inputs, _ = next(loader)
        tokens += inputs.numel()
    elapsed = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    load_after = os.getloadavg()[0]
    loader.close()
    rate = tokens / elapsed
    cropped = (loader.tokens_cropped - cropped0) / max(1, loader.tokens_taken - taken0)

    # packing alone: bisect vs full scan, same documents
    from trainer.data.prepare import read_shard_texts

    texts = read_shard_texts(dataset.data_dir / dataset.manifest.train_shards[0])[:4096]
    docs = [np.array(ids, dtype=np.int32) for ids in tokenizer.encode_batch(texts, prepend_bos=True)]
    bisect_rows_per_s = _pack_rate(docs, args.seq_len, 2000, scan=False)
    scan_rows_per_s = _pack_rate(docs, args.seq_len, 300, scan=True)

    print(
        json.dumps(
            {
                "benchmark": "loader",
                "tokens_per_s": round(rate),
                "reference_rank_tokens_per_s": round(REFERENCE_RANK_TOKENS_PER_S),
                "ratio_to_reference": round(rate / REFERENCE_RANK_TOKENS_PER_S, 2),
                "target_ratio": 8,
                "cropped_fraction": round(cropped, 4),
                "cpu_seconds": round(cpu_seconds, 2),
                "tokens_per_cpu_second": round(tokens / cpu_seconds),
                "host_load_avg_1m": [round(load_before, 2), round(load_after, 2)],
                "pack_only_tokens_per_s_bisect": round(bisect_rows_per_s * (args.seq_len + 1)),
                "pack_only_tokens_per_s_full_scan": round(scan_rows_per_s * (args.seq_len + 1)),
                "seq_len": args.seq_len,
                "batch_size": args.batch_size,
                "vocab_size": tokenizer.vocab_size,
                "tokenizer_threads": loader.tokenizer_threads,
                "seconds": round(elapsed, 2),
                "cpus": os.cpu_count(),
                "corpus": f"synthetic seed 0, {len(dataset.manifest.train_shards)} train shards",
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
