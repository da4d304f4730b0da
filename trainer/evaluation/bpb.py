"""Validation bits per byte: a tokenizer-independent loss.

Sum of the per-token losses (nats) over target tokens that stand for at least one byte (special
tokens such as BOS have byte length 0 and are left out, as are ``ignore_index`` targets < 0),
divided by ln 2 times the number of bytes those targets stand for. Sums are reduced over ranks
before the division, so every rank returns the same number.

Byte lengths are the true ones (``token_bytes`` = raw byte length, as nanochat since July 2026).
The record's table counted a token that is not valid UTF-8 on its own as 3 bytes, which inflates
the byte total slightly: the same model reads ~0.05% *higher* here than in the record's log (its
0.718 is ~0.7184 on this scale). Every run result says so (`contract.schema.VAL_BPB_NOTE`, `software["val_bpb"]`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def evaluate_bpb(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    token_bytes: torch.Tensor,
    *,
    world_size: int = 1,
) -> float:
    """Bits per byte of ``model`` over ``batches`` of (inputs, targets) int64 ``[B, T]``.

    ``model(inputs, targets, loss_reduction="none")`` must return the per-token loss ``[B, T]``;
    ``token_bytes`` is int ``[vocab_size]`` (the UTF-8 byte length of each token, 0 for specials).
    """
    import torch

    if token_bytes.dim() != 1:
        raise ValueError(f"token_bytes must be 1-D [vocab_size], got shape {tuple(token_bytes.shape)}")
    device = next(model.parameters()).device
    table = token_bytes.to(device=device, dtype=torch.int64)
    total_nats = torch.zeros((), dtype=torch.float64, device=device)
    total_bytes = torch.zeros((), dtype=torch.int64, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for inputs, targets in batches:
                inputs = inputs.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                loss = model(inputs, targets, loss_reduction="none").reshape(-1).double()
                flat = targets.reshape(-1)
                if loss.numel() != flat.numel():
                    raise ValueError(f"per-token loss has {loss.numel()} values for {flat.numel()} targets")
                valid = flat >= 0
                nbytes = torch.where(valid, table[flat.clamp(min=0)], torch.zeros_like(flat))
                counted = nbytes > 0
                total_nats += torch.where(counted, loss, torch.zeros_like(loss)).sum()
                total_bytes += nbytes.sum()
    finally:
        model.train(was_training)
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ValueError(f"world_size={world_size} needs an initialized torch.distributed process group")
        dist.all_reduce(total_nats, op=dist.ReduceOp.SUM)
        dist.all_reduce(total_bytes, op=dist.ReduceOp.SUM)
    nbytes_total = int(total_bytes.item())
    if nbytes_total == 0:
        raise ValueError("no target bytes to evaluate: the batches are empty or hold only special tokens")
    return float(total_nats.item()) / (math.log(2) * nbytes_total)


def merged_batches(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], max_tokens: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive batches of one width joined along the batch dimension, up to ``max_tokens`` each
    (a batch already that big passes alone). The rows and their order are the batches' own, so
    bits per byte is unchanged; a small training batch (cpu_smoke: 2 x 256) is scored in a few
    forwards instead of dozens (each a request to the verifier's model process)."""
    import torch

    inputs: list[torch.Tensor] = []
    targets: list[torch.Tensor] = []
    tokens = 0
    for x, y in batches:
        if inputs and (tokens + x.numel() > max_tokens or x.shape[1:] != inputs[0].shape[1:]):
            yield torch.cat(inputs), torch.cat(targets)
            inputs, targets, tokens = [], [], 0
        inputs.append(x)
        targets.append(y)
        tokens += x.numel()
    if inputs:
        yield torch.cat(inputs), torch.cat(targets)
