"""Bits per byte: nats over byte-bearing targets / (ln 2 x bytes), on tiny real models."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bpb import evaluate_bpb, merged_batches


class BigramLM(nn.Module):
    """Logits from the current token only; the loss interface of the reference GPT."""

    def __init__(self, vocab_size: int, *, uniform: bool = False):
        super().__init__()
        self.table = nn.Embedding(vocab_size, vocab_size)
        if uniform:
            nn.init.zeros_(self.table.weight)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, loss_reduction: str = "mean"):
        logits = self.table(idx)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1, reduction=loss_reduction)
        return loss.view(targets.shape) if loss_reduction == "none" else loss


def batches_of(tokenizer: Tokenizer, texts: list[str], seq_len: int = 16) -> list[tuple[torch.Tensor, torch.Tensor]]:
    ids = [t for text in texts for t in tokenizer.encode(text, prepend_bos=True)]
    n = (len(ids) - 1) // seq_len * seq_len
    x = torch.tensor(ids[:n]).view(-1, seq_len)
    y = torch.tensor(ids[1 : n + 1]).view(-1, seq_len)
    return [(x[i : i + 2], y[i : i + 2]) for i in range(0, x.size(0), 2)]


TEXTS = ["The capital of Zorbia is Quenta.", "12 plus 7 is 19.", "a b c a b c a b c", "Once upon a time, a baker."]


def test_bpb_is_nats_over_byte_targets_divided_by_ln2_bytes(tokenizer: Tokenizer) -> None:
    torch.manual_seed(0)
    model = BigramLM(tokenizer.vocab_size)
    batches = batches_of(tokenizer, TEXTS * 3)
    token_bytes = tokenizer.token_bytes()
    nats, nbytes = 0.0, 0
    with torch.no_grad():
        for x, y in batches:
            loss = model(x, y, loss_reduction="none")
            for loss_value, target in zip(loss.flatten().tolist(), y.flatten().tolist(), strict=True):
                b = int(token_bytes[target])
                if b > 0:
                    nats += loss_value
                    nbytes += b
    assert any(int(token_bytes[t]) == 0 for _, y in batches for t in y.flatten().tolist())  # BOS targets occur
    assert evaluate_bpb(model, batches, token_bytes) == pytest.approx(nats / (math.log(2) * nbytes), rel=1e-9)


def test_uniform_model_costs_log2_vocab_bits_per_token(tokenizer: Tokenizer) -> None:
    model = BigramLM(tokenizer.vocab_size, uniform=True)
    batches = batches_of(tokenizer, TEXTS)
    token_bytes = tokenizer.token_bytes()
    targets = torch.cat([y.flatten() for _, y in batches])
    counted = (token_bytes[targets] > 0).sum().item()
    nbytes = token_bytes[targets].sum().item()
    expected = counted * math.log2(tokenizer.vocab_size) / nbytes
    assert evaluate_bpb(model, batches, token_bytes) == pytest.approx(expected, rel=1e-6)


def test_ignored_targets_count_neither_nats_nor_bytes(tokenizer: Tokenizer) -> None:
    torch.manual_seed(1)
    model = BigramLM(tokenizer.vocab_size)
    (x, y), *_ = batches_of(tokenizer, TEXTS)
    token_bytes = tokenizer.token_bytes()
    masked = y.clone()
    masked[:, 8:] = -1
    assert evaluate_bpb(model, [(x, masked)], token_bytes) == pytest.approx(
        evaluate_bpb(model, [(x[:, :8], y[:, :8])], token_bytes), rel=1e-9
    )


def test_bpb_runs_on_the_reference_gpt_and_restores_train_mode(tokenizer: Tokenizer, gpt_model: nn.Module) -> None:
    gpt_model.train()
    value = evaluate_bpb(gpt_model, batches_of(tokenizer, TEXTS), tokenizer.token_bytes())
    assert math.isfinite(value) and value > 0
    assert gpt_model.training


def test_bpb_rejects_empty_input_and_missing_process_group(tokenizer: Tokenizer) -> None:
    model = BigramLM(tokenizer.vocab_size)
    with pytest.raises(ValueError, match="no target bytes"):
        evaluate_bpb(model, [], tokenizer.token_bytes())
    with pytest.raises(ValueError, match="process group"):
        evaluate_bpb(model, batches_of(tokenizer, TEXTS), tokenizer.token_bytes(), world_size=2)
    with pytest.raises(ValueError, match="1-D"):
        evaluate_bpb(model, [], tokenizer.token_bytes().view(1, -1))


def test_merged_batches_keep_every_row_in_order_and_the_bits_per_byte(tokenizer: Tokenizer) -> None:
    batches = batches_of(tokenizer, TEXTS * 4, seq_len=8)  # 2 rows of 8 tokens each
    merged = list(merged_batches(batches, max_tokens=48))  # up to 3 batches (6 rows) at a time
    assert [x.shape for x, _ in merged[:-1]] == [(6, 8)] * (len(merged) - 1)
    torch.testing.assert_close(torch.cat([x for x, _ in merged]), torch.cat([x for x, _ in batches]))
    torch.testing.assert_close(torch.cat([y for _, y in merged]), torch.cat([y for _, y in batches]))
    model = BigramLM(tokenizer.vocab_size)
    one_by_one = evaluate_bpb(model, batches, tokenizer.token_bytes())
    assert evaluate_bpb(model, merged, tokenizer.token_bytes()) == pytest.approx(one_by_one, rel=1e-12)


def test_merged_batches_never_join_widths_or_split_a_big_batch() -> None:
    a = (torch.zeros(2, 8, dtype=torch.long), torch.zeros(2, 8, dtype=torch.long))
    b = (torch.ones(2, 4, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    big = (torch.zeros(10, 8, dtype=torch.long), torch.zeros(10, 8, dtype=torch.long))
    shapes = [x.shape for x, _ in merged_batches([a, a, b, b, big, a], max_tokens=64)]
    assert shapes == [(4, 8), (4, 4), (10, 8), (2, 8)]
