"""TrainConfig: one typed, validated, frozen object per run, and the named recipes.

This module must import without torch: the site and the submission schema import it to validate a
submission's overrides (`build_config`). Every field carries its unit in its name; "off" is `None`,
never -1. Validation raises `ValueError` naming the field (`model.depth: ...`).

Recipes are functions returning a TrainConfig; variants call their base and replace fields. A
submission may change only the pinned `OVERRIDE_KEYS` (plus the seed, given on its own).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DataSource = Literal["climbmix", "synthetic"]
DataOrder = Literal["record", "seeded"]
BundleSource = Literal["official", "synthetic"]
DeviceKind = Literal["auto", "cpu", "cuda"]
AttentionChoice = Literal["auto", "fa3_hub", "fa3", "fa2", "flex", "sdpa"]

_DATA_SOURCES = ("climbmix", "synthetic")
_DATA_ORDERS = ("record", "seeded")
_BUNDLE_SOURCES = ("official", "synthetic")
_DEVICES = ("auto", "cpu", "cuda")
_ATTENTION = ("auto", "fa3_hub", "fa3", "fa2", "flex", "sdpa")


def _check(cond: bool, name: str, msg: str, value: object) -> None:
    if not cond:
        raise ValueError(f"{name}: {msg}, got {value!r}")


def _positive_int(name: str, value: object) -> None:
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= 1, name, "must be an integer >= 1", value
    )


def _optional_positive_int(name: str, value: object) -> None:
    if value is not None:
        _positive_int(name, value)


def _finite_float(name: str, value: object, *, low: float | None = None, high: float | None = None) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(float(value))
    _check(ok, name, "must be a finite number", value)
    assert isinstance(value, int | float)
    if low is not None:
        _check(value >= low, name, f"must be >= {low}", value)
    if high is not None:
        _check(value <= high, name, f"must be <= {high}", value)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    _check(value in choices, name, f"must be one of {', '.join(choices)}", value)


@dataclass(frozen=True)
class ModelConfig:
    """The depth dial and the few shape choices the plan turns into dimensions."""

    depth: int = 24
    aspect_ratio: int = 64  # model_dim = ceil(depth * aspect_ratio / head_dim) * head_dim
    head_dim: int = 128
    sequence_len: int = 2048
    vocab_size: int = 32768
    window_pattern: str = "SSSL"  # tiled over layers; the last layer is always L (full)
    window_multiple_tokens: int = 128  # S = ceil(sequence_len / 4 / multiple) * multiple
    rope_base: float = 100_000.0
    rope_positions_factor: int = 10  # RoPE tables cover factor x sequence_len (long CORE prompts)
    logit_softcap: float = 15.0

    def __post_init__(self) -> None:
        for name in ("depth", "aspect_ratio", "head_dim", "sequence_len", "vocab_size", "window_multiple_tokens"):
            _positive_int(f"model.{name}", getattr(self, name))
        _positive_int("model.rope_positions_factor", self.rope_positions_factor)
        _check(self.head_dim % 2 == 0, "model.head_dim", "must be even (RoPE rotates halves)", self.head_dim)
        _check(
            bool(self.window_pattern) and set(self.window_pattern) <= {"S", "L"},
            "model.window_pattern",
            "must be a non-empty string of S and L",
            self.window_pattern,
        )
        _finite_float("model.rope_base", self.rope_base, low=2.0)
        _finite_float("model.logit_softcap", self.logit_softcap, low=1e-3)


@dataclass(frozen=True)
class OptimConfig:
    """Base learning rates and schedules; `plan.resolve` scales them by batch and width."""

    matrix_lr: float = 0.02  # Muon, x sqrt(B / lr_reference_batch_tokens)
    embedding_lr: float = 0.3  # AdamW wte, x s_B x s_d
    unembedding_lr: float = 0.008  # AdamW lm_head, x s_B x s_d
    value_embedding_lr: float = 0.15  # AdamW value embeddings, x s_B x s_d
    resid_lr: float = 0.005  # AdamW per-layer resid scalars, x s_B
    x0_lr: float = 0.5  # AdamW per-layer x0 scalars, x s_B
    scalar_lr: float = 0.2  # AdamW smear/backout, fixed
    weight_decay: float = 0.28  # Muon, scaled by sqrt(B / B_REF) * D_REF / target_tokens
    lr_reference_batch_tokens: int = 2**19  # the batch at which the base LRs were tuned
    warmup_steps: int = 40
    warmdown_ratio: float = 0.65
    final_lr_frac: float = 0.05
    momentum_start: float = 0.85
    momentum_peak: float = 0.97
    momentum_end: float = 0.90
    momentum_warmup_steps: int = 400
    adam_eps: float = 1e-10
    normuon_beta2: float = 0.9
    muon_eq: bool = False  # MuonEq row equilibration before Polar Express (nanochat, July 2026; not the record)
    muon_plus: bool = False  # Muon+: update renormalized to Frobenius sqrt(min(m, n)) (July 2026; not the record)

    def __post_init__(self) -> None:
        for name in (
            "matrix_lr",
            "embedding_lr",
            "unembedding_lr",
            "value_embedding_lr",
            "resid_lr",
            "x0_lr",
            "scalar_lr",
            "weight_decay",
        ):
            _finite_float(f"optim.{name}", getattr(self, name), low=0.0)
        _positive_int("optim.lr_reference_batch_tokens", self.lr_reference_batch_tokens)
        _check(
            isinstance(self.warmup_steps, int) and self.warmup_steps >= 0,
            "optim.warmup_steps",
            "must be >= 0",
            self.warmup_steps,
        )
        _check(
            isinstance(self.momentum_warmup_steps, int) and self.momentum_warmup_steps >= 0,
            "optim.momentum_warmup_steps",
            "must be >= 0",
            self.momentum_warmup_steps,
        )
        _finite_float("optim.warmdown_ratio", self.warmdown_ratio, low=0.0, high=1.0)
        _finite_float("optim.final_lr_frac", self.final_lr_frac, low=0.0, high=1.0)
        for name in ("momentum_start", "momentum_peak", "momentum_end", "normuon_beta2"):
            _finite_float(f"optim.{name}", getattr(self, name), low=0.0, high=0.9999)
        _finite_float("optim.adam_eps", self.adam_eps, low=0.0)
        for name in ("muon_eq", "muon_plus"):
            _check(isinstance(getattr(self, name), bool), f"optim.{name}", "must be true or false", getattr(self, name))


@dataclass(frozen=True)
class HorizonConfig:
    """How long to train: explicit steps, else a FLOPs budget, else tokens = ratio x scaling params."""

    ratio: float = 12.0
    num_iterations: int | None = None
    target_flops: float | None = None

    def __post_init__(self) -> None:
        _finite_float("horizon.ratio", self.ratio, low=1e-6)
        _optional_positive_int("horizon.num_iterations", self.num_iterations)
        if self.target_flops is not None:
            _finite_float("horizon.target_flops", self.target_flops, low=1.0)


@dataclass(frozen=True)
class DataConfig:
    source: DataSource = "climbmix"
    data_dir: str | None = None  # None: the default cache (climbmix) or the synthetic cache
    tokenizer_dir: str | None = None  # None: <data_dir>/tokenizer (climbmix) or the synthetic one
    synthetic_seed: int = 0
    synthetic_vocab_size: int = 2048
    device_batch_size: int = 16  # sequences per device per micro-step
    total_batch_size: int | None = None  # tokens per optimizer step; None: from the depth (plan step 3)
    buffer_docs: int = 1000  # the packing buffer is topped up to >= this, 128 documents at a time
    # "record": rank r reads row groups r, r+W, ... of each shard in file order, the same every run (the
    # record's; the verifier's seeds then vary the init only). "seeded": row groups permuted per epoch by the seed.
    order: DataOrder = "record"

    def __post_init__(self) -> None:
        _choice("data.source", self.source, _DATA_SOURCES)
        _choice("data.order", self.order, _DATA_ORDERS)
        _positive_int("data.device_batch_size", self.device_batch_size)
        _optional_positive_int("data.total_batch_size", self.total_batch_size)
        _positive_int("data.buffer_docs", self.buffer_docs)
        _positive_int("data.synthetic_vocab_size", self.synthetic_vocab_size)
        _check(
            isinstance(self.synthetic_seed, int) and self.synthetic_seed >= 0,
            "data.synthetic_seed",
            "must be >= 0",
            self.synthetic_seed,
        )


@dataclass(frozen=True)
class EvalConfig:
    # False: no val_bpb and no CORE in the run, and neither the validation shard nor the eval bundle is
    # opened (the sealed verifier re-scores the checkpoint itself; `speedrun train --no-eval`)
    enabled: bool = True
    eval_every_steps: int | None = 250  # val_bpb during training; None: only at the end
    eval_tokens: int = 80 * 2**19  # size of the fixed validation slice
    core_at_end: bool = True
    core_max_per_task: int | None = None  # None: every example
    bundle: str | None = None  # a directory or zip; None: fetched (official) or built (synthetic)
    bundle_source: BundleSource = "official"

    def __post_init__(self) -> None:
        _optional_positive_int("eval.eval_every_steps", self.eval_every_steps)
        _positive_int("eval.eval_tokens", self.eval_tokens)
        _optional_positive_int("eval.core_max_per_task", self.core_max_per_task)
        _check(isinstance(self.core_at_end, bool), "eval.core_at_end", "must be true or false", self.core_at_end)
        _check(isinstance(self.enabled, bool), "eval.enabled", "must be true or false", self.enabled)
        _choice("eval.bundle_source", self.bundle_source, _BUNDLE_SOURCES)


@dataclass(frozen=True)
class CheckpointConfig:
    every_steps: int | None = None  # None: no intermediate checkpoints
    resume: bool = False  # continue from the latest checkpoint under out_dir

    def __post_init__(self) -> None:
        _optional_positive_int("checkpoint.every_steps", self.every_steps)


@dataclass(frozen=True)
class LogConfig:
    log_every_steps: int = 1
    progress: bool = True  # a tqdm bar on stderr
    wandb_project: str | None = None  # None: no wandb (a null sink)

    def __post_init__(self) -> None:
        _positive_int("log.log_every_steps", self.log_every_steps)


@dataclass(frozen=True)
class RuntimeConfig:
    device: DeviceKind = "auto"
    compile: bool = True
    fp8: bool = False
    attention: AttentionChoice = "auto"
    compile_warmup_steps: int = 3  # untimed steps before the clock starts (then state is reset)

    def __post_init__(self) -> None:
        _choice("runtime.device", self.device, _DEVICES)
        _choice("runtime.attention", self.attention, _ATTENTION)
        _check(isinstance(self.compile, bool), "runtime.compile", "must be true or false", self.compile)
        _check(isinstance(self.fp8, bool), "runtime.fp8", "must be true or false", self.fp8)
        _check(
            isinstance(self.compile_warmup_steps, int) and self.compile_warmup_steps >= 0,
            "runtime.compile_warmup_steps",
            "must be >= 0",
            self.compile_warmup_steps,
        )


@dataclass(frozen=True)
class TrainConfig:
    recipe: str
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    horizon: HorizonConfig = field(default_factory=HorizonConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    log: LogConfig = field(default_factory=LogConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    out_dir: str | None = None

    def __post_init__(self) -> None:
        _check(isinstance(self.recipe, str) and bool(self.recipe), "recipe", "must be a non-empty name", self.recipe)
        _check(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and 0 <= self.seed < 2**31,
            "seed",
            "must be an integer in [0, 2**31)",
            self.seed,
        )
        if self.data.source == "synthetic":
            _check(
                self.model.vocab_size >= self.data.synthetic_vocab_size,
                "model.vocab_size",
                f"must be >= data.synthetic_vocab_size ({self.data.synthetic_vocab_size})",
                self.model.vocab_size,
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in `RunResult.config`."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        sections = {
            "model": ModelConfig,
            "optim": OptimConfig,
            "horizon": HorizonConfig,
            "data": DataConfig,
            "eval": EvalConfig,
            "checkpoint": CheckpointConfig,
            "log": LogConfig,
            "runtime": RuntimeConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            kwargs[key] = sections[key](**value) if key in sections else value
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainConfig:
        """Replace fields by dotted name: `cfg.replace(**{"model.depth": 12, "seed": 3})`."""
        top: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            section, _, attr = name.partition(".")
            if attr:
                nested.setdefault(section, {})[attr] = value
            else:
                top[name] = value
        for section, attrs in nested.items():
            top[section] = dataclasses.replace(getattr(self, section), **attrs)
        return dataclasses.replace(self, **top)


# --- recipes ---------------------------------------------------------------------------------------


def gpt2_speedrun() -> TrainConfig:
    """The public record recipe: depth 24, tokens:params 8, fp8, one 8xH100 node."""
    return TrainConfig(
        recipe="gpt2_speedrun",
        model=ModelConfig(depth=24),
        horizon=HorizonConfig(ratio=8.0),
        data=DataConfig(source="climbmix", device_batch_size=16),
        runtime=RuntimeConfig(device="cuda", compile=True, fp8=True),
    )


def gpt2_speedrun_muoneq() -> TrainConfig:
    """The record recipe with nanochat's July 2026 Muon additions on: MuonEq and Muon+."""
    base = gpt2_speedrun()
    return base.replace(recipe="gpt2_speedrun_muoneq", **{"optim.muon_eq": True, "optim.muon_plus": True})


def d12() -> TrainConfig:
    """The quick research scale: depth 12, ratio 12, bf16."""
    return TrainConfig(
        recipe="d12",
        model=ModelConfig(depth=12),
        horizon=HorizonConfig(ratio=12.0),
        data=DataConfig(source="climbmix", device_batch_size=32),
        runtime=RuntimeConfig(device="cuda", compile=True, fp8=False),
    )


def cpu_smoke() -> TrainConfig:
    """The same code at toy scale on a 2-core CPU: synthetic corpus and bundle, about 15 s of steps.

    Many small steps (issue 22): 170 steps of 2 x 256 tokens reach the CORE that 100 steps of 16 x 256
    did, with a fifth of the tokens (12 seeds each in bench/RESULTS.md; the track's bar re-derived
    for it in contract/tracks.py).
    """
    return TrainConfig(
        recipe="cpu_smoke",
        model=ModelConfig(
            depth=4,
            aspect_ratio=32,
            head_dim=32,  # CPU: small heads keep the model tiny while keeping 4 heads
            sequence_len=256,
            vocab_size=2048,
            window_multiple_tokens=16,  # S = 64 at T = 256, so the sliding window is exercised
        ),
        optim=OptimConfig(
            lr_reference_batch_tokens=512,  # tuned at this batch: s_B = 1
            warmup_steps=10,
            momentum_warmup_steps=50,
        ),
        horizon=HorizonConfig(num_iterations=170),  # ~15 s on 2 idle cores; loss ~1.7 nats vs unigram 5.2
        data=DataConfig(source="synthetic", synthetic_vocab_size=2048, device_batch_size=2, total_batch_size=512),
        eval=EvalConfig(
            eval_every_steps=None,
            eval_tokens=8192,  # val_bpb on 8K tokens: not ranked on this track, and scored again per sealed run
            core_at_end=True,
            core_max_per_task=None,
            bundle_source="synthetic",
        ),
        runtime=RuntimeConfig(device="cpu", compile=False, fp8=False, compile_warmup_steps=0),
    )


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "gpt2_speedrun": gpt2_speedrun,
    "gpt2_speedrun_muoneq": gpt2_speedrun_muoneq,
    "d12": d12,
    "cpu_smoke": cpu_smoke,
}

# --- overrides -------------------------------------------------------------------------------------

# The pinned set of names a submission may override (flat name -> dotted field, value kind).
# Paths and the seed are not overrides: paths are the verifier's business, the seed has its own field.
_OVERRIDES: dict[str, tuple[str, str]] = {
    "depth": ("model.depth", "int"),
    "aspect_ratio": ("model.aspect_ratio", "int"),
    "head_dim": ("model.head_dim", "int"),
    "sequence_len": ("model.sequence_len", "int"),
    "window_pattern": ("model.window_pattern", "str"),
    "ratio": ("horizon.ratio", "float"),
    "num_iterations": ("horizon.num_iterations", "int?"),
    "target_flops": ("horizon.target_flops", "float?"),
    "device_batch_size": ("data.device_batch_size", "int"),
    "total_batch_size": ("data.total_batch_size", "int?"),
    "matrix_lr": ("optim.matrix_lr", "float"),
    "embedding_lr": ("optim.embedding_lr", "float"),
    "unembedding_lr": ("optim.unembedding_lr", "float"),
    "weight_decay": ("optim.weight_decay", "float"),
    "warmup_steps": ("optim.warmup_steps", "int"),
    "warmdown_ratio": ("optim.warmdown_ratio", "float"),
    "final_lr_frac": ("optim.final_lr_frac", "float"),
    "eval_every_steps": ("eval.eval_every_steps", "int?"),
    "eval_tokens": ("eval.eval_tokens", "int"),
    "core_max_per_task": ("eval.core_max_per_task", "int?"),
    "fp8": ("runtime.fp8", "bool"),
    "compile": ("runtime.compile", "bool"),
}
OVERRIDE_KEYS: frozenset[str] = frozenset(_OVERRIDES)


def override_field(key: str) -> str:
    """The dotted TrainConfig field an override key sets."""
    return _OVERRIDES[key][0]


def _coerce(key: str, kind: str, value: object) -> object:
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    if value is None:
        if optional:
            return None
        raise ValueError(f"overrides.{key}: must not be null")
    if base == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"overrides.{key}: must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"overrides.{key}: must be a number, got {value!r}")
    if base == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ValueError(f"overrides.{key}: must be an integer, got {value!r}")
    if base == "float":
        if isinstance(value, int | float):
            return float(value)
        raise ValueError(f"overrides.{key}: must be a number, got {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"overrides.{key}: must be a string, got {value!r}")
    return value


def build_config(recipe: str, overrides: Mapping[str, object]) -> TrainConfig:
    """A recipe with overrides applied and validated (OVERRIDE_KEYS plus "seed"); ValueError naming the problem."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe: unknown recipe {recipe!r}; known: {', '.join(sorted(RECIPES))}")
    base = RECIPES[recipe]()
    changes: dict[str, object] = {}
    for key, value in overrides.items():
        if key == "seed":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"seed: must be an integer, got {value!r}")
            changes["seed"] = value
            continue
        if key not in _OVERRIDES:
            raise ValueError(
                f"overrides.{key}: not an override this trainer accepts; allowed: {', '.join(sorted(OVERRIDE_KEYS))}"
            )
        dotted, kind = _OVERRIDES[key]
        changes[dotted] = _coerce(key, kind, value)
    try:
        return base.replace(**changes)
    except ValueError as exc:
        raise ValueError(f"{recipe} with overrides: {exc}") from exc


def overrides_of(config: TrainConfig) -> dict[str, object]:
    """The pinned overrides under which `config` differs from its recipe (for `RunResult.overrides`)."""
    if config.recipe not in RECIPES:
        return {}
    base = RECIPES[config.recipe]()
    out: dict[str, object] = {}
    for key, (dotted, _) in sorted(_OVERRIDES.items()):
        section, attr = dotted.split(".")
        value = getattr(getattr(config, section), attr)
        if value != getattr(getattr(base, section), attr):
            out[key] = value
    return out
