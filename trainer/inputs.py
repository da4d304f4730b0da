"""What a run consumes, found or built before training starts: the token shards, the tokenizer and (when
CORE runs at the end) the eval bundle (`prepare_inputs`).

The synthetic source builds its corpus and tokenizer once per cache; the climbmix source reads what
`speedrun data` downloaded. A missing directory or a tokenizer larger than the model's vocabulary
stops the run before any step with the setting to change. Heavy modules are imported when called:
the verifier's model process imports `trainer.train` and never reads a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.config import TrainConfig


@dataclass
class RunInputs:
    """The data, tokenizer and (when CORE runs) eval bundle a run consumes."""

    data_dir: Path
    tokenizer: Any
    manifest: Any
    bundle: Any | None


def prepare_inputs(config: TrainConfig, *, progress: bool) -> RunInputs:
    from trainer.data.manifest import read_manifest
    from trainer.data.paths import default_cache_dir
    from trainer.data.tokenizer import Tokenizer

    d = config.data
    if d.data_dir is None and d.source == "synthetic":
        from trainer.data.prepare import ensure_synthetic_dataset

        ds = ensure_synthetic_dataset(seed=d.synthetic_seed, vocab_size=d.synthetic_vocab_size, progress=progress)
        data_dir, tokenizer_dir = ds.data_dir, ds.tokenizer_dir
    else:
        data_dir = Path(d.data_dir) if d.data_dir is not None else default_cache_dir() / "climbmix"
        tokenizer_dir = Path(d.tokenizer_dir) if d.tokenizer_dir is not None else data_dir.parent / "tokenizer"
    if d.tokenizer_dir is not None:
        tokenizer_dir = Path(d.tokenizer_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data.data_dir: {data_dir} does not exist (download shards with `speedrun data`)")
    manifest = read_manifest(data_dir)
    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(f"data.tokenizer_dir: {tokenizer_dir} does not exist (train one with `speedrun data`)")
    tokenizer = Tokenizer.load(tokenizer_dir)
    if tokenizer.vocab_size > config.model.vocab_size:
        raise ValueError(
            f"model.vocab_size: {config.model.vocab_size} is smaller than the tokenizer's {tokenizer.vocab_size}"
        )
    bundle = None
    if config.eval.enabled and config.eval.core_at_end:
        from trainer.evaluation.bundle import ensure_synthetic_bundle, load_bundle
        from trainer.evaluation.fetch import fetch_bundle

        e = config.eval
        if e.bundle is not None:
            bundle_path = Path(e.bundle)
        elif e.bundle_source == "synthetic":
            bundle_path = ensure_synthetic_bundle(seed=d.synthetic_seed)
        else:
            bundle_path = fetch_bundle(progress=progress)
        bundle = load_bundle(bundle_path)
    return RunInputs(data_dir=data_dir, tokenizer=tokenizer, manifest=manifest, bundle=bundle)
