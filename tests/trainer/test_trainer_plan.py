"""plan.resolve: the depth dial and derived numbers, against their formulas and the model."""

from __future__ import annotations

import json
import math

import pytest
import torch

from speedrun.cli import main
from trainer.config import build_config, cpu_smoke
from trainer.model import GPT, GPTConfig
from trainer.plan import dims_for, flops_per_token, param_counts, resolve, window_sizes_for


@pytest.mark.parametrize("depth", [12, 20, 24, 26])
def test_plan_json_is_self_consistent(depth: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--depth", str(depth), "--json"]) == 0
    p = json.loads(capsys.readouterr().out)
    for key in (
        "model_dim",
        "n_layer",
        "n_head",
        "num_params",
        "num_scaling_params",
        "flops_per_token",
        "total_batch_size",
        "grad_accum_steps",
        "num_iterations",
        "total_flops",
    ):
        assert key in p
    assert p["n_layer"] == depth
    assert p["model_dim"] == math.ceil(depth * 64 / 128) * 128
    assert p["n_head"] * 128 == p["model_dim"]
    assert p["total_batch_size"] == (2**19 if depth == 12 else 2**20)
    assert p["total_batch_size"] == p["device_batch_size"] * 2048 * p["world_size"] * p["grad_accum_steps"]
    assert p["num_iterations"] == int(8 * p["num_scaling_params"]) // p["total_batch_size"]
    assert p["total_flops"] == pytest.approx(p["flops_per_token"] * p["num_iterations"] * p["total_batch_size"])
    assert p["num_scaling_params"] < p["num_params"]
    s_b = math.sqrt(p["total_batch_size"] / 2**19)
    s_d = (p["model_dim"] / 768) ** -0.5
    assert p["learning_rates"]["matrices"] == pytest.approx(0.02 * s_b)
    assert p["learning_rates"]["wte"] == pytest.approx(0.3 * s_b * s_d)
    assert p["learning_rates"]["scalars"] == pytest.approx(0.2)


def test_depth_24_record_numbers() -> None:
    p = resolve(build_config("gpt2_speedrun", {}), world_size=8)
    assert (p.model_dim, p.n_head, p.total_batch_size, p.num_iterations) == (1536, 12, 2**20, 5568)
    assert p.fp8_layers == 24 * 6


def test_windows_sssl_with_full_last_layer() -> None:
    assert window_sizes_for(6, 2048, "SSSL", 128) == (512, 512, 512, 2048, 512, 2048)
    assert window_sizes_for(4, 256, "SSSL", 16) == (64, 64, 64, 256)
    assert window_sizes_for(3, 2048, "L", 128) == (2048, 2048, 2048)


def test_flops_formula() -> None:
    d = dims_for(build_config("gpt2_speedrun", {"depth": 12}))
    c = param_counts(d)
    n_matmul = c["matrices"] + c["ve_gates"] + c["lm_head"] + c["smear_gate"]
    attn = sum(12 * 6 * 128 * min(w, 2048) for w in d.window_sizes)
    assert flops_per_token(d) == 6 * n_matmul + attn
    assert c["matrices"] == 12 * 12 * 768 * 768


def test_attention_flops_count_the_left_extent_of_the_window_as_the_record() -> None:
    # depth 24 at T=2048: 18 S layers (w=512: the query sees 513 keys) and 6 L layers; the record's FLOPs
    # count 12 * heads * head_dim * min(w, T) per layer, so an S layer counts 512, not 513
    d = dims_for(build_config("gpt2_speedrun", {}))
    assert d.window_sizes.count(512) == 18 and d.window_sizes.count(2048) == 6
    c = param_counts(d)
    n_matmul = c["matrices"] + c["ve_gates"] + c["lm_head"] + c["smear_gate"]
    assert flops_per_token(d) - 6 * n_matmul == 12 * 12 * 128 * (18 * 512 + 6 * 2048)


@pytest.mark.parametrize("overrides", [{"depth": 2}, {"depth": 3}, {"depth": 4}, {"depth": 12, "head_dim": 64}])
def test_param_counts_match_the_model(overrides: dict[str, object]) -> None:
    config = build_config("cpu_smoke", overrides)
    plan = resolve(config)
    with torch.device("meta"):
        model = GPT(GPTConfig.from_train_config(config))
    assert sum(p.numel() for p in model.parameters()) == plan.num_params
    groups = model.param_groups()
    counts = {name: sum(p.numel() for p in ps) for name, ps in groups.items()}
    assert counts["matrices"] == plan.params_by_group["matrices"] + plan.params_by_group["ve_gates"]
    assert counts["scalars"] == plan.params_by_group["smear_gate"] + plan.params_by_group["scalars"]
    assert counts["matrices"] + counts["lm_head"] == plan.num_scaling_params
    assert len({id(p) for ps in groups.values() for p in ps}) == len(list(model.parameters()))


def test_value_embeddings_on_alternating_layers_including_last() -> None:
    assert resolve(build_config("cpu_smoke", {"depth": 4})).value_embed_layers == (1, 3)
    assert resolve(build_config("cpu_smoke", {"depth": 3})).value_embed_layers == (0, 2)


def test_indivisible_batch_names_the_fix() -> None:
    with pytest.raises(ValueError, match="device-batch-size"):
        resolve(build_config("cpu_smoke", {"total_batch_size": 5000}))
    with pytest.raises(ValueError, match="world_size"):
        resolve(build_config("gpt2_speedrun", {}), world_size=3)


def test_horizon_precedence() -> None:
    base = cpu_smoke()
    by_flops = resolve(base.replace(**{"horizon.num_iterations": None, "horizon.target_flops": 1e13}))
    assert by_flops.horizon_source == "target_flops"
    assert by_flops.num_iterations == round(1e13 / (by_flops.flops_per_token * by_flops.total_batch_size))
    assert resolve(base).horizon_source == "num_iterations"


def test_plan_human_table_and_bad_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--recipe", "cpu_smoke"]) == 0  # a CPU recipe plans for one process
    out = capsys.readouterr().out
    assert "model_dim" in out and "FLOPs per token" in out
    assert main(["plan", "--recipe", "cpu_smoke", "--world-size", "1", "--total-batch-size", "100"]) == 2
    assert "--total-batch-size" in capsys.readouterr().err
