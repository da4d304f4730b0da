"""Causal sliding-window attention, the fastest backend available chosen at run time.

Backends, fastest first: ``fa3_hub`` (a prebuilt FlashAttention-3 Hopper build fetched from the
kernel hub by the ``kernels`` package: the reference's route, no compile), ``fa3`` (an installed
``flash_attn_interface``), ``fa2`` (an installed ``flash_attn``), ``flex`` (PyTorch FlexAttention
with a sliding-window block mask: any recent GPU, and the CPU), ``sdpa`` (PyTorch SDPA with a dense
mask; the CPU default, as FlexAttention runs unfused there). `select_backend` returns a `BackendChoice` (name, version, reason) that the run result records.

Tensors are in the flash-attention layout `[B, T, H, D]`. A window ``w`` is the record's convention:
each query sees **``w`` keys to its left plus itself** (flash-attention ``window_size=(w, 0)``; as a
mask ``0 <= row - col <= w``), so a window of 512 attends to 513 keys; ``w >= T - 1`` is plain causal
attention. Every backend computes the same function; tests check SDPA and FlexAttention against a
naive masked softmax on CPU, and on a GPU the flash backends against SDPA.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

BACKENDS = ("fa3_hub", "fa3", "fa2", "flex", "sdpa")
# Kernel-hub repositories holding a prebuilt FA3 (the reference's first, then the community build).
HUB_FA3_REPOS = ("varunneal/flash-attention-3", "kernels-community/flash-attn3")


@dataclass(frozen=True)
class BackendChoice:
    """The attention backend of a run: its name, the version of what implements it, and why it was chosen."""

    name: str
    version: str
    reason: str


@functools.cache
def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # an absent or broken build (wrong CUDA/arch) means: not available
        return None


def _version(dist_name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist_name)
    except PackageNotFoundError:
        return "unknown"


@functools.cache
def _hub_fa3() -> tuple[Callable[..., Any], str] | None:
    """flash_attn_func of a kernel-hub FA3 build (downloaded once into the HF cache), with its origin."""
    if _module("kernels") is None:
        return None
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from kernels import get_kernel

    for repo in HUB_FA3_REPOS:
        try:
            kernel = get_kernel(repo)
        except Exception:  # offline, or the repo has no build for this torch/CUDA: try the next
            continue
        mod = getattr(kernel, "flash_attn_interface", kernel)
        if hasattr(mod, "flash_attn_func"):
            return mod.flash_attn_func, f"{repo} (kernels {_version('kernels')})"
    return None


# backend name -> flash_attn_func, filled by `available_backends` (a plain dict: torch.compile-friendly)
_FLASH_FUNCS: dict[str, Callable[..., Any]] = {}


def _flex_available() -> bool:
    return _module("torch.nn.attention.flex_attention") is not None


def available_backends(device: torch.device) -> dict[str, BackendChoice]:
    """Backends usable on this device, fastest first, each with its version and why it is usable."""
    out: dict[str, BackendChoice] = {}
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        arch = f"sm{major}{minor}"
        if major == 9 and (hub := _hub_fa3()) is not None:
            _FLASH_FUNCS["fa3_hub"] = hub[0]
            out["fa3_hub"] = BackendChoice("fa3_hub", hub[1], f"prebuilt FlashAttention-3 for Hopper ({arch})")
        for name, module, dist_name, usable in (
            ("fa3", "flash_attn_interface", "flash_attn_3", major == 9),
            ("fa2", "flash_attn", "flash-attn", major >= 8),
        ):
            mod = _module(module) if usable else None
            if mod is not None and hasattr(mod, "flash_attn_func"):
                _FLASH_FUNCS[name] = mod.flash_attn_func
                version = getattr(mod, "__version__", None) or _version(dist_name)
                out[name] = BackendChoice(name, str(version), f"installed {module} on {arch}")
    sdpa = BackendChoice("sdpa", torch.__version__, "PyTorch SDPA with a dense window mask (always available)")
    if device.type != "cuda":  # FlexAttention runs unfused off the GPU: usable (tests, doctor), never the fastest
        out["sdpa"] = sdpa
    if _flex_available():
        where = "" if device.type == "cuda" else " (forward only off the GPU: PyTorch has no CPU backward)"
        out["flex"] = BackendChoice("flex", torch.__version__, f"FlexAttention with a sliding-window block mask{where}")
    out.setdefault("sdpa", sdpa)
    return out


def select_backend(device: torch.device, preference: str = "auto") -> BackendChoice:
    """The backend to use: `auto` picks the fastest usable one; a named one must be usable here."""
    usable = available_backends(device)
    if preference == "auto":
        first = next(iter(usable.values()))
        skipped = [b for b in BACKENDS[: BACKENDS.index(first.name)] if b not in usable]
        why = f"auto: fastest usable on {device.type}" + (f" ({', '.join(skipped)} not usable)" if skipped else "")
        return BackendChoice(first.name, first.version, f"{why}; {first.reason}")
    if preference not in BACKENDS:
        raise ValueError(f"runtime.attention: unknown backend {preference!r}; known: auto, {', '.join(BACKENDS)}")
    if preference not in usable:
        raise ValueError(f"runtime.attention: {preference} is not available on {device} (usable: {', '.join(usable)})")
    chosen = usable[preference]
    return BackendChoice(chosen.name, chosen.version, f"requested; {chosen.reason}")


def window_allows(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int) -> torch.Tensor:
    """True where a query at ``q_pos`` may see a key at ``k_pos``: ``0 <= q_pos - k_pos <= window``."""
    offset = q_pos - k_pos
    return (offset >= 0) & (offset <= window)


def sliding_window_mask(t_q: int, t_k: int, window: int, device: torch.device) -> torch.Tensor:
    """Boolean [t_q, t_k] mask, True where attention is allowed (queries are the last t_q positions)."""
    q_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    k_pos = torch.arange(t_k, device=device)[None, :]
    return window_allows(q_pos, k_pos, window)


@functools.cache
def _flex_block_mask(t: int, window: int, device: str) -> Any:
    from torch.nn.attention.flex_attention import create_block_mask

    def mask_mod(b: Any, h: Any, q_idx: torch.Tensor, kv_idx: torch.Tensor) -> torch.Tensor:
        return (q_idx >= kv_idx) & (q_idx - kv_idx <= window)

    return create_block_mask(mask_mod, B=None, H=None, Q_LEN=t, KV_LEN=t, device=device)


@functools.cache
def _flex_fn(device_type: str) -> Callable[..., Any]:
    from torch.nn.attention.flex_attention import flex_attention

    # compiled on GPUs (the fused kernel); eager elsewhere (a reference implementation, for tests)
    return torch.compile(flex_attention, dynamic=False) if device_type == "cuda" else flex_attention


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, backend: str) -> torch.Tensor:
    """Causal attention of q, k, v `[B, T, H, D]`, each query seeing `window` keys to its left and itself."""
    t = q.size(1)
    full = window >= t - 1
    if backend in ("fa3_hub", "fa3", "fa2"):
        out = _FLASH_FUNCS[backend](q, k, v, causal=True, window_size=(-1 if full else window, 0))
        return out[0] if isinstance(out, tuple) else out  # some FA3 builds also return the LSE
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if backend == "flex":
        block_mask = _flex_block_mask(t, min(window, t), str(q.device))
        y = _flex_fn(q.device.type)(qt, kt, vt, block_mask=block_mask)
    elif full:
        y = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    else:
        mask = sliding_window_mask(t, k.size(1), window, q.device)
        y = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)
    return y.transpose(1, 2)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """The definition, for tests: softmax(q k^T / sqrt(D) masked to `0 <= i - j <= window`) v."""
    t, d = q.size(1), q.size(-1)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    allowed = (j <= i) & (i - j <= window)
    scores = scores.masked_fill(~allowed.to(q.device), float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(dim=-1), v)
