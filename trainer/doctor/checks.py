"""The doctor's checks that run anywhere (CPU or GPU): stack, attention agreement, a small model's
training throughput, the loader, CORE examples/s. Each returns a `Check`; none raises."""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from trainer.config import TrainConfig
    from trainer.data.tokenizer import Tokenizer

OK, FAIL, SKIP = "ok", "fail", "skip"


@dataclass
class Check:
    name: str
    status: str  # ok | fail | skip
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "detail": self.detail, "figures": self.figures}


def guarded(name: str, fn: Callable[[], Check]) -> Check:
    """Run a check; an exception becomes a failed check naming it (the doctor never crashes half-way)."""
    try:
        return fn()
    except Exception as exc:
        return Check(name, FAIL, f"{type(exc).__name__}: {exc}"[:500])


def no_gpu(name: str, what: str) -> Check:
    return Check(name, SKIP, f"no GPU: {what}")


def _sync(device: torch.device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --- stack ------------------------------------------------------------------------------------------


def check_stack() -> Check:
    import torch

    from trainer.hardware import _nvidia_driver, software_versions

    figures: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpu_count": os.cpu_count(),
        "gpus": [],
        "driver": None,
        "nccl": None,
        "packages": software_versions(),
    }
    if torch.cuda.is_available():
        figures["gpus"] = [
            {"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1), "sm": f"{p.major}{p.minor}"}
            for p in (torch.cuda.get_device_properties(i) for i in range(torch.cuda.device_count()))
        ]
        figures["driver"] = _nvidia_driver()
        figures["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        names = sorted({g["name"] for g in figures["gpus"]})
        return Check("stack", OK, f"{len(figures['gpus'])} x {', '.join(names)}; torch {torch.__version__}", figures)
    return Check("stack", OK, f"CPU only ({os.cpu_count()} cores); torch {torch.__version__}", figures)


# --- attention --------------------------------------------------------------------------------------


def check_attention(device: torch.device, quick: bool) -> Check:
    """Every usable backend against SDPA, forward (and backward where the backend has one), per window."""
    import torch

    from trainer.attention import attend, available_backends

    if device.type == "cuda":  # the record's shapes: T=2048, 12 heads of 128 at depth 24, windows 512 and full
        b, t, h, d, dtype, fwd_tol, bwd_tol = 2, 2048, 12, 128, torch.bfloat16, 2e-2, 5e-2
    else:
        b, t, h, d, dtype, fwd_tol, bwd_tol = 1, 128 if quick else 512, 2, 32, torch.float32, 1e-4, 1e-4
    windows = (t // 4, t)
    usable = available_backends(device)
    warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")  # CPU: unfused, known
    figures: dict[str, Any] = {"shape": [b, t, h, d], "dtype": str(dtype), "windows": list(windows), "backends": {}}
    bad = []
    gen = torch.Generator(device=device).manual_seed(0)
    for w in windows:
        q, k, v = (torch.randn(b, t, h, d, device=device, dtype=dtype, generator=gen) for _ in range(3))
        grad = torch.randn(b, t, h, d, device=device, dtype=dtype, generator=gen)
        backward = device.type == "cuda"
        qs, ks, vs = (x.clone().requires_grad_(backward) for x in (q, k, v))
        ref = attend(qs, ks, vs, w, "sdpa")
        ref_grads = torch.autograd.grad(ref, (qs, ks, vs), grad) if backward else ()
        for name in usable:
            if name == "sdpa":
                continue
            out = attend(qs, ks, vs, w, name)
            entry: dict[str, Any] = {"version": usable[name].version}
            entry["fwd_max_abs_diff"] = float((out.float() - ref.float()).abs().max())
            ok = entry["fwd_max_abs_diff"] <= fwd_tol
            if backward:
                grads = torch.autograd.grad(out, (qs, ks, vs), grad)
                entry["bwd_max_abs_diff"] = max(
                    float((a.float() - r.float()).abs().max()) for a, r in zip(grads, ref_grads, strict=True)
                )
                ok = ok and entry["bwd_max_abs_diff"] <= bwd_tol
            figures["backends"].setdefault(name, {})[f"window_{w}"] = entry
            if not ok:
                bad.append(f"{name} at window {w}")
    others = [n for n in usable if n != "sdpa"]
    if device.type == "cuda" and "flex" in usable:  # FlexAttention inside a compiled model (its block masks)
        config = small_config(quick=True).replace(**{"runtime.attention": "flex", "runtime.compile": True})
        try:
            figs = measure_training(config, device, steps=2)
            figures["flex_compiled_training_tokens_per_second"] = round(figs.tokens_per_second, 1)
        except Exception as exc:
            bad.append(f"flex inside a compiled model ({type(exc).__name__}: {str(exc)[:200]})")
    if bad:
        return Check("attention", FAIL, f"disagrees with SDPA: {', '.join(bad)}", figures)
    what = "forward and backward" if device.type == "cuda" else "forward (no CPU backward in FlexAttention)"
    return Check("attention", OK, f"{', '.join(others) or 'no other backend'} equal SDPA, {what}", figures)


# --- a model's training throughput -------------------------------------------------------------------


@dataclass
class TrainingFigures:
    tokens_per_second: float
    step_seconds: float
    peak_memory_gib: float
    losses: list[float]
    first_step_seconds: float


def measure_training(config: TrainConfig, device: torch.device, steps: int, *, warmup: int = 1) -> TrainingFigures:
    """Train ``config``'s model on fixed random batches: untimed warm-up steps, then ``steps`` timed ones."""
    import torch

    from trainer.attention import select_backend
    from trainer.model import GPTConfig, build_model
    from trainer.optim import build_optimizer
    from trainer.plan import resolve
    from trainer.train import compute_dtype_for

    plan = resolve(config, 1)
    dtype = compute_dtype_for(device)
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(config), device, dtype)
    model.attention_backend = select_backend(device, config.runtime.attention).name
    opt = build_optimizer(
        model.param_groups(), plan.learning_rates, plan.weight_decays, plan.adam_betas, config.optim, ortho_dtype=dtype
    )
    step_model: Any = torch.compile(model, dynamic=False) if config.runtime.compile else model
    b, t, vocab = config.data.device_batch_size, config.model.sequence_len, config.model.vocab_size
    gen = torch.Generator().manual_seed(1)
    rows = [torch.randint(0, vocab, (b, t + 1), generator=gen) for _ in range(warmup + steps)]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    losses: list[float] = []
    first = 0.0
    start = 0.0
    for i, row in enumerate(rows):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        t0 = time.perf_counter()
        x, y = row[:, :-1].to(device), row[:, 1:].to(device)
        loss = step_model(x, y)
        loss.backward()
        opt.step()
        model.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if i == 0:
            first = time.perf_counter() - t0
    _sync(device)
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # the process's, KiB on Linux
    return TrainingFigures(b * t * steps / seconds, seconds / steps, round(peak, 3), losses, first)


def small_config(quick: bool) -> TrainConfig:
    from trainer.config import cpu_smoke

    base = cpu_smoke()
    if quick:
        return base.replace(**{"model.depth": 2, "model.sequence_len": 128, "data.device_batch_size": 4})
    return base


def check_small_model(device: torch.device, quick: bool) -> tuple[Check, float]:
    """tokens/s and peak memory of the cpu_smoke model (smaller with --quick); returns the tokens/s too."""
    from trainer.plan import dims_for, flops_per_token

    config = small_config(quick)
    figs = measure_training(config, device, steps=2 if quick else 5)
    d = dims_for(config)
    figures = {
        "depth": d.n_layer,
        "device_batch": config.data.device_batch_size,
        "sequence_len": d.sequence_len,
        "tokens_per_second": round(figs.tokens_per_second, 1),
        "step_seconds": round(figs.step_seconds, 4),
        "peak_memory_gib": figs.peak_memory_gib,
        "flops_per_second": round(flops_per_token(d) * figs.tokens_per_second, 1),
        "memory_note": "process max RSS" if device.type == "cpu" else "max allocated",
    }
    detail = f"depth {d.n_layer}: {figs.tokens_per_second:,.0f} tokens/s, peak {figs.peak_memory_gib} GiB"
    return Check("small_model", OK, detail, figures), figs.tokens_per_second


# --- loader ------------------------------------------------------------------------------------------


def scratch_dataset(root: Path, quick: bool) -> tuple[Path, Tokenizer]:
    """A small synthetic corpus and a tokenizer trained on it, under ``root`` (a temporary directory)."""
    from trainer.data.prepare import train_tokenizer_on_shards
    from trainer.data.synth import write_synthetic_corpus

    data = root / "data"
    write_synthetic_corpus(data, seed=0, num_shards=3, docs_per_shard=300 if quick else 2100)
    return data, train_tokenizer_on_shards(data, vocab_size=512, progress=False)


def check_loader(
    data: Path, tokenizer: Tokenizer, device: torch.device, needed_tokens_per_second: float | None, quick: bool
) -> Check:
    """The loader's tokens/s (packing + tokenizing, pinned copies on GPUs) against what one device consumes."""
    from trainer.data.loader import DataLoader

    seq_len, batch = (256, 8) if quick else (2048, 16)
    n = 40 if quick else 30  # past the prefetched row groups: the steady state, tokenizing included
    with DataLoader(data, tokenizer, batch_size=batch, seq_len=seq_len, device=device, buffer_docs=200) as loader:
        next(loader)  # the first row groups: thread start-up
        t0 = time.perf_counter()
        for _ in range(n):
            next(loader)
        _sync(device)
        seconds = time.perf_counter() - t0
    tps = batch * seq_len * n / seconds
    figures: dict[str, Any] = {
        "tokens_per_second": round(tps, 1),
        "batch": [batch, seq_len],
        "pinned": device.type == "cuda",
        "needed_tokens_per_second": None if needed_tokens_per_second is None else round(needed_tokens_per_second, 1),
    }
    if needed_tokens_per_second is None:
        return Check("loader", OK, f"{tps:,.0f} tokens/s", figures)
    ratio = tps / needed_tokens_per_second
    figures["headroom"] = round(ratio, 2)
    status = OK if ratio >= 1.0 else FAIL
    return Check("loader", status, f"{tps:,.0f} tokens/s = {ratio:.1f}x what one device trains on", figures)


# --- CORE --------------------------------------------------------------------------------------------


def check_core(root: Path, tokenizer: Tokenizer, device: torch.device, config: TrainConfig, quick: bool) -> Check:
    """CORE examples/s of ``config``'s model (random weights) on a synthetic bundle (the batched scorer)."""
    import torch

    from trainer.evaluation.bundle import load_bundle, write_synthetic_bundle
    from trainer.evaluation.core import evaluate_tasks
    from trainer.model import GPTConfig, build_model
    from trainer.train import compute_dtype_for

    bundle = load_bundle(write_synthetic_bundle(root / "bundle"))
    labels = ["copa", "winograd", "lambada_openai", "hellaswag_zeroshot"] if quick else None
    per_task = 8 if quick else 20
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(config), device, compute_dtype_for(device)).eval()
    t0 = time.perf_counter()
    outcomes = evaluate_tasks(
        model, tokenizer, bundle, device=device, labels=labels, max_per_task=per_task, progress=False
    )
    _sync(device)
    seconds = time.perf_counter() - t0
    examples = sum(o.n for o in outcomes)
    figures = {
        "examples": examples,
        "tasks": len(outcomes),
        "seconds": round(seconds, 3),
        "examples_per_second": round(examples / seconds, 2),
        "depth": config.model.depth,
        "bundle": "synthetic (prompts shorter than the real bundle's)",
        "full_run_examples": 91_037,
    }
    eta = 91_037 / (examples / seconds)
    detail = f"{examples / seconds:,.1f} examples/s at depth {config.model.depth} (~{eta / 60:,.0f} min for 91,037)"
    return Check("core", OK, detail, figures)
