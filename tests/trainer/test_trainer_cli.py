"""The pinned CLI surface of `speedrun plan` / `speedrun train`."""

from __future__ import annotations

import argparse

from speedrun.cli import build_parser
from trainer.cli import OVERRIDE_FLAGS
from trainer.config import OVERRIDE_KEYS

PINNED_TRAIN_FLAGS = {
    "--recipe",
    "--depth",
    "--ratio",
    "--num-iterations",
    "--device-batch-size",
    "--total-batch-size",
    "--fp8",
    "--no-fp8",
    "--compile",
    "--no-compile",
    "--overrides",
    "--seed",
    "--out",
    "--resume",
    "--data-dir",
    "--tokenizer-dir",
    "--bundle",
    "--checkpoint-every",
    "--wandb-project",
    "--no-progress",
    "--no-eval",
    "-h",
    "--help",
}


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {opt for action in sub.choices[command]._actions for opt in action.option_strings}


def test_train_flags_are_pinned() -> None:
    assert _flags("train") == PINNED_TRAIN_FLAGS


def test_plan_flags_are_the_recipe_flags_plus_output_form() -> None:
    expected = PINNED_TRAIN_FLAGS - {
        "--out",
        "--resume",
        "--data-dir",
        "--tokenizer-dir",
        "--bundle",
        "--checkpoint-every",
        "--wandb-project",
        "--no-progress",
        "--no-eval",
    }
    assert _flags("plan") == expected | {"--world-size", "--json"}


def test_every_override_flag_is_a_pinned_override_key() -> None:
    assert set(OVERRIDE_FLAGS.values()) <= OVERRIDE_KEYS
    assert set(OVERRIDE_FLAGS.values()) == {
        "depth",
        "ratio",
        "num_iterations",
        "device_batch_size",
        "total_batch_size",
        "fp8",
        "compile",
    }


def test_flags_win_over_overrides_json() -> None:
    from trainer.cli import _build_config

    args = build_parser().parse_args(
        ["train", "--recipe", "cpu_smoke", "--out", "x", "--overrides", '{"depth": 3, "ratio": 5}', "--depth", "2"]
    )
    cfg = _build_config(args)
    assert cfg.model.depth == 2 and cfg.horizon.ratio == 5.0
