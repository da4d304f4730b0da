"""Causal sliding-window attention: FA3 (Hopper) -> FA2 -> PyTorch SDPA, chosen at run time.

Tensors are in the flash-attention layout `[B, T, H, D]`. A window of `w` tokens means each query
sees itself and the `w - 1` tokens before it (`window >= T` is plain causal attention). All three
backends compute the same function; tests check SDPA against a naive masked softmax, and on a GPU
the flash backends against SDPA.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

BACKENDS = ("fa3", "fa2", "sdpa")


@functools.cache
def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # an absent or broken build (wrong CUDA/arch) means: not available
        return None


# backend name -> flash_attn_func, filled by `available_backends` (a plain dict: torch.compile-friendly)
_FLASH_FUNCS: dict[str, Callable[..., Any]] = {}


def available_backends(device: torch.device) -> list[str]:
    """Backends usable on this device, fastest first."""
    out: list[str] = []
    if device.type == "cuda":
        major, _ = torch.cuda.get_device_capability(device)
        for name, module, usable in (("fa3", "flash_attn_interface", major == 9), ("fa2", "flash_attn", major >= 8)):
            mod = _module(module) if usable else None
            if mod is not None and hasattr(mod, "flash_attn_func"):
                _FLASH_FUNCS[name] = mod.flash_attn_func
                out.append(name)
    out.append("sdpa")
    return out


def select_backend(device: torch.device, preference: str = "auto") -> str:
    """The backend to use: `auto` picks the fastest available; a named one must be available."""
    usable = available_backends(device)
    if preference == "auto":
        return usable[0]
    if preference not in BACKENDS:
        raise ValueError(f"runtime.attention: unknown backend {preference!r}; known: auto, {', '.join(BACKENDS)}")
    if preference not in usable:
        raise ValueError(f"runtime.attention: {preference} is not available on {device} (usable: {', '.join(usable)})")
    return preference


def sliding_window_mask(t_q: int, t_k: int, window: int, device: torch.device) -> torch.Tensor:
    """Boolean [t_q, t_k] mask, True where attention is allowed (queries are the last t_q positions)."""
    q_pos = torch.arange(t_k - t_q, t_k, device=device)[:, None]
    k_pos = torch.arange(t_k, device=device)[None, :]
    return (k_pos <= q_pos) & (q_pos - k_pos < window)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, backend: str) -> torch.Tensor:
    """Causal attention of q, k, v `[B, T, H, D]` with a sliding window of `window` keys; returns `[B, T, H, D]`."""
    t = q.size(1)
    if backend in ("fa3", "fa2"):
        out = _FLASH_FUNCS[backend](q, k, v, causal=True, window_size=(window - 1 if window < t else -1, 0))
        return out[0] if isinstance(out, tuple) else out  # some FA3 builds also return the LSE
    qt, kt, vt = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    if window >= t:
        y = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
    else:
        mask = sliding_window_mask(t, k.size(1), window, q.device)
        y = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mask)
    return y.transpose(1, 2)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int) -> torch.Tensor:
    """The definition, for tests: softmax(q k^T / sqrt(D) masked to the window) v, in fp64-friendly ops."""
    t, d = q.size(1), q.size(-1)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / d**0.5
    i = torch.arange(t)[:, None]
    j = torch.arange(t)[None, :]
    allowed = (j <= i) & (i - j < window)
    scores = scores.masked_fill(~allowed.to(q.device), float("-inf"))
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(dim=-1), v)
