"""`speedrun eval`: CORE of a trained checkpoint, the synthetic bundle, and the bundle download.

    speedrun eval core --checkpoint DIR (--bundle DIR|ZIP | --synthetic) [--max-per-task N] [--json]
    speedrun eval synth-bundle --out DIR [--seed N]
    speedrun eval fetch [--url URL] [--cache-dir DIR] [--sha256 HEX | --no-verify]

Only argparse at import; torch and the evaluation modules are imported inside the commands.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trainer.cli import positive_int


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    group = sub.add_parser("eval", help="CORE and bits-per-byte evaluation", description=__doc__.split("\n\n")[0])
    cmds = group.add_subparsers(dest="eval_command", metavar="COMMAND")

    core = cmds.add_parser("core", help="CORE (core-v1) of a trained checkpoint: per-task table and the aggregate")
    core.add_argument(
        "--checkpoint",
        type=Path,
        required=True,
        help="a `speedrun train` output directory (final model.pt, else the latest checkpoint)",
    )
    source = core.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", type=Path, help="an eval bundle directory or zip (offline)")
    source.add_argument("--synthetic", action="store_true", help="the cached synthetic CORE-format bundle")
    core.add_argument("--synthetic-seed", type=int, default=0, help="seed of the synthetic bundle (default 0)")
    core.add_argument("--max-per-task", type=positive_int, default=None, help="first N shuffled examples per task")
    core.add_argument("--batch-tokens", type=positive_int, default=None, help="token budget per forward")
    core.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    core.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto")
    core.add_argument("--json", action="store_true", help="print the result as JSON (the CoreResult of result.json)")
    core.add_argument("--no-progress", action="store_true", help="no progress bar")
    core.set_defaults(func=_core)

    synth = cmds.add_parser("synth-bundle", help="write the synthetic CORE-format bundle (22 core-v1 tasks)")
    synth.add_argument("--out", type=Path, required=True, help="directory to write (must be new or empty)")
    synth.add_argument("--seed", type=int, default=0, help="SyntheticWorld seed (default 0)")
    synth.set_defaults(func=_synth_bundle)

    fetch = cmds.add_parser("fetch", help="download, verify and unpack the public eval bundle")
    fetch.add_argument("--url", default=None, help="bundle zip URL (default: the public nanochat bundle)")
    fetch.add_argument("--cache-dir", type=Path, default=None, help="where eval_bundle/ goes (default: the cache)")
    pin = fetch.add_mutually_exclusive_group()
    pin.add_argument("--sha256", default=None, help="expected sha256 of the zip (default: the pinned one)")
    pin.add_argument("--no-verify", action="store_true", help="record the zip's sha256 without checking it")
    fetch.set_defaults(func=_fetch)


def _load_run(path: Path, device: Any) -> tuple[Any, Any]:
    """(model, tokenizer) of a `speedrun train` output directory.

    A finished run (``model.pt`` + ``result.json``) gives its final weights; otherwise the newest
    complete checkpoint under ``checkpoints/`` is used. The config stored with the weights rebuilds
    the GPT and names the tokenizer.
    """
    import torch

    from contract import MODEL_FILE, RESULT_FILE
    from trainer.checkpoint import latest_step, load_checkpoint
    from trainer.config import TrainConfig
    from trainer.model import GPTConfig, build_model

    if not path.is_dir():
        raise FileNotFoundError(f"--checkpoint: {path} is not a directory")
    result_path, model_path = path / RESULT_FILE, path / MODEL_FILE
    if result_path.is_file() and model_path.is_file():
        try:
            config_dict = json.loads(result_path.read_text())["config"]
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{result_path}: no readable 'config' ({exc})") from None
        state = torch.load(model_path, map_location="cpu", weights_only=True)
    else:
        step = latest_step(path)
        if step is None:
            raise FileNotFoundError(
                f"--checkpoint: {path} holds neither model.pt + {RESULT_FILE} (a finished run) nor checkpoints/"
            )
        payload = load_checkpoint(path, step)
        config_dict, state = payload["config"], payload["model"]
    config = TrainConfig.from_dict(config_dict)
    compute_dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = build_model(GPTConfig.from_train_config(config), device, compute_dtype)
    model.load_state_dict(state)
    return model.eval(), _tokenizer_of(config)


def _tokenizer_of(config: Any) -> Any:
    from trainer.data.paths import default_cache_dir
    from trainer.data.tokenizer import Tokenizer

    d = config.data
    if d.tokenizer_dir is not None:
        return Tokenizer.load(d.tokenizer_dir)
    if d.data_dir is None and d.source == "synthetic":
        from trainer.data.prepare import ensure_synthetic_dataset

        ds = ensure_synthetic_dataset(seed=d.synthetic_seed, vocab_size=d.synthetic_vocab_size)
        return Tokenizer.load(ds.tokenizer_dir)
    data_dir = Path(d.data_dir) if d.data_dir is not None else default_cache_dir() / "climbmix"
    return Tokenizer.load(data_dir.parent / "tokenizer")


def format_table(outcomes: Any, result: Any) -> str:
    from contract.core_v1 import TASKS_BY_LABEL

    lines = [f"{'task':34s} {'type':17s} {'shots':>5s} {'accuracy':>9s} {'centered':>9s} {'n':>6s} {'seconds':>8s}"]
    for o in outcomes:
        spec = TASKS_BY_LABEL[o.label]
        lines.append(
            f"{o.label:34s} {spec.task_type.value:17s} {spec.num_fewshot:5d} {o.accuracy:9.4f} {o.centered:9.4f} "
            f"{o.n:6d} {o.seconds:8.2f}"
        )
    lines.append(f"CORE ({result.protocol}) = {result.core:.6f}   bundle sha256 {result.bundle_sha256[:16]}...")
    return "\n".join(lines)


def _core(args: argparse.Namespace) -> int:
    import time

    import torch

    from trainer.evaluation.bundle import BundleError, ensure_synthetic_bundle, load_bundle
    from trainer.evaluation.core import core_result, evaluate_tasks

    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        bundle_path = args.bundle if args.bundle is not None else ensure_synthetic_bundle(seed=args.synthetic_seed)
        bundle = load_bundle(bundle_path)
        model, tokenizer = _load_run(args.checkpoint, device)
        t0 = time.perf_counter()
        outcomes = evaluate_tasks(
            model,
            tokenizer,
            bundle,
            device=device,
            max_per_task=args.max_per_task,
            batch_tokens=args.batch_tokens,
            precision=args.precision,
            progress=not args.no_progress,
        )
        result = core_result(
            outcomes,
            bundle_sha256=bundle.sha256,
            max_per_task=args.max_per_task,
            seconds=time.perf_counter() - t0,
        )
    except (BundleError, FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"speedrun eval core: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.model_dump(mode="json"), indent=2))
    else:
        print(format_table(outcomes, result))
    return 0


def _synth_bundle(args: argparse.Namespace) -> int:
    from trainer.evaluation.bundle import BundleError, load_bundle, write_synthetic_bundle

    try:
        out = write_synthetic_bundle(args.out, seed=args.seed)
    except (BundleError, ValueError) as exc:
        print(f"speedrun eval synth-bundle: {exc}", file=sys.stderr)
        return 2
    bundle = load_bundle(out)
    print(f"wrote {out}: 22 tasks, {bundle.num_examples} examples, sha256 {bundle.sha256}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from trainer.evaluation.bundle import BundleError, load_bundle
    from trainer.evaluation.fetch import DEFAULT_URL, DEFAULT_ZIP_SHA256, fetch_bundle

    sha256 = None if args.no_verify else (args.sha256 or DEFAULT_ZIP_SHA256)
    try:
        path = fetch_bundle(args.url or DEFAULT_URL, args.cache_dir, sha256=sha256)
        bundle = load_bundle(path)
    except (BundleError, ValueError) as exc:
        print(f"speedrun eval fetch: {exc}", file=sys.stderr)
        return 2
    print(f"{path}: 22 tasks, {bundle.num_examples} examples, bundle sha256 {bundle.sha256}")
    return 0
