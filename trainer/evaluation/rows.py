"""Scoring token rows, batched: the forward passes under CORE (``trainer.evaluation.core``) and the
verifier's model process (``submissions.model_process``).

A row is one option of one example: its tokens and the span whose losses and greedy predictions
decide. Rows go into batch rows ("units"): one row per unit, or, when the model's forward takes
``tree`` (the reference GPT), all rows of one example as one token tree: their common prefix once,
then each option's remaining tokens, each token attending only to its own row at its own position.
Units are sorted by length (longest first) and packed into right-padded batches of at most
``batch_tokens`` tokens; only the scored span positions become losses and greedy predictions.
Causal attention makes a row's logits independent of the rows and padding beside it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from trainer.evaluation.prompts import ScoredExample, common_prefix_length
from trainer.memory import keep_freed_memory

if TYPE_CHECKING:
    import torch

# Tokens (rows x padded length) per forward when not given: small on CPU (cache-friendly), larger on GPUs
# (the fp32 logits of 16k tokens x 65k vocab are 4 GiB).
CPU_BATCH_TOKENS = 4_096
GPU_BATCH_TOKENS = 16_384
Precision = Literal["auto", "fp32", "bf16"]


@dataclass(frozen=True)
class Row:
    example: int  # position among this rank's examples
    option: int
    tokens: tuple[int, ...]
    start: int
    end: int


def rows_of(examples: Sequence[ScoredExample]) -> list[Row]:
    rows = []
    for e, ex in enumerate(examples):
        for o, (toks, s, t) in enumerate(zip(ex.rows, ex.starts, ex.ends, strict=True)):
            rows.append(Row(e, o, toks, s, t))
    return rows


def rows_across(tasks: Sequence[Sequence[ScoredExample]]) -> list[Row]:
    """The rows of several tasks' examples in one list, the examples numbered across the tasks (so an
    example's rows still form one group: one token tree)."""
    rows: list[Row] = []
    first = 0
    for examples in tasks:
        rows += [Row(first + r.example, r.option, r.tokens, r.start, r.end) for r in rows_of(examples)]
        first += len(examples)
    return rows


def pack_batches(lengths: Sequence[int], batch_tokens: int) -> list[list[int]]:
    """Row indices grouped into batches, longest rows first, each batch <= ``batch_tokens`` padded tokens.

    A row longer than the budget gets a batch of its own.
    """
    if batch_tokens < 1:
        raise ValueError(f"batch_tokens must be >= 1, got {batch_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # rows come longest first, so the padded length of a batch is the length of its first row
        if current and (len(current) + 1) * lengths[current[0]] > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    import torch

    if dtype is None or device.type == "cpu":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def forward_options(model: torch.nn.Module) -> tuple[bool, bool]:
    """Whether ``model.forward`` takes ``logits_at`` (head at selected positions) and ``tree`` (shared prefixes)."""
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False, False
    return "logits_at" in params, "tree" in params


@dataclass(frozen=True)
class _Unit:
    """What one batch row holds: one token row, or (prefix sharing) all rows of one example as a token tree.

    ``tokens``: the shared prefix, then each row's tokens after it; ``positions`` / ``previous``: each
    token's position in its own row and the index of the token before it; ``segment``: 0 for the
    prefix, j + 1 for the tokens of the unit's j-th row. Per row: its index, the unit indices whose
    logits predict its span, and the span's tokens.
    """

    tokens: np.ndarray
    positions: np.ndarray
    previous: np.ndarray
    segment: np.ndarray
    rows: tuple[int, ...]
    predict_at: tuple[np.ndarray, ...]
    targets: tuple[np.ndarray, ...]


def _units(rows: Sequence[Row], share_prefix: bool) -> list[_Unit]:
    """Rows grouped into batch rows: one unit per row, or one per example with its common prefix stored once."""
    groups: list[list[int]] = []
    for i, r in enumerate(rows):
        if share_prefix and groups and rows[groups[-1][0]].example == r.example:
            groups[-1].append(i)
        else:
            groups.append([i])
    units = []
    for group in groups:
        toks = [np.asarray(rows[i].tokens, dtype=np.int64) for i in group]
        p = common_prefix_length([rows[i].tokens for i in group]) if len(group) > 1 else len(toks[0])
        parts, positions, previous, segment = (
            [toks[0][:p]],
            [np.arange(p)],
            [np.maximum(np.arange(p) - 1, 0)],
            [np.zeros(p, dtype=np.int64)],
        )
        predict_at, targets = [], []
        offset = p
        for j, (i, t) in enumerate(zip(group, toks, strict=True)):
            n = len(t) - p
            pos = np.arange(p, len(t))
            where = np.concatenate([np.arange(p), offset + np.arange(n)])  # unit index of each row position
            parts.append(t[p:])
            positions.append(pos)
            previous.append(where[pos - 1] if n else pos)
            segment.append(np.full(n, j + 1, dtype=np.int64))
            r = rows[i]
            predict_at.append(where[r.start - 1 : r.end - 1])  # position t - 1 predicts token t
            targets.append(t[r.start : r.end])
            offset += n
        units.append(
            _Unit(
                np.concatenate(parts),
                np.concatenate(positions),
                np.concatenate(previous),
                np.concatenate(segment),
                tuple(group),
                tuple(predict_at),
                tuple(targets),
            )
        )
    return units


def score_rows(
    model: torch.nn.Module,
    rows: Sequence[Row],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    want_losses: bool,
    autocast_dtype: torch.dtype | None = None,
    share_prefix: bool | None = None,
    want_argmax: bool = False,
) -> Iterator[tuple[list[int], list[float] | list[bool] | list[tuple[int, ...]]]]:
    """Yield (row indices, per-row result) per batch: the mean span loss, whether greedy == span, or
    (``want_argmax``, without losses) the greedy token at each span position.

    ``share_prefix`` (None: on CPU, when the model takes ``tree``) packs the rows of an example as one token
    tree, so their common prefix is computed once; the head runs at the span positions only when the
    model takes ``logits_at``.
    """
    import torch
    import torch.nn.functional as F

    if device.type == "cpu":
        keep_freed_memory()
    head_at, takes_tree = forward_options(model)
    if share_prefix is None:
        # on CPU the shared prefix saves real work; on GPUs the tree's explicit B x T x T mask would
        # take attention off the flash kernels, unmeasured at GPU scale, so GPUs keep the causal rows
        share_prefix = takes_tree and device.type == "cpu"
    if share_prefix and not takes_tree:
        raise ValueError("share_prefix needs a model whose forward takes tree=")
    units = _units(rows, share_prefix)
    tree_type = None
    if share_prefix and any(len(u.rows) > 1 for u in units):  # else the plain causal forward is the same
        from trainer.model import TokenTree

        tree_type = TokenTree
    for batch in pack_batches([len(u.tokens) for u in units], batch_tokens):
        width = len(units[batch[0]].tokens)
        x = np.full((len(batch), width), pad_id, dtype=np.int64)
        at = np.zeros((len(batch), width), dtype=bool)
        for b, k in enumerate(batch):
            u = units[k]
            x[b, : len(u.tokens)] = u.tokens
            for pa in u.predict_at:
                at[b, pa] = True
        kwargs: dict[str, Any] = {}
        if tree_type is not None:
            positions = np.zeros((len(batch), width), dtype=np.int64)
            previous = np.zeros((len(batch), width), dtype=np.int64)
            visible = np.zeros((len(batch), width, width), dtype=bool)
            causal = np.tril(np.ones((width, width), dtype=bool))
            for b, k in enumerate(batch):
                u = units[k]
                n = len(u.tokens)
                positions[b, :n] = u.positions
                previous[b, :n] = u.previous
                previous[b, n:] = np.arange(n, width)
                seg = u.segment
                visible[b, :n, :n] = causal[:n, :n] & ((seg[None, :] == 0) | (seg[None, :] == seg[:, None]))
                visible[b, np.arange(n, width), np.arange(n, width)] = True  # padding sees itself only
            kwargs["tree"] = tree_type(
                torch.from_numpy(positions).to(device),
                torch.from_numpy(previous).to(device),
                torch.from_numpy(visible).to(device),
            )
        # flat index of every span prediction (row by row) among the selected positions / the whole batch
        flat = np.concatenate([b * width + pa for b, k in enumerate(batch) for pa in units[k].predict_at]).astype(
            np.int64
        )
        targets_np = np.concatenate([t for k in batch for t in units[k].targets])
        sizes = [len(t) for k in batch for t in units[k].targets]
        order = [i for k in batch for i in units[k].rows]
        xt = torch.from_numpy(x).to(device, non_blocking=True)
        targets = torch.from_numpy(targets_np).to(device, non_blocking=True)
        with _autocast(device, autocast_dtype):
            if head_at:
                rank = np.cumsum(at.reshape(-1)) - 1  # selected positions come in row-major order
                mask = torch.from_numpy(at).to(device, non_blocking=True)
                logits = model(xt, logits_at=mask, **kwargs)  # [selected, V]
                span_logits = logits[torch.from_numpy(rank[flat]).to(device)]
            else:
                logits = model(xt, **kwargs)
                span_logits = logits.reshape(-1, logits.size(-1))[torch.from_numpy(flat).to(device)]
        if want_losses:
            losses = F.cross_entropy(span_logits.float(), targets, reduction="none").cpu()  # one transfer per batch
            yield order, [float(part.mean().item()) for part in torch.split(losses, sizes)]
        elif want_argmax:
            greedy = span_logits.argmax(dim=-1).cpu()
            yield order, [tuple(int(t) for t in part.tolist()) for part in torch.split(greedy, sizes)]
        else:
            hits = (span_logits.argmax(dim=-1) == targets).cpu()
            yield order, [bool(part.all().item()) for part in torch.split(hits, sizes)]
        del logits, span_logits


def default_batch_tokens(device: torch.device) -> int:
    return GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS


def autocast_dtype_for(precision: Precision, device: torch.device | str, model: torch.nn.Module) -> torch.dtype | None:
    """The autocast dtype of a precision setting.

    'auto': none on CPU, and none for a model that manages its own compute dtype (the reference GPT
    casts its weights to ``model.compute_dtype`` itself); bf16 autocast for other models on GPUs.
    """
    import torch

    if precision not in ("auto", "fp32", "bf16"):
        raise ValueError(f"precision: expected 'auto', 'fp32' or 'bf16', got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "auto" and (torch.device(device).type == "cpu" or hasattr(model, "compute_dtype")):
        return None
    return torch.bfloat16
