"""plan.resolve(config, world_size): every derived number of a run, in one pure function.

No torch here: the plan is printed by `speedrun plan`, stored in the run result, and checked by
tests against the model's real parameter counts. Steps are numbered as in REFERENCE_TRAINER.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainer.config import TrainConfig, build_config

REFERENCE_DEPTH = 12
REFERENCE_BATCH_TOKENS = 2**19  # B_REF: the total batch at depth 12
BATCH_EXPONENT = 0.383  # B grows as (tokens / D_REF) ** 0.383
REFERENCE_WIDTH = 768  # AdamW width scale s_d = (model_dim / 768) ** -0.5
VE_GATE_CHANNELS = 12  # value-embedding gate reads x[..., :12]
SMEAR_GATE_CHANNELS = 24  # smear gate reads x[..., :24]
MLP_EXPANSION = 4

# AdamW groups: (betas, weight decay). Learning rates are computed in step 6.
ADAM_BETAS: dict[str, tuple[float, float]] = {
    "lm_head": (0.8, 0.96),
    "wte": (0.8, 0.995),
    "value_embeds": (0.8, 0.995),
    "resid_lambdas": (0.8, 0.95),
    "x0_lambdas": (0.96, 0.95),
    "scalars": (0.8, 0.95),
}
ADAM_WEIGHT_DECAY: dict[str, float] = {
    "lm_head": 0.01,
    "wte": 0.001,
    "value_embeds": 0.01,
    "resid_lambdas": 0.05,
    "x0_lambdas": 0.0,
    "scalars": 0.0,
}


@dataclass(frozen=True)
class Dims:
    n_layer: int
    model_dim: int
    head_dim: int
    n_head: int
    n_kv_head: int
    vocab_size: int
    sequence_len: int
    window_sizes: tuple[int, ...]  # keys to the left a query sees besides itself (the record's), per layer
    value_embed_layers: tuple[int, ...]


@dataclass(frozen=True)
class Plan:
    # 1. dimensions
    depth: int
    n_layer: int
    model_dim: int
    head_dim: int
    n_head: int
    n_kv_head: int
    vocab_size: int
    sequence_len: int
    window_sizes: tuple[int, ...]
    value_embed_layers: tuple[int, ...]
    # 2. parameters and FLOPs
    num_params: int
    num_scaling_params: int
    num_matmul_params: int
    params_by_group: dict[str, int]
    flops_per_token: float
    fp8_layers: int
    # 3. batch
    world_size: int
    device_batch_size: int
    total_batch_size: int
    grad_accum_steps: int
    # 4. horizon
    ratio: float
    target_tokens: int
    num_iterations: int
    horizon_source: str
    total_tokens: int
    total_flops: float
    # 5. scales
    reference_tokens: int
    lr_batch_scale: float
    lr_width_scale: float
    # 6. groups
    learning_rates: dict[str, float]
    weight_decays: dict[str, float]
    adam_betas: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window_sizes"] = list(self.window_sizes)
        d["value_embed_layers"] = list(self.value_embed_layers)
        d["adam_betas"] = {k: list(v) for k, v in self.adam_betas.items()}
        return d

    @property
    def dims(self) -> Dims:
        return Dims(
            n_layer=self.n_layer,
            model_dim=self.model_dim,
            head_dim=self.head_dim,
            n_head=self.n_head,
            n_kv_head=self.n_kv_head,
            vocab_size=self.vocab_size,
            sequence_len=self.sequence_len,
            window_sizes=self.window_sizes,
            value_embed_layers=self.value_embed_layers,
        )


def model_dim_for(depth: int, aspect_ratio: int, head_dim: int) -> int:
    return math.ceil(depth * aspect_ratio / head_dim) * head_dim


def window_sizes_for(n_layer: int, sequence_len: int, pattern: str, multiple: int) -> tuple[int, ...]:
    """Pattern tiled over layers, last layer full. S = ceil(T / 4 / multiple) * multiple, capped at T."""
    short = min(sequence_len, math.ceil(sequence_len / 4 / multiple) * multiple)
    sizes = [short if pattern[i % len(pattern)] == "S" else sequence_len for i in range(n_layer)]
    sizes[-1] = sequence_len
    return tuple(sizes)


def value_embed_layers_for(n_layer: int) -> tuple[int, ...]:
    """Alternating layers, always including the last."""
    return tuple(i for i in range(n_layer) if i % 2 == (n_layer - 1) % 2)


def dims_for(config: TrainConfig) -> Dims:
    m = config.model
    model_dim = model_dim_for(m.depth, m.aspect_ratio, m.head_dim)
    if model_dim < SMEAR_GATE_CHANNELS:
        raise ValueError(
            f"model: model_dim {model_dim} < {SMEAR_GATE_CHANNELS} (the smear gate's input); raise depth or aspect_ratio"
        )
    n_head = model_dim // m.head_dim
    return Dims(
        n_layer=m.depth,
        model_dim=model_dim,
        head_dim=m.head_dim,
        n_head=n_head,
        n_kv_head=n_head,
        vocab_size=m.vocab_size,
        sequence_len=m.sequence_len,
        window_sizes=window_sizes_for(m.depth, m.sequence_len, m.window_pattern, m.window_multiple_tokens),
        value_embed_layers=value_embed_layers_for(m.depth),
    )


def param_counts(d: Dims) -> dict[str, int]:
    """Parameters per optimizer group (the model builds exactly these tensors)."""
    kv_dim = d.n_kv_head * d.head_dim
    attn = d.model_dim * d.n_head * d.head_dim + 2 * d.model_dim * kv_dim + d.n_head * d.head_dim * d.model_dim
    mlp = 2 * MLP_EXPANSION * d.model_dim * d.model_dim
    gates = len(d.value_embed_layers) * VE_GATE_CHANNELS * d.n_kv_head
    return {
        "matrices": d.n_layer * (attn + mlp),
        "ve_gates": gates,
        "lm_head": d.vocab_size * d.model_dim,
        "wte": d.vocab_size * d.model_dim,
        "value_embeds": len(d.value_embed_layers) * d.vocab_size * kv_dim,
        "resid_lambdas": d.n_layer,
        "x0_lambdas": d.n_layer,
        "smear_gate": SMEAR_GATE_CHANNELS,
        "scalars": 2,  # smear_lambda, backout_lambda
    }


def scaling_params(d: Dims) -> int:
    """Transformer matrices (gates included) + lm_head; not wte, value embeddings or scalars."""
    c = param_counts(d)
    return c["matrices"] + c["ve_gates"] + c["lm_head"]


def matmul_params(d: Dims) -> int:
    """Every Linear weight, lm_head and gates included; embeddings excluded."""
    c = param_counts(d)
    return c["matrices"] + c["ve_gates"] + c["lm_head"] + c["smear_gate"]


def flops_per_token(d: Dims) -> float:
    """6 N_matmul + sum over layers of 12 * n_head * head_dim * min(window, T) (forward + backward).

    The record's count: ``window`` is the left extent of the window (a query sees ``window`` keys plus
    itself), so an S layer at T=2048 counts 512 keys, exactly as the record's FLOPs and MFU do.
    """
    attn = sum(12 * d.n_head * d.head_dim * min(w, d.sequence_len) for w in d.window_sizes)
    return float(6 * matmul_params(d) + attn)


def fp8_layer_count(d: Dims) -> int:
    """Linear layers inside the blocks that qualify for fp8 (both dims % 16 == 0, min >= 128)."""

    def ok(a: int, b: int) -> bool:
        return a % 16 == 0 and b % 16 == 0 and min(a, b) >= 128

    kv = d.n_kv_head * d.head_dim
    q = d.n_head * d.head_dim
    hidden = MLP_EXPANSION * d.model_dim
    per_layer = [(d.model_dim, q), (d.model_dim, kv), (d.model_dim, kv), (q, d.model_dim)]
    per_layer += [(d.model_dim, hidden), (hidden, d.model_dim)]
    return d.n_layer * sum(ok(a, b) for a, b in per_layer)


def resolve(config: TrainConfig, world_size: int = 1) -> Plan:
    """The depth dial and the recipe -> dims, params, FLOPs, batch, steps and every group's LR and WD."""
    if world_size < 1:
        raise ValueError(f"world_size: must be >= 1, got {world_size}")
    m, o, h = config.model, config.optim, config.horizon

    # 1. Dimensions from the depth dial.
    d = dims_for(config)

    # 2. Parameters and FLOPs per token.
    counts = param_counts(d)
    n_scaling = scaling_params(d)
    fpt = flops_per_token(d)

    # 3. Total batch: B = 2 ** round(log2(B_REF * (target / D_REF) ** 0.383)); depends only on depth.
    target_tokens = int(h.ratio * n_scaling)
    ref = dims_for(config.replace(**{"model.depth": REFERENCE_DEPTH}))
    reference_tokens = int(h.ratio * scaling_params(ref))
    if config.data.total_batch_size is not None:
        total_batch = config.data.total_batch_size
    else:
        total_batch = 2 ** round(
            math.log2(REFERENCE_BATCH_TOKENS * (target_tokens / reference_tokens) ** BATCH_EXPONENT)
        )
    tokens_per_micro = config.data.device_batch_size * m.sequence_len * world_size
    if total_batch % tokens_per_micro != 0:
        raise ValueError(
            f"data.total_batch_size: {total_batch} tokens is not a multiple of device_batch_size x sequence_len x "
            f"world_size = {config.data.device_batch_size} x {m.sequence_len} x {world_size} = {tokens_per_micro}; "
            "change --device-batch-size or --total-batch-size"
        )
    grad_accum = total_batch // tokens_per_micro

    # 4. Horizon: explicit steps > FLOPs budget > ratio x scaling params.
    if h.num_iterations is not None:
        num_iterations, source = h.num_iterations, "num_iterations"
    elif h.target_flops is not None:
        num_iterations, source = round(h.target_flops / (fpt * total_batch)), "target_flops"
    else:
        num_iterations, source = target_tokens // total_batch, "ratio"
    if num_iterations < 1:
        raise ValueError(
            f"horizon: the {source} horizon gives {num_iterations} steps; raise it or set --num-iterations"
        )
    total_tokens = num_iterations * total_batch

    # 5. Scales: LR by batch, AdamW LR by width, Muon WD by batch and horizon.
    s_b = math.sqrt(total_batch / o.lr_reference_batch_tokens)
    s_d = (d.model_dim / REFERENCE_WIDTH) ** -0.5
    muon_wd = o.weight_decay * math.sqrt(total_batch / REFERENCE_BATCH_TOKENS) * (reference_tokens / target_tokens)

    # 6. Every group's LR and WD.
    lrs = {
        "matrices": o.matrix_lr * s_b,
        "lm_head": o.unembedding_lr * s_b * s_d,
        "wte": o.embedding_lr * s_b * s_d,
        "value_embeds": o.value_embedding_lr * s_b * s_d,
        "resid_lambdas": o.resid_lr * s_b,
        "x0_lambdas": o.x0_lr * s_b,
        "scalars": o.scalar_lr,
    }
    wds = {"matrices": muon_wd, **ADAM_WEIGHT_DECAY}

    return Plan(
        depth=m.depth,
        n_layer=d.n_layer,
        model_dim=d.model_dim,
        head_dim=d.head_dim,
        n_head=d.n_head,
        n_kv_head=d.n_kv_head,
        vocab_size=d.vocab_size,
        sequence_len=d.sequence_len,
        window_sizes=d.window_sizes,
        value_embed_layers=d.value_embed_layers,
        num_params=sum(counts.values()),
        num_scaling_params=n_scaling,
        num_matmul_params=matmul_params(d),
        params_by_group=counts,
        flops_per_token=fpt,
        fp8_layers=fp8_layer_count(d) if config.runtime.fp8 else 0,
        world_size=world_size,
        device_batch_size=config.data.device_batch_size,
        total_batch_size=total_batch,
        grad_accum_steps=grad_accum,
        ratio=h.ratio,
        target_tokens=target_tokens,
        num_iterations=num_iterations,
        horizon_source=source,
        total_tokens=total_tokens,
        total_flops=fpt * total_tokens,
        reference_tokens=reference_tokens,
        lr_batch_scale=s_b,
        lr_width_scale=s_d,
        learning_rates=lrs,
        weight_decays=wds,
        adam_betas=dict(ADAM_BETAS),
    )


def config_of(recipe: str, overrides: Mapping[str, object], seed: int) -> TrainConfig:
    """THE training config of a run config (recipe + overrides + seed), as the trainer, the verifier
    and the site all read it; raises ValueError/TypeError/KeyError naming the bad override."""
    return build_config(recipe, {**overrides, "seed": seed})


def plan_of(recipe: str, overrides: Mapping[str, object], seed: int, world_size: int) -> Plan:
    """THE plan of a run config: every derived number of ``config_of`` on ``world_size`` processes."""
    return resolve(config_of(recipe, overrides, seed), world_size)


def format_plan(plan: Plan) -> str:
    """A readable table for humans (`speedrun plan` without --json)."""

    def num(x: float) -> str:
        for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
            if abs(x) >= div:
                return f"{x / div:.3g}{unit}"
        return f"{x:.4g}"

    windows = ",".join(str(w) for w in plan.window_sizes)
    rows = [
        ("depth / layers", f"{plan.depth} / {plan.n_layer}"),
        ("model_dim, heads x head_dim", f"{plan.model_dim}, {plan.n_head} x {plan.head_dim}"),
        ("sequence_len, vocab", f"{plan.sequence_len}, {plan.vocab_size}"),
        ("windows per layer", windows),
        ("value-embedding layers", ",".join(map(str, plan.value_embed_layers))),
        ("params: total / scaling", f"{num(plan.num_params)} / {num(plan.num_scaling_params)}"),
        ("FLOPs per token", num(plan.flops_per_token)),
        ("fp8 layers", str(plan.fp8_layers)),
        ("world size", str(plan.world_size)),
        ("batch: device x accum", f"{plan.device_batch_size} seqs x {plan.grad_accum_steps}"),
        ("total batch (tokens)", f"{plan.total_batch_size:,}"),
        ("horizon", f"{plan.num_iterations:,} steps (from {plan.horizon_source})"),
        ("tokens: target / total", f"{num(plan.target_tokens)} / {num(plan.total_tokens)}"),
        ("total FLOPs", f"{plan.total_flops:.3e}"),
        ("LR scales: batch / width", f"{plan.lr_batch_scale:.4f} / {plan.lr_width_scale:.4f}"),
    ]
    for group, lr in plan.learning_rates.items():
        rows.append((f"  {group}", f"lr {lr:.5g}  wd {plan.weight_decays[group]:.4g}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
