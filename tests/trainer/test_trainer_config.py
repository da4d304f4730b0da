"""TrainConfig, recipes and the pinned override surface."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainer.config import OVERRIDE_KEYS, RECIPES, TrainConfig, build_config, cpu_smoke, overrides_of

PINNED_OVERRIDE_KEYS = {
    "depth",
    "aspect_ratio",
    "head_dim",
    "sequence_len",
    "window_pattern",
    "ratio",
    "num_iterations",
    "target_flops",
    "device_batch_size",
    "total_batch_size",
    "matrix_lr",
    "embedding_lr",
    "unembedding_lr",
    "weight_decay",
    "warmup_steps",
    "warmdown_ratio",
    "final_lr_frac",
    "eval_every_steps",
    "eval_tokens",
    "core_max_per_task",
    "fp8",
    "compile",
}


def test_override_keys_are_pinned() -> None:
    assert set(OVERRIDE_KEYS) == PINNED_OVERRIDE_KEYS
    assert "seed" not in OVERRIDE_KEYS
    assert not any("dir" in k or "path" in k or "bundle" in k for k in OVERRIDE_KEYS)


def test_every_recipe_builds_and_names_itself() -> None:
    assert set(RECIPES) == {"gpt2_speedrun", "gpt2_speedrun_muoneq", "d12", "cpu_smoke"}
    for name, fn in RECIPES.items():
        cfg = fn()
        assert cfg.recipe == name
        assert build_config(name, {}) == cfg


def test_speedrun_recipe_matches_the_record() -> None:
    cfg = RECIPES["gpt2_speedrun"]()
    assert (cfg.model.depth, cfg.horizon.ratio, cfg.runtime.fp8, cfg.model.sequence_len) == (24, 8.0, True, 2048)


def test_cpu_smoke_is_small() -> None:
    cfg = cpu_smoke()
    assert 2 <= cfg.model.depth <= 4
    assert cfg.runtime.device == "cpu" and not cfg.runtime.compile
    assert cfg.data.source == "synthetic" and cfg.eval.bundle_source == "synthetic"


def test_build_config_applies_overrides_and_seed() -> None:
    cfg = build_config("cpu_smoke", {"depth": 2, "num_iterations": 20, "fp8": False, "ratio": 10, "seed": 7})
    assert (cfg.model.depth, cfg.horizon.num_iterations, cfg.horizon.ratio, cfg.seed) == (2, 20, 10.0, 7)
    assert isinstance(cfg.horizon.ratio, float)


@pytest.mark.parametrize(
    ("recipe", "overrides", "needle"),
    [
        ("nope", {}, "recipe"),
        ("cpu_smoke", {"data_dir": "/tmp"}, "overrides.data_dir"),
        ("cpu_smoke", {"depth": "4"}, "overrides.depth"),
        ("cpu_smoke", {"depth": True}, "overrides.depth"),
        ("cpu_smoke", {"depth": 2.5}, "overrides.depth"),
        ("cpu_smoke", {"depth": 0}, "model.depth"),
        ("cpu_smoke", {"fp8": 1}, "overrides.fp8"),
        ("cpu_smoke", {"depth": None}, "overrides.depth"),
        ("cpu_smoke", {"warmdown_ratio": 2.0}, "optim.warmdown_ratio"),
        ("cpu_smoke", {"window_pattern": "SXL"}, "model.window_pattern"),
        ("cpu_smoke", {"seed": -1}, "seed"),
        ("cpu_smoke", {"seed": "1"}, "seed"),
    ],
)
def test_bad_input_names_the_problem(recipe: str, overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        build_config(recipe, overrides)


def test_optional_overrides_accept_null() -> None:
    assert build_config("d12", {"num_iterations": None}).horizon.num_iterations is None


def test_to_dict_round_trips() -> None:
    cfg = build_config("gpt2_speedrun", {"depth": 20, "seed": 3})
    d = cfg.to_dict()
    assert d["model"]["depth"] == 20 and d["seed"] == 3
    assert TrainConfig.from_dict(d) == cfg


def test_overrides_of_lists_only_changed_pinned_fields() -> None:
    cfg = build_config("cpu_smoke", {"num_iterations": 20, "depth": 4, "seed": 5})
    assert overrides_of(cfg) == {"num_iterations": 20}


def test_config_imports_without_torch() -> None:
    code = "import sys, trainer.config, trainer.plan; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
