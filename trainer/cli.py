"""`speedrun plan` and `speedrun train` (argparse only at import; torch inside the commands).

The pinned CLI surface (checked by a test): `--recipe`, the override flags below (each one maps
to a key of `trainer.config.OVERRIDE_KEYS`), `--overrides JSON` (any pinned override, as the
verifier passes them), `--seed`, and the paths `--out`, `--data-dir`, `--tokenizer-dir`, `--bundle`,
plus `--resume`. Flags win over `--overrides` when both name the same key.

Several GPUs or nodes: `torchrun --nproc_per_node=8 -m speedrun train --recipe gpt2_speedrun ...`;
across nodes add `--nnodes N --rdzv-backend=c10d --rdzv-endpoint=HOST:PORT --rdzv-id=RUN`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, or a usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


# flag -> override key (argparse dest is the key). The set is pinned by tests/trainer/test_cli.py.
OVERRIDE_FLAGS: dict[str, str] = {
    "--depth": "depth",
    "--ratio": "ratio",
    "--num-iterations": "num_iterations",
    "--device-batch-size": "device_batch_size",
    "--total-batch-size": "total_batch_size",
    "--fp8": "fp8",
    "--compile": "compile",
}
PATH_FLAGS = ("--out", "--data-dir", "--tokenizer-dir", "--bundle")


def _add_recipe_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--recipe", default="gpt2_speedrun", help="named recipe: gpt2_speedrun, gpt2_speedrun_muoneq, d12, cpu_smoke"
    )
    p.add_argument("--depth", type=int, help="the depth dial (layers); width follows")
    p.add_argument("--ratio", type=float, help="training tokens : scaling params")
    p.add_argument("--num-iterations", type=int, help="explicit number of optimizer steps")
    p.add_argument("--device-batch-size", type=int, help="sequences per device per micro-step")
    p.add_argument("--total-batch-size", type=int, help="tokens per optimizer step")
    p.add_argument("--fp8", action=argparse.BooleanOptionalAction, default=None, help="fp8 matmuls (Hopper)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile the model")
    p.add_argument("--overrides", default=None, metavar="JSON", help="a JSON object of pinned overrides")
    p.add_argument(
        "--seed", type=int, default=None, help="seed of the init (and of the data order under data.order=seeded)"
    )


def _build_config(args: argparse.Namespace, *, world_size: int = 1) -> Any:
    from trainer.config import build_config

    overrides: dict[str, Any] = {}
    if args.overrides:
        try:
            parsed = json.loads(args.overrides)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--overrides: not valid JSON ({exc})") from exc
        if not isinstance(parsed, dict):
            raise ValueError("--overrides: must be a JSON object")
        overrides.update(parsed)
    for key in OVERRIDE_FLAGS.values():
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
    if args.seed is not None:
        overrides["seed"] = args.seed
    return build_config(args.recipe, overrides)


def _plan(args: argparse.Namespace) -> int:
    from trainer.plan import format_plan, resolve

    try:
        config = _build_config(args)
        world_size = args.world_size
        if world_size is None:
            world_size = 1 if config.runtime.device == "cpu" else 8
        plan = resolve(config, world_size)
    except ValueError as exc:
        print(f"speedrun plan: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(plan.to_dict(), indent=2))
    else:
        print(format_plan(plan))
    return 0


def _train(args: argparse.Namespace) -> int:
    try:
        config = _build_config(args)
        paths: dict[str, Any] = {"out_dir": args.out, "checkpoint.resume": bool(args.resume)}
        if args.data_dir is not None:
            paths["data.data_dir"] = args.data_dir
        if args.tokenizer_dir is not None:
            paths["data.tokenizer_dir"] = args.tokenizer_dir
        if args.bundle is not None:
            paths["eval.bundle"] = args.bundle
        if args.checkpoint_every is not None:
            paths["checkpoint.every_steps"] = args.checkpoint_every
        if args.no_progress:
            paths["log.progress"] = False
        if args.no_eval:
            paths["eval.enabled"] = False
        if args.wandb_project is not None:
            paths["log.wandb_project"] = args.wandb_project
        config = config.replace(**paths)
    except ValueError as exc:
        print(f"speedrun train: {exc}", file=sys.stderr)
        return 2

    import torch

    from trainer.cpus import cpu_threads
    from trainer.train import dist_env_from_environ, resolve_device, train

    try:
        env = dist_env_from_environ()
        if resolve_device(config, env).type == "cpu":  # the cores free now, not the cores that exist
            threads, source = cpu_threads()
            threads = max(1, threads // env.local_world_size)
            torch.set_num_threads(threads)
            print(f"speedrun train: {threads} CPU thread(s) ({source})", file=sys.stderr)
        result = train(config)
    except (ValueError, FileNotFoundError) as exc:
        print(f"speedrun train: {exc}", file=sys.stderr)
        return 1
    summary = {
        "out": args.out,
        "training_seconds": round(result.training_seconds, 3),
        "final_loss": result.final_loss,
        "val_bpb": result.val_bpb,
        "core": result.core_score,
    }
    print(json.dumps(summary))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "plan",
        help="Resolve a recipe into dims, batch, steps and LRs",
        description="Print the resolved plan of a recipe: dims, params, FLOPs, batch, steps, every group's LR.",
    )
    _add_recipe_flags(p)
    p.add_argument(
        "--world-size", type=int, default=None, help="processes (GPUs) in all (default: 8, or 1 for a CPU recipe)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_plan)

    t = sub.add_parser(
        "train",
        help="Train a recipe and write a timed run result",
        description="Train a recipe; write result.json, metrics.jsonl, train.log and model.pt under --out.",
    )
    _add_recipe_flags(t)
    t.add_argument("--out", required=True, help="output directory of the run")
    t.add_argument("--resume", action="store_true", help="continue from the latest checkpoint under --out")
    t.add_argument("--data-dir", default=None, help="directory of parquet shards + manifest.json")
    t.add_argument("--tokenizer-dir", default=None, help="directory of the tokenizer (default: next to the data)")
    t.add_argument("--bundle", default=None, help="CORE eval bundle (directory or zip)")
    t.add_argument("--checkpoint-every", type=int, default=None, help="save a checkpoint every N steps")
    t.add_argument("--wandb-project", default=None, help="log to wandb (when installed)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument(
        "--no-eval",
        action="store_true",
        help="no val_bpb and no CORE: the validation shard and the eval bundle are never opened "
        "(result.json has them null; a verifier scores the checkpoint itself)",
    )
    t.set_defaults(func=_train)
    # `speedrun doctor` is registered by submissions.cli, which adds the sandbox probe to its checks
