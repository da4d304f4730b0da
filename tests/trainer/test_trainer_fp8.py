"""fp8 tensorwise Linear: the fast path (torch._scaled_mm) against its definition and against fp32."""

from __future__ import annotations

import pytest
import torch

from trainer.fp8 import E4M3, Linear, fp8_eligible, fp8_matmul, fp8_matmul_reference, quantize


def test_eligibility_rule() -> None:
    assert fp8_eligible(768, 3072) and fp8_eligible(128, 128)
    assert not fp8_eligible(12, 128) and not fp8_eligible(768, 100) and not fp8_eligible(64, 4096)


def test_quantize_round_trip_is_close() -> None:
    x = torch.randn(64, 128)
    q, inv = quantize(x, E4M3)
    assert q.dtype == E4M3
    assert q.float().abs().max().item() == pytest.approx(448.0)
    assert torch.allclose(q.float() * inv, x, rtol=0.07, atol=1e-3)


def test_scaled_mm_forward_equals_the_dequantized_definition() -> None:
    torch.manual_seed(0)
    x, w = torch.randn(32, 128), torch.randn(256, 128)
    fast = fp8_matmul(x, w)
    assert torch.allclose(fast, fp8_matmul_reference(x, w), rtol=1e-4, atol=1e-4)
    exact = x @ w.t()
    assert (fast - exact).norm() / exact.norm() < 0.05


def test_backward_is_close_to_fp32() -> None:
    torch.manual_seed(1)
    x = torch.randn(2, 16, 128, requires_grad=True)
    w = torch.randn(256, 128, requires_grad=True)
    g = torch.randn(2, 16, 256)
    (fp8_matmul(x, w) * g).sum().backward()
    assert x.grad is not None and w.grad is not None
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    ((x @ w.t()) * g).sum().backward()
    assert (gx - x.grad).norm() / x.grad.norm() < 0.1
    assert (gw - w.grad).norm() / w.grad.norm() < 0.1
    assert gw.dtype == torch.float32


def test_linear_uses_fp8_in_training_and_plain_matmul_in_eval() -> None:
    torch.manual_seed(2)
    lin = Linear(128, 256, fp8=True)
    x = torch.randn(4, 128)
    train_out = lin(x)
    assert torch.allclose(train_out, fp8_matmul_reference(x, lin.weight), rtol=1e-4, atol=1e-4)
    lin.eval()
    assert torch.equal(lin(x), x @ lin.weight.t())
    assert not Linear(12, 128, fp8=True).fp8  # too small: stays in the compute dtype


@pytest.mark.gpu
def test_fp8_on_gpu_is_close_to_bf16() -> None:
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("fp8 matmuls need SM >= 89/90")
    x = torch.randn(256, 768, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(3072, 768, device="cuda")
    ref = x.float() @ w.t()
    assert ((fp8_matmul(x, w).float() - ref).norm() / ref.norm()).item() < 0.05


def test_fp8_model_trains_close_to_the_fp32_model() -> None:
    from trainer.config import build_config
    from trainer.model import GPTConfig, build_model

    cfg = build_config("cpu_smoke", {"depth": 4, "sequence_len": 32})  # d=128: block matrices qualify for fp8
    losses = {}
    for fp8 in (False, True):
        torch.manual_seed(0)
        model = build_model(
            GPTConfig.from_train_config(cfg.replace(**{"runtime.fp8": fp8})), torch.device("cpu"), torch.float32
        )
        with torch.no_grad():  # zero-initialized projections would hide the fp8 path in the first forward
            for block in model.blocks:
                block.attn.c_proj.weight.normal_(0, 0.02)
                block.mlp.c_proj.weight.normal_(0, 0.02)
        assert sum(m.fp8 for m in model.modules() if hasattr(m, "fp8")) == (24 if fp8 else 0)
        idx = torch.randint(0, 2048, (4, 32), generator=torch.Generator().manual_seed(1))
        loss = model(idx, idx)
        loss.backward()
        losses[fp8] = (loss.item(), model.blocks[0].mlp.c_fc.weight.grad.clone())
    assert losses[True][0] == pytest.approx(losses[False][0], rel=0.02)
    g8, g32 = losses[True][1], losses[False][1]
    assert ((g8 - g32).norm() / g32.norm()).item() < 0.15
