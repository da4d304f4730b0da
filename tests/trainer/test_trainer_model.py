"""The GPT: shapes, init, softcap, causality/padding, the per-token loss contract, attention backends."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from trainer.attention import attend, naive_attention, select_backend, sliding_window_mask
from trainer.config import build_config
from trainer.model import GPT, GPTConfig, TokenTree, apply_rotary, build_model


def tiny(depth: int = 3, **overrides: object) -> GPT:
    cfg = build_config("cpu_smoke", {"depth": depth, "sequence_len": 64, **overrides})
    torch.manual_seed(0)
    return build_model(GPTConfig.from_train_config(cfg), torch.device("cpu"), torch.float32)


def test_logits_and_loss_shapes() -> None:
    model = tiny()
    idx = torch.randint(0, 2048, (2, 16))
    logits = model(idx)
    assert logits.shape == (2, 16, 2048) and logits.dtype == torch.float32
    per_token = model(idx, idx, loss_reduction="none")
    assert per_token.shape == (2, 16)
    assert model(idx, idx).item() == pytest.approx(per_token.mean().item(), rel=1e-5)


def test_ignore_index_drops_targets() -> None:
    model = tiny()
    idx = torch.randint(0, 2048, (1, 8))
    targets = idx.clone()
    targets[0, 4:] = -1
    per_token = model(idx, targets, loss_reduction="none")
    assert torch.all(per_token[0, 4:] == 0)
    assert model(idx, targets).item() == pytest.approx(per_token[0, :4].mean().item(), rel=1e-5)


def test_logits_are_softcapped() -> None:
    model = tiny()
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)
    assert model(torch.randint(0, 2048, (1, 8))).abs().max().item() <= 15.0


def test_init_scheme() -> None:
    model = tiny(depth=4)
    blocks = list(model.blocks)
    assert all(torch.all(b.attn.c_proj.weight == 0) and torch.all(b.mlp.c_proj.weight == 0) for b in blocks)
    assert torch.allclose(model.resid_lambdas, torch.linspace(1.15, 1.05, 4))
    assert torch.allclose(model.x0_lambdas, torch.linspace(0.20, 0.05, 4))
    assert model.smear_lambda.item() == 0 and model.backout_lambda.item() == pytest.approx(0.2)
    s = (3 / 128) ** 0.5
    assert blocks[0].attn.c_q.weight.abs().max().item() <= s
    assert blocks[0].mlp.c_fc.weight.abs().max().item() <= 0.4 * s
    assert 0.7 < model.wte.weight.std().item() < 0.9
    assert [b.attn.ve_gate is not None for b in blocks] == [False, True, False, True]


def test_rope_covers_ten_sequence_lengths() -> None:
    model = tiny()
    assert model.rope_cos.size(1) == 10 * model.config.sequence_len
    long = torch.randint(0, 2048, (1, 5 * model.config.sequence_len))
    assert model(long).shape[1] == long.shape[1]


def test_rotary_preserves_norm_and_is_relative() -> None:
    model = tiny()
    q = torch.randn(1, 8, 2, 32)
    cos, sin = model.rope_cos[:, :8], model.rope_sin[:, :8]
    rq = apply_rotary(q, cos, sin)
    assert torch.allclose(rq.norm(dim=-1), q.norm(dim=-1), atol=1e-5)
    # the dot product of a rotated pair depends only on the offset
    a, b = torch.randn(32), torch.randn(32)
    x = torch.stack([a, b, a, b, a, b, a, b]).view(1, 8, 1, 32)
    r = apply_rotary(x, cos, sin)[0, :, 0]
    assert torch.allclose(r[0] @ r[1], r[2] @ r[3], atol=1e-4)


def test_right_padding_keeps_real_positions() -> None:
    model = tiny().eval()
    row = torch.randint(0, 2048, (1, 12))
    padded = torch.cat([row, torch.zeros(1, 20, dtype=torch.long)], dim=1)
    with torch.no_grad():
        assert torch.allclose(model(row), model(padded)[:, :12], atol=1e-5)


def test_future_tokens_do_not_change_the_past() -> None:
    model = tiny().eval()
    a = torch.randint(0, 2048, (1, 40))
    b = a.clone()
    b[0, 30:] = (b[0, 30:] + 1) % 2048
    with torch.no_grad():
        assert torch.allclose(model(a)[:, :30], model(b)[:, :30], atol=1e-5)


def test_model_takes_window_sizes_from_the_pattern() -> None:
    model = tiny(depth=1, window_pattern="S").eval()  # one layer: last layer is full
    assert model.config.window_sizes == (64,)
    model2 = tiny(depth=2, window_pattern="S").eval()
    assert model2.config.window_sizes == (16, 64)


def test_meta_construction_then_init_is_deterministic() -> None:
    a, b = tiny(), tiny()
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), na


def test_building_a_model_does_not_import_dynamo_or_symbolic_shapes() -> None:
    """The scorer's calibration and the verifier's model process build a model and never train: the
    embedding tables' default init on the meta device imported torch._dynamo (~1 s of CPU each), and
    ``to_empty`` torch.fx's symbolic shapes (~0.4 s)."""
    code = (
        "import sys, torch\n"
        "from trainer.config import build_config\n"
        "from trainer.model import GPTConfig, build_model\n"
        "build_model(GPTConfig.from_train_config(build_config('cpu_smoke', {})), torch.device('cpu'), torch.float32)\n"
        "print(sorted({'torch._dynamo', 'torch.fx.experimental.symbolic_shapes'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.strip() == "[]"


def test_bf16_compute_keeps_fp32_masters_and_bf16_embeddings() -> None:
    cfg = build_config("cpu_smoke", {"depth": 2, "sequence_len": 32})
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(cfg), torch.device("cpu"), torch.bfloat16)
    assert model.wte.weight.dtype == torch.bfloat16
    assert model.blocks[0].attn.c_q.weight.dtype == torch.float32
    idx = torch.randint(0, 2048, (2, 16))
    loss = model(idx, idx)
    assert loss.dtype == torch.float32
    loss.backward()
    assert model.blocks[0].attn.c_q.weight.grad is not None


# --- attention -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("t", "window"), [(32, 32), (32, 8), (33, 1), (64, 17)])
def test_sdpa_sliding_window_equals_naive(t: int, window: int) -> None:
    torch.manual_seed(t + window)
    q, k, v = (torch.randn(2, t, 3, 16, dtype=torch.float64) for _ in range(3))
    assert torch.allclose(attend(q, k, v, window, "sdpa"), naive_attention(q, k, v, window), atol=1e-10)


def test_window_mask_definition() -> None:
    # the record's convention: window 2 = two keys to the left plus the query itself (0 <= row - col <= 2)
    m = sliding_window_mask(5, 5, 2, torch.device("cpu"))
    expected = torch.tensor(
        [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool
    )
    assert torch.equal(m, expected)


def test_short_window_sees_513_keys_at_the_record_shape() -> None:
    m = sliding_window_mask(2048, 2048, 512, torch.device("cpu"))
    assert int(m.sum(dim=1).max()) == 513 and int(m.sum(dim=1)[600]) == 513 and int(m.sum(dim=1)[511]) == 512


def test_window_convention_changes_logits_only_from_the_first_query_with_w_plus_2_candidates() -> None:
    # window 4: queries 0..4 see every earlier key either way; query 5 is the first with 6 candidates, of which
    # the record's window keeps 5 (the old `w - 1` convention kept 4)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 8, 2, 8, dtype=torch.float64) for _ in range(3))
    causal = naive_attention(q, k, v, 8)
    ours = attend(q, k, v, 4, "sdpa")
    assert torch.allclose(ours[:, :5], causal[:, :5], atol=1e-12)
    assert not torch.allclose(ours[:, 5], causal[:, 5], atol=1e-6)
    # query 5 with the record's window: the softmax over keys 1..5, computed by hand
    scores = torch.einsum("hd,khd->hk", q[0, 5], k[0, 1:6]) / 8**0.5
    by_hand = torch.einsum("hk,khd->hd", scores.softmax(-1), v[0, 1:6])
    assert torch.allclose(ours[0, 5], by_hand, atol=1e-12)


def test_model_logits_follow_the_record_window_from_query_w_plus_1() -> None:
    # depth 3 at T=64: windows 16, 16, 64. Against the same weights with every window full: queries 0..16
    # (at most 17 candidates: 16 to the left plus itself) are unchanged; query 17, the first with 18
    # candidates, differs. (Under the old "w - 1 before it" convention query 16 already differed.)
    import dataclasses

    model = tiny(depth=3).eval()
    with torch.no_grad():  # jitter the zero-initialized projections so every layer contributes
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    full = tiny(depth=3).eval()
    full.load_state_dict(model.state_dict())
    full.config = dataclasses.replace(full.config, window_sizes=(64, 64, 64))
    assert model.config.window_sizes == (16, 16, 64)
    idx = torch.randint(0, 2048, (1, 40), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = model(idx), full(idx)
    assert torch.allclose(a[:, :17], b[:, :17], rtol=0, atol=1e-6)  # bit-identical here; kernels may round apart
    assert (a[:, 17] - b[:, 17]).abs().max() > 1e-4


@pytest.mark.parametrize(("t", "window"), [(32, 8), (33, 1), (64, 17), (40, 39), (40, 100)])
def test_flex_attention_equals_sdpa_on_cpu(t: int, window: int) -> None:
    # forward only: PyTorch runs FlexAttention's backward on GPUs only (the GPU test checks gradients)
    torch.manual_seed(t * window)
    q, k, v = (torch.randn(2, t, 2, 16) for _ in range(3))
    assert torch.allclose(attend(q, k, v, window, "flex"), naive_attention(q, k, v, window), atol=1e-5)
    assert torch.allclose(attend(q, k, v, window, "flex"), attend(q, k, v, window, "sdpa"), atol=1e-5)


def test_backend_choice_on_cpu() -> None:
    cpu = torch.device("cpu")
    chosen = select_backend(cpu)
    assert chosen.name == "sdpa" and chosen.version == torch.__version__ and "auto" in chosen.reason
    assert select_backend(cpu, "flex").name == "flex"
    with pytest.raises(ValueError, match="fa2 is not available"):
        select_backend(cpu, "fa2")
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend(cpu, "xformers")


@pytest.mark.gpu
@pytest.mark.parametrize("window", [128, 512, 2048])
def test_flash_backends_equal_sdpa_on_gpu(window: int) -> None:
    from trainer.attention import available_backends

    dev = torch.device("cuda")
    q, k, v = (torch.randn(2, 1024, 4, 128, device=dev, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    ref = attend(q, k, v, window, "sdpa")
    grad = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (q, k, v), grad)
    for backend in [b for b in available_backends(dev) if b != "sdpa"]:
        out = attend(q, k, v, window, backend)
        assert torch.allclose(out.float(), ref.float(), atol=2e-2), backend
        for a, b in zip(torch.autograd.grad(out, (q, k, v), grad), g_ref, strict=True):
            assert torch.allclose(a.float(), b.float(), atol=5e-2), backend


# --- evaluation extras: the head at selected positions, token trees ------------------------------------


@pytest.mark.parametrize("depth", [2, 3])  # backout at the last block / before it
def test_logits_at_equals_the_full_logits_at_those_positions(depth: int) -> None:
    model = tiny(depth=depth).eval()
    idx = torch.randint(0, 2048, (3, 100))  # longer than the last block's window (64)
    at = torch.rand(3, 100) < 0.2
    at[0, 0] = at[2, 99] = True
    at[1] = False  # a row with no selected position
    with torch.no_grad():
        full = model(idx)
        some = model(idx, logits_at=at)
        assert some.shape == (int(at.sum()), 2048)
        assert torch.allclose(some, full[at], atol=1e-5)
        targets = torch.randint(0, 2048, (int(at.sum()),))
        losses = model(idx, targets, loss_reduction="none", logits_at=at)
        expected = torch.nn.functional.cross_entropy(full[at], targets, reduction="none")
        assert torch.allclose(losses, expected, atol=1e-5)


def _tree_row(prefix: list[int], tails: list[list[int]]) -> tuple[list[int], TokenTree, list[list[int]]]:
    """One batch row: the prefix, then each tail; with each sequence's indices in the row."""
    tokens, positions, previous = list(prefix), list(range(len(prefix))), [0, *range(len(prefix) - 1)]
    owner = [0] * len(prefix)  # 0: the shared prefix, j + 1: the j-th tail
    where = []
    for j, tail in enumerate(tails):
        idx = list(range(len(prefix)))
        for k, tok in enumerate(tail):
            previous.append(idx[-1])
            idx.append(len(tokens))
            tokens.append(tok)
            positions.append(len(prefix) + k)
            owner.append(j + 1)
        where.append(idx)
    n = len(tokens)
    visible = torch.tensor([[k <= q and (owner[k] == 0 or owner[k] == owner[q]) for k in range(n)] for q in range(n)])
    tree = TokenTree(torch.tensor([positions]), torch.tensor([previous]), visible[None])
    return tokens, tree, where


@pytest.mark.parametrize("prefix_len", [1, 30])
def test_a_token_tree_equals_its_sequences_run_one_by_one(prefix_len: int) -> None:
    model = tiny(depth=3).eval()  # windows 16, 16, 64 at sequence_len 64: sequences longer than a window
    with torch.no_grad():
        model.smear_lambda.fill_(0.7)  # smear on: the first token after the prefix mixes in the prefix's last
    torch.manual_seed(prefix_len)
    prefix = torch.randint(0, 2048, (prefix_len,)).tolist()
    tails = [torch.randint(0, 2048, (n,)).tolist() for n in (5, 24, 1)]
    tokens, tree, where = _tree_row(prefix, tails)
    with torch.no_grad():
        packed = model(torch.tensor([tokens]), tree=tree)[0]
        for j, tail in enumerate(tails):
            alone = model(torch.tensor([prefix + tail]))[0]
            assert torch.allclose(packed[where[j]], alone, atol=1e-4), j
        at = torch.zeros(1, len(tokens), dtype=torch.bool)
        at[0, where[1][-3:]] = True
        assert torch.allclose(model(torch.tensor([tokens]), tree=tree, logits_at=at), packed[where[1][-3:]], atol=1e-5)


def test_a_token_tree_with_padding_keeps_real_positions() -> None:
    model = tiny().eval()
    tokens, tree, _ = _tree_row([5, 6, 7], [[8, 9], [10]])
    n, width = len(tokens), len(tokens) + 4
    visible = torch.eye(width, dtype=torch.bool)
    visible[:n, :n] = tree.visible[0]
    padded = TokenTree(
        torch.cat([tree.positions, torch.zeros(1, 4, dtype=torch.long)], 1),
        torch.cat([tree.previous, torch.arange(n, width)[None]], 1),
        visible[None],
    )
    idx = torch.tensor([tokens + [0] * 4])
    with torch.no_grad():
        assert torch.allclose(model(idx, tree=padded)[0, :n], model(torch.tensor([tokens]), tree=tree)[0], atol=1e-5)
