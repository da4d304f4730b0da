"""`speedrun data download|synth|tokenizer|verify` (argparse only at import; heavy imports inside commands)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from trainer.cli import positive_int

_DEFAULT_VAL_SHARD_INDEX = 6542  # trainer.data.paths.CLIMBMIX_VAL_SHARD_INDEX (not imported: keep this module light)


def _report(body: dict[str, object]) -> None:
    print(json.dumps(body, indent=2))


def _fail(command: str, error: BaseException) -> int:
    print(f"speedrun data {command}: error: {error}", file=sys.stderr)
    return 1


def _download(args: argparse.Namespace) -> int:
    from trainer.data.download import DownloadError, default_data_dir, download_shards
    from trainer.data.paths import CLIMBMIX_BASE_URL

    out = Path(args.dir) if args.dir else default_data_dir()
    try:
        manifest = download_shards(
            args.shards,
            out_dir=out,
            base_url=args.base_url or CLIMBMIX_BASE_URL,
            workers=args.workers,
            val_shard_index=args.val_shard,
            max_attempts=args.max_attempts,
            progress=not args.quiet,
        )
    except (ValueError, DownloadError, OSError) as e:
        return _fail("download", e)
    _report(
        {
            "data_dir": str(out),
            "train_shards": len(manifest.train_shards),
            "val_shard": manifest.val_shard,
            "manifest_sha256": manifest.sha256,
        }
    )
    return 0


def _synth(args: argparse.Namespace) -> int:
    from trainer.data.manifest import read_manifest
    from trainer.data.paths import default_cache_dir
    from trainer.data.synth import write_synthetic_corpus

    out = Path(args.out) if args.out else default_cache_dir() / f"synthetic-{args.seed}" / "data"
    try:
        paths = write_synthetic_corpus(out, seed=args.seed, num_shards=args.shards, docs_per_shard=args.docs_per_shard)
    except (ValueError, OSError) as e:
        return _fail("synth", e)
    manifest = read_manifest(out)
    _report(
        {
            "data_dir": str(out),
            "shards": [p.name for p in paths],
            "val_shard": manifest.val_shard,
            "manifest_sha256": manifest.sha256,
        }
    )
    return 0


def _tokenizer(args: argparse.Namespace) -> int:
    from trainer.data.download import default_data_dir
    from trainer.data.manifest import ManifestError
    from trainer.data.prepare import train_tokenizer_on_shards

    data_dir = Path(args.data) if args.data else default_data_dir()
    out = Path(args.out) if args.out else data_dir.parent / "tokenizer"  # where `speedrun train` looks
    try:
        tokenizer = train_tokenizer_on_shards(
            data_dir, vocab_size=args.vocab_size, max_chars=int(args.max_chars), progress=not args.quiet
        )
        path = tokenizer.save(out)
    except (ValueError, ManifestError, OSError) as e:
        return _fail("tokenizer", e)
    _report({"tokenizer": str(path), "vocab_size": tokenizer.vocab_size, "sha256": tokenizer.sha256})
    return 0


def _verify(args: argparse.Namespace) -> int:
    from trainer.data.download import ShardError, default_data_dir, verify_shard
    from trainer.data.manifest import ManifestError, read_manifest

    data_dir = Path(args.dir) if args.dir else default_data_dir()
    try:
        manifest = read_manifest(data_dir)
        manifest.check_files(data_dir, hash_files=True)
        rows = {name: verify_shard(data_dir / name) for name in sorted(manifest.shards)}
    except (ManifestError, ShardError, OSError) as e:
        return _fail("verify", e)
    _report({"data_dir": str(data_dir), "manifest_sha256": manifest.sha256, "rows": rows})
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    data = sub.add_parser("data", help="Download shards; synthesize a corpus; train the tokenizer")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    p = commands.add_parser(
        "download",
        help="Fetch ClimbMix shards 0..N-1 and the validation shard, verified, with a manifest",
        description="Fetch ClimbMix parquet shards (and always the validation shard) in parallel, with "
        "retries, resume and verification; writes manifest.json with every shard's sha256.",
    )
    p.add_argument("--shards", type=int, required=True, help="number of training shards (0..N-1)")
    p.add_argument("--base-url", default=None, help="server with the ClimbMix layout (default: Hugging Face)")
    p.add_argument("--dir", default=None, help="data directory (default: $SPEEDRUN_HOME/climbmix)")
    p.add_argument("--workers", type=positive_int, default=8, help="parallel downloads (default 8)")
    p.add_argument("--val-shard", type=int, default=_DEFAULT_VAL_SHARD_INDEX, help="validation shard index")
    p.add_argument("--max-attempts", type=positive_int, default=6, help="attempts per shard (default 6)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_download)

    p = commands.add_parser(
        "synth",
        help="Write a seeded synthetic corpus in the ClimbMix layout",
        description="Write parquet shards of learnable synthetic documents (column text, row groups of 1024 "
        "docs, last shard = validation) and their manifest. Same seed -> same bytes.",
    )
    p.add_argument("--out", default=None, help="output directory (default: $SPEEDRUN_HOME/synthetic-SEED/data)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", type=int, default=3, help="number of shards including validation (default 3)")
    p.add_argument("--docs-per-shard", type=positive_int, default=4096)
    p.set_defaults(func=_synth)

    p = commands.add_parser(
        "tokenizer",
        help="Train the byte-level BPE on a data directory's training shards",
        description="Train a byte-level BPE (rustbpe) on the first --max-chars characters of the training "
        "shards (docs capped at 10k chars) and save it with its sha256.",
    )
    p.add_argument("--data", default=None, help="data directory with manifest.json (default: $SPEEDRUN_HOME/climbmix)")
    p.add_argument(
        "--out", default=None, help="tokenizer directory (default: DATA/../tokenizer, where training looks for it)"
    )
    p.add_argument("--vocab-size", type=int, default=32768, help="including 256 bytes and 9 special tokens")
    p.add_argument("--max-chars", type=float, default=2e9, help="characters to train on (default 2e9)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_tokenizer)

    p = commands.add_parser(
        "verify",
        help="Re-hash and re-read every shard of a data directory against its manifest",
        description="Check that every shard in manifest.json exists, matches its sha256 and reads as parquet.",
    )
    p.add_argument("--dir", default=None, help="data directory (default: $SPEEDRUN_HOME/climbmix)")
    p.set_defaults(func=_verify)
