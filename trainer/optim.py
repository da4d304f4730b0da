"""One optimizer object: Muon for the block matrices, AdamW for everything else; the three schedules.

Muon (per same-shape group, stacked so the orthogonalization runs batched), the record's (a825e63):
  Nesterov momentum -> Polar Express (5 steps) -> NorMuon (factored second moment, total norm
  preserved) -> cautious weight decay (`mask = u * p >= 0; p -= lr * u + lr * wd * p * mask`),
  LR x sqrt(max(1, m / n)). With ``ortho_dtype=bfloat16`` (GPUs) the record's dtype flow: the
  Nesterov gradient is cast to bf16 before Polar Express and stays bf16 through NorMuon's scaling
  and ``lr * u`` (lr and wd rounded to bf16 too); the sum with the fp32 decay term lands in fp32.
  Two later nanochat additions (July 2026, "very slight improvements"), off by default, named:
  ``muon_eq`` (row equilibration before Polar Express) and ``muon_plus`` (renormalize the
  orthogonalized update to Frobenius norm sqrt(min(m, n))); recipe ``gpt2_speedrun_muoneq``.
AdamW: decoupled weight decay, bias-corrected moments, per-group LR/betas/WD from the plan.

Multi-process: gradients are averaged inside `step()` (one async all-reduce per group and dtype,
each group updated as soon as its own reduction lands; every rank applies the identical update). Our call: this is the simplest scheme that is exactly equal
to gradient accumulation, works on gloo (CPU tests) and NCCL alike, and needs no DDP wrapper
around a model that torch.compile sees. ZeRO-2 (reduce-scatter, sharded update, all-gather)
would save optimizer memory and overlap the Muon math across ranks; at depth 24 the optimizer
state fits comfortably on an 80 GB GPU, so it is left as a speed-up for later.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from trainer.config import OptimConfig

POLAR_EXPRESS_COEFFS: tuple[tuple[float, float, float], ...] = (
    (8.1566, -22.4833, 15.8788),
    (4.0429, -2.8089, 0.5000),
    (3.8917, -2.7725, 0.5061),
    (3.2858, -2.3681, 0.4645),
    (2.3465, -1.7098, 0.4232),
)

# --- schedules -------------------------------------------------------------------------------------


def warmdown_steps(num_iterations: int, cfg: OptimConfig) -> int:
    return round(cfg.warmdown_ratio * num_iterations)


def lr_multiplier(step: int, num_iterations: int, cfg: OptimConfig) -> float:
    """(step+1)/warmup during warmup, then 1.0, then linear to final_lr_frac over the warmdown."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    wd_steps = warmdown_steps(num_iterations, cfg)
    start = num_iterations - wd_steps
    if wd_steps == 0 or step < start:
        return 1.0
    progress = min(1.0, (step - start) / wd_steps)
    return 1.0 - progress * (1.0 - cfg.final_lr_frac)


def muon_momentum(step: int, num_iterations: int, cfg: OptimConfig) -> float:
    """start -> peak over momentum_warmup_steps, then peak, then peak -> end over the warmdown.

    The warm-up is checked first (the record's order): when the warmdown starts before the warm-up
    ends (short runs), the warm-up wins until it is over. N=100: step 35 gives 0.85 + 35/400 * 0.12.
    """
    if step < cfg.momentum_warmup_steps:
        frac = step / cfg.momentum_warmup_steps
        return cfg.momentum_start + frac * (cfg.momentum_peak - cfg.momentum_start)
    wd_steps = warmdown_steps(num_iterations, cfg)
    start = num_iterations - wd_steps
    if wd_steps > 0 and step >= start:
        progress = min(1.0, (step - start) / wd_steps)
        return cfg.momentum_peak + progress * (cfg.momentum_end - cfg.momentum_peak)
    return cfg.momentum_peak


def muon_weight_decay_multiplier(step: int, num_iterations: int) -> float:
    """Cosine from 1 to 0 over the run."""
    return 0.5 * (1.0 + math.cos(math.pi * min(step, num_iterations) / num_iterations))


# --- Muon building blocks (batched over a leading dim) -------------------------------------------


def row_equilibrate(g: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each row to the mean row norm of its matrix: g [..., m, n]."""
    rn = g.norm(dim=-1, keepdim=True)
    return g * (rn.mean(dim=-2, keepdim=True) / rn.clamp_min(eps))


def polar_express(g: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Approximate the orthogonal polar factor of g [..., m, n] (5 Polar Express iterations), in ``dtype``.

    The result stays in ``dtype`` (the record keeps the bf16 factor through to the update)."""
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    x = x / (x.norm(dim=(-2, -1), keepdim=True) * 1.01 + 1e-6)
    shape = x.shape
    x = x.reshape(-1, *shape[-2:])
    for a, b, c in POLAR_EXPRESS_COEFFS:
        gram = x @ x.mT
        # b * gram + c * gram @ gram and a * x + poly @ x, each one fused GEMM (no elementwise passes:
        # about a fifth of the optimizer's time on the CPU recipe's small matrices)
        poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.baddbmm(x, poly, x, beta=a)
    x = x.reshape(shape)
    if tall:
        x = x.mT
    return x


def renormalize(u: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Scale each matrix to Frobenius norm sqrt(min(m, n))."""
    target = math.sqrt(min(u.size(-2), u.size(-1)))
    return u * (target / u.norm(dim=(-2, -1), keepdim=True).clamp_min(eps))


def normuon(u: torch.Tensor, second_moment: torch.Tensor, beta2: float, eps: float = 1e-10) -> torch.Tensor:
    """Factored second moment (per row when m >= n, per column otherwise), total norm preserved.

    `second_moment` is updated in place: EMA of the mean square along the reduced dimension. The
    scale is computed in fp32 (or wider) and applied in ``u``'s dtype, as the record does in bf16.
    """
    red_dim = -1 if u.size(-2) >= u.size(-1) else -2
    size = u.size(red_dim)
    mean_sq = u.to(torch.promote_types(u.dtype, torch.float32)).square().mean(dim=red_dim, keepdim=True)
    second_moment.lerp_(mean_sq.to(second_moment.dtype), 1.0 - beta2)
    step = second_moment.clamp_min(eps).rsqrt()
    before = (mean_sq.sum(dim=(-2, -1), keepdim=True) * size).sqrt()
    after = (mean_sq * size * step.to(mean_sq.dtype).square()).sum(dim=(-2, -1), keepdim=True).sqrt()
    scale = step * (before / after.clamp_min(eps))
    return u * scale.to(u.dtype)


def shape_lr_factor(m: int, n: int) -> float:
    return math.sqrt(max(1.0, m / n))


# --- the optimizer ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupSpec:
    name: str
    kind: str  # "muon" or "adamw"
    params: list[nn.Parameter]
    lr: float
    weight_decay: float
    betas: tuple[float, float] = (0.9, 0.95)


class MuonAdamW(torch.optim.Optimizer):
    """Muon + AdamW in one object. Each param group has `kind`, `initial_lr`, `initial_weight_decay`."""

    def __init__(
        self,
        specs: Iterable[GroupSpec],
        *,
        adam_eps: float = 1e-10,
        normuon_beta2: float = 0.9,
        ortho_dtype: torch.dtype = torch.float32,
        muon_eq: bool = False,
        muon_plus: bool = False,
    ) -> None:
        groups: list[dict[str, Any]] = []
        for spec in specs:
            if spec.kind not in ("muon", "adamw"):
                raise ValueError(f"group {spec.name}: unknown kind {spec.kind!r}")
            if spec.kind == "muon":
                by_shape: dict[tuple[int, ...], list[nn.Parameter]] = {}
                for p in spec.params:
                    if p.ndim != 2:
                        raise ValueError(f"group {spec.name}: Muon needs 2-D matrices, got shape {tuple(p.shape)}")
                    by_shape.setdefault(tuple(p.shape), []).append(p)
                for shape, params in sorted(by_shape.items()):
                    groups.append(self._group(spec, params, name=f"{spec.name}{list(shape)}", momentum=0.95))
            else:
                groups.append(self._group(spec, spec.params, name=spec.name))
        super().__init__(groups, defaults={})
        self.adam_eps = adam_eps
        self.normuon_beta2 = normuon_beta2
        self.ortho_dtype = ortho_dtype
        self.muon_eq = muon_eq
        self.muon_plus = muon_plus

    @staticmethod
    def _group(spec: GroupSpec, params: list[nn.Parameter], *, name: str, momentum: float = 0.0) -> dict[str, Any]:
        return {
            "params": params,
            "name": name,
            "kind": spec.kind,
            "lr": spec.lr,
            "initial_lr": spec.lr,
            "weight_decay": spec.weight_decay,
            "initial_weight_decay": spec.weight_decay,
            "betas": spec.betas,
            "momentum": momentum,
        }

    def apply_schedules(self, step: int, num_iterations: int, cfg: OptimConfig) -> dict[str, float]:
        """Set every group's LR (and Muon momentum/WD) for this step; returns the multipliers."""
        lrm = lr_multiplier(step, num_iterations, cfg)
        mom = muon_momentum(step, num_iterations, cfg)
        wdm = muon_weight_decay_multiplier(step, num_iterations)
        for group in self.param_groups:
            group["lr"] = group["initial_lr"] * lrm
            if group["kind"] == "muon":
                group["momentum"] = mom
                group["weight_decay"] = group["initial_weight_decay"] * wdm
        return {"lr_scale": lrm, "muon_momentum": mom, "muon_wd_scale": wdm}

    @torch.no_grad()
    def _launch_gradient_averaging(self) -> list[Any]:
        """Start one async all-reduce (sum) per group and dtype; `_finish` divides and copies back."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return [None] * len(self.param_groups)
        pending: list[Any] = []
        for group in self.param_groups:
            by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
            buckets = []
            for grads in by_dtype.values():
                flat = torch.cat([g.reshape(-1) for g in grads])
                buckets.append((grads, flat, dist.all_reduce(flat, op=dist.ReduceOp.SUM, async_op=True)))
            pending.append(buckets)
        return pending

    @staticmethod
    @torch.no_grad()
    def _finish_gradient_averaging(buckets: Any) -> None:
        if buckets is None:
            return
        world = dist.get_world_size()
        for grads, flat, work in buckets:
            work.wait()
            flat.div_(world)
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    @torch.no_grad()
    def average_gradients(self) -> None:
        """All-reduce the gradients across processes (mean); a no-op in a single process."""
        for buckets in self._launch_gradient_averaging():
            self._finish_gradient_averaging(buckets)

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        if closure is not None:
            raise ValueError("MuonAdamW.step: closures are not supported")
        # All reductions start at once; each group waits only for its own before its update, so the
        # communication of later groups overlaps the (Muon) math of earlier ones.
        pending = self._launch_gradient_averaging()
        for group, buckets in zip(self.param_groups, pending, strict=True):
            self._finish_gradient_averaging(buckets)
            if group["kind"] == "muon":
                self._muon_step(group)
            else:
                self._adamw_step(group)

    def _muon_step(self, group: dict[str, Any]) -> None:
        params: list[nn.Parameter] = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        state = self.state[params[0]]
        dtype = torch.promote_types(params[0].dtype, torch.float32)  # fp32 math for fp32/bf16 weights
        grads = torch.stack([p.grad for p in params]).to(dtype)  # type: ignore[misc]
        m, n = grads.shape[-2:]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grads)
            red_shape = (len(params), m, 1) if m >= n else (len(params), 1, n)
            state["second_moment"] = torch.zeros(red_shape, dtype=dtype, device=grads.device)
        buf: torch.Tensor = state["momentum_buffer"]
        momentum = group["momentum"]
        buf.lerp_(grads, 1.0 - momentum)
        update = grads.lerp(buf, momentum)  # Nesterov
        if self.muon_eq:
            update = row_equilibrate(update)
        update = polar_express(update, self.ortho_dtype)  # stays in ortho_dtype (bf16 on GPUs) to the update
        if self.muon_plus:
            update = renormalize(update)
        update = normuon(update, state["second_moment"], self.normuon_beta2)
        # lr and wd as tensors of the update's dtype (the record rounds them to bf16 on GPUs)
        lr = torch.tensor(group["lr"] * shape_lr_factor(m, n), dtype=update.dtype, device=update.device)
        wd = torch.tensor(group["weight_decay"], dtype=update.dtype, device=update.device)
        stacked = torch.stack([p.detach() for p in params]).to(dtype)
        mask = (update * stacked) >= 0
        new = stacked - (lr * update + lr * wd * stacked * mask)
        for p, value in zip(params, new.unbind(0), strict=True):
            p.copy_(value)

    def _adamw_step(self, group: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr, wd, eps = group["lr"], group["weight_decay"], self.adam_eps
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = 0
                dtype = torch.promote_types(p.dtype, torch.float32)
                state["exp_avg"] = torch.zeros_like(p, dtype=dtype)
                state["exp_avg_sq"] = torch.zeros_like(p, dtype=dtype)
            state["step"] += 1
            t = state["step"]
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            grad = p.grad.to(exp_avg.dtype)
            exp_avg.lerp_(grad, 1.0 - beta1)
            exp_avg_sq.lerp_(grad.square(), 1.0 - beta2)
            denom = (exp_avg_sq / (1.0 - beta2**t)).sqrt().add_(eps)
            value = p.to(exp_avg.dtype) * (1.0 - lr * wd) - (lr / (1.0 - beta1**t)) * exp_avg / denom
            p.copy_(value)


def build_optimizer(
    groups: dict[str, list[nn.Parameter]],
    learning_rates: dict[str, float],
    weight_decays: dict[str, float],
    adam_betas: dict[str, tuple[float, float]],
    cfg: OptimConfig,
    *,
    ortho_dtype: torch.dtype = torch.float32,
) -> MuonAdamW:
    """The optimizer for a model's `param_groups()` with the plan's LRs/WDs ("matrices" is Muon)."""
    specs = []
    for name, params in groups.items():
        if name not in learning_rates:
            raise ValueError(f"optimizer: no learning rate for group {name!r}")
        kind = "muon" if name == "matrices" else "adamw"
        betas = adam_betas.get(name, (0.9, 0.95))
        specs.append(GroupSpec(name, kind, params, learning_rates[name], weight_decays[name], tuple(betas)))  # type: ignore[arg-type]
    return MuonAdamW(
        specs,
        adam_eps=cfg.adam_eps,
        normuon_beta2=cfg.normuon_beta2,
        ortho_dtype=ortho_dtype,
        muon_eq=cfg.muon_eq,
        muon_plus=cfg.muon_plus,
    )
