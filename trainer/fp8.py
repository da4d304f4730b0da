"""fp8 training matmuls for Hopper: tensorwise dynamic scaling through `torch._scaled_mm`.

Forward: input and weight in e4m3; backward: grad_output in e5m2 (wider range, less precision).
Each tensor gets one scale, `fp8_max / amax(tensor)`, computed every call (dynamic). Evaluation
(`model.eval()`) runs the same layer as a plain matmul in the compute dtype (bf16).
`torch._scaled_mm` also runs on CPU in recent torch, which is how the tests check this file
against `fp8_matmul_reference` (quantize, dequantize, matmul in fp32).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

E4M3 = torch.float8_e4m3fn
E5M2 = torch.float8_e5m2


def fp8_eligible(in_features: int, out_features: int) -> bool:
    """Both dims divisible by 16 and the smaller one >= 128 (below that fp8 does not pay)."""
    return in_features % 16 == 0 and out_features % 16 == 0 and min(in_features, out_features) >= 128


def quantize(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(x in fp8, inverse scale): x ~= x_fp8.float() * inverse_scale."""
    fmax = torch.finfo(dtype).max
    amax = x.detach().abs().amax().float().clamp_min(1e-12)
    scale = fmax / amax
    x_fp8 = (x.float() * scale).clamp(-fmax, fmax).to(dtype)
    return x_fp8, scale.reciprocal()


def _col_major(t: torch.Tensor) -> torch.Tensor:
    return t.t().contiguous().t()


class _Fp8Matmul(torch.autograd.Function):
    """y = x @ w.T with x [M, K], w [N, K]; all three matmuls in fp8."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        x8, x_inv = quantize(x, E4M3)
        w8, w_inv = quantize(w, E4M3)
        y = torch._scaled_mm(x8, w8.t(), scale_a=x_inv, scale_b=w_inv, out_dtype=x.dtype)
        ctx.save_for_backward(x8, x_inv, w8, w_inv)
        ctx.x_dtype, ctx.w_dtype = x.dtype, w.dtype
        return y

    @staticmethod
    def backward(ctx: Any, grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x8, x_inv, w8, w_inv = ctx.saved_tensors
        g8, g_inv = quantize(grad_y, E5M2)
        grad_x = torch._scaled_mm(g8, _col_major(w8), scale_a=g_inv, scale_b=w_inv, out_dtype=ctx.x_dtype)
        grad_w = torch._scaled_mm(
            g8.t().contiguous(), _col_major(x8), scale_a=g_inv, scale_b=x_inv, out_dtype=ctx.w_dtype
        )
        return grad_x, grad_w


def fp8_matmul(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """x [..., K] @ w[N, K].T in fp8 (training path)."""
    y = _Fp8Matmul.apply(x.reshape(-1, x.size(-1)), w)
    return y.view(*x.shape[:-1], w.size(0))


def fp8_matmul_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The same quantization, dequantized and multiplied in fp32 (the definition, for tests)."""
    x8, x_inv = quantize(x, E4M3)
    w8, w_inv = quantize(w, E4M3)
    return (x8.float() * x_inv) @ (w8.float() * w_inv).t()


class Linear(nn.Linear):
    """Bias-free Linear with fp32 master weights, cast to the input's dtype in forward (no autocast)."""

    def __init__(self, in_features: int, out_features: int, *, fp8: bool = False) -> None:
        super().__init__(in_features, out_features, bias=False)
        self.fp8 = fp8 and fp8_eligible(in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fp8 and self.training:
            return fp8_matmul(x, self.weight)
        return F.linear(x, self.weight.to(x.dtype))
