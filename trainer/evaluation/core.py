"""CORE, batched: many examples per forward, with the per-example result of the one-at-a-time harness.

Per task: shuffle and cut the records (`prompts.task_items`), take this rank's examples (strided),
render and tokenize them (`prompts.prepare_examples`), then score every token row of every example.
``_score_prepared`` can score several tasks together (the option rows of all their multiple-choice
and schema examples in one stream of batches, the language-modeling rows in another); the model
process does so for a request that holds several tasks, while ``evaluate_tasks`` scores one task at a
time (``IN_PROCESS_GROUP_TOKENS``: grouping measured slower in process on the 2-core CPU).
Rows go into batch rows ("units"): one row per unit, or, when the model's forward takes ``tree``
(the reference GPT), all rows of one example as one token tree: their common prefix (the few-shot
context and the query) once, then each option's remaining tokens, each token attending only to its
own row at its own position. Units are sorted by length (longest first) and packed into
right-padded batches of at most ``batch_tokens`` tokens (units x padded length). Only the scored
span positions of each row are turned into losses and greedy predictions, and when the model's
forward takes ``logits_at`` its last block and head run at those positions only. An example's
decision is the harness's: the first argmin of the mean span loss for multiple choice and schema,
all greedy tokens equal to the span for language modeling. Ranks all-reduce the per-example
correctness vector.

Causal attention makes a row's logits independent of the rows and padding beside it, and a token
tree gives each option's tokens exactly the context of its own row, so the decisions equal those of
the one-example-per-forward reference (tested to the example on CPU, on every task).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from contract.core_v1 import CORE_V1_LABELS, TaskSpec, TaskType, centered_accuracy
from contract.schema import CoreResult, CoreTaskResult
from trainer.evaluation.bundle import Bundle, TaskData
from trainer.evaluation.prompts import (
    EvalTokenizer,
    ScoredExample,
    check_examples_fit,
    common_prefix_length,
    first_argmin,
    prepare_examples,
    task_items,
)

if TYPE_CHECKING:
    import torch

# Tokens (rows x padded length) per forward when not given: small on CPU (cache-friendly), larger on GPUs
# (the fp32 logits of 16k tokens x 65k vocab are 4 GiB).
CPU_BATCH_TOKENS = 4_096
GPU_BATCH_TOKENS = 16_384
Precision = Literal["auto", "fp32", "bf16"]
# Tasks are scored together (batches shared across tasks) until their rows hold this many tokens: the small
# tasks share batches, and the token rows held at once stay bounded on the full bundle.
GROUP_TOKENS = 1 << 21
# In process, tasks are scored one at a time: batching them together measured slower on the 2-core CPU
# (issue 22, same-run CPU seconds at 1 thread: 4.1-4.6 s grouped vs 3.7-3.9 s per task at 4096 tokens).
IN_PROCESS_GROUP_TOKENS = 1


@dataclass(frozen=True)
class TaskOutcome:
    """One task's result, with what a table shows and what a comparison needs."""

    label: str
    accuracy: float
    centered: float
    n: int
    seconds: float
    correct: tuple[bool, ...]  # per example, in the shuffled order (all ranks reduced)


@dataclass(frozen=True)
class _Row:
    example: int  # position among this rank's examples
    option: int
    tokens: tuple[int, ...]
    start: int
    end: int


def _rows(examples: Sequence[ScoredExample]) -> list[_Row]:
    rows = []
    for e, ex in enumerate(examples):
        for o, (toks, s, t) in enumerate(zip(ex.rows, ex.starts, ex.ends, strict=True)):
            rows.append(_Row(e, o, toks, s, t))
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


def _units(rows: Sequence[_Row], share_prefix: bool) -> list[_Unit]:
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
    rows: Sequence[_Row],
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


@dataclass(frozen=True)
class PreparedTask:
    """One task's examples on this rank, rendered and tokenized, before any forward."""

    spec: TaskSpec
    n_items: int
    mine: list[int]  # this rank's example indices among the (shuffled, cut) items
    examples: list[ScoredExample]
    seconds: float  # spent preparing

    @property
    def tokens(self) -> int:
        return sum(len(row) for ex in self.examples for row in ex.rows)


def prepare_task(
    task: TaskData,
    tokenizer: EvalTokenizer,
    *,
    max_per_task: int | None,
    rank: int,
    world_size: int,
    max_seq_len: int | None,
) -> PreparedTask:
    t0 = time.perf_counter()
    spec = task.spec
    items = task_items(task.items, max_per_task)
    if spec.num_fewshot >= len(items):
        raise ValueError(
            f"{spec.label}: {spec.num_fewshot}-shot needs more than {spec.num_fewshot} examples, "
            f"but only {len(items)} are evaluated (max_per_task={max_per_task})"
        )
    mine = list(range(rank, len(items), world_size))
    examples = prepare_examples(spec, items, mine, tokenizer, max_seq_len=max_seq_len)
    return PreparedTask(spec, len(items), mine, examples, time.perf_counter() - t0)


def _score_prepared(
    model: torch.nn.Module,
    prepared: Sequence[PreparedTask],
    *,
    pad_id: int,
    device: torch.device,
    batch_tokens: int,
    world_size: int,
    autocast_dtype: torch.dtype | None,
    progress: Any,
) -> list[TaskOutcome]:
    """Score several tasks' examples together: the option rows of every multiple-choice and schema task in one
    stream of batches, the rows of every language-modeling task in another, so batches are full across tasks."""
    import torch

    per_row: list[list[float | bool]] = [[0.0] * sum(len(ex.rows) for ex in p.examples) for p in prepared]
    forward_s = [0.0] * len(prepared)
    for want_losses in (True, False):
        chosen = [
            k for k, p in enumerate(prepared) if (p.spec.task_type is not TaskType.language_modeling) == want_losses
        ]
        rows: list[_Row] = []
        where: list[tuple[int, int]] = []  # (task, row within the task) of each row
        first = 0
        for k in chosen:
            task_rows = _rows(prepared[k].examples)
            rows += [_Row(first + r.example, r.option, r.tokens, r.start, r.end) for r in task_rows]
            where += [(k, i) for i in range(len(task_rows))]
            first += len(prepared[k].examples)
        if not rows:
            continue
        tokens = [0] * len(prepared)
        for r, (k, _) in zip(rows, where, strict=True):
            tokens[k] += len(r.tokens)
        remaining: dict[int, int] = {}
        for r in rows:
            remaining[r.example] = remaining.get(r.example, 0) + 1
        t0 = time.perf_counter()
        with torch.no_grad():
            for batch, values in score_rows(
                model,
                rows,
                pad_id=pad_id,
                device=device,
                batch_tokens=batch_tokens,
                want_losses=want_losses,
                autocast_dtype=autocast_dtype,
            ):
                finished = 0
                for i, v in zip(batch, values, strict=True):
                    assert isinstance(v, (float, bool))  # losses or hits, never greedy tokens here
                    k, j = where[i]
                    per_row[k][j] = v
                    remaining[rows[i].example] -= 1
                    finished += remaining[rows[i].example] == 0
                if progress is not None:
                    progress.update(finished)
        spent = time.perf_counter() - t0
        total = sum(tokens)
        for k in chosen:  # each task's share of the forward time, by its tokens
            forward_s[k] = spent * tokens[k] / total
    outcomes = []
    for k, p in enumerate(prepared):
        mine_correct = [0.0] * p.n_items
        pos = 0
        for e, ex in enumerate(p.examples):
            values = per_row[k][pos : pos + len(ex.rows)]
            pos += len(ex.rows)
            if ex.gold is None:
                ok = bool(values[0])
            else:
                ok = first_argmin([float(v) for v in values]) == ex.gold
            mine_correct[p.mine[e]] = float(ok)
        correct = torch.tensor(mine_correct, dtype=torch.float32, device=device)  # other ranks' examples are 0 here
        if world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(correct, op=dist.ReduceOp.SUM)
        flags = tuple(bool(v) for v in correct.cpu().tolist())
        accuracy = sum(flags) / len(flags)
        outcomes.append(
            TaskOutcome(
                label=p.spec.label,
                accuracy=accuracy,
                centered=centered_accuracy(accuracy, p.spec.baseline_v1_percent),
                n=len(flags),
                seconds=p.seconds + forward_s[k],
                correct=flags,
            )
        )
    return outcomes


def _check_distributed(world_size: int) -> None:
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ValueError(f"world_size={world_size} needs an initialized torch.distributed process group")


def evaluate_task(
    model: torch.nn.Module,
    tokenizer: EvalTokenizer,
    task: TaskData,
    *,
    device: torch.device | str,
    max_per_task: int | None = None,
    batch_tokens: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    max_seq_len: int | None = None,
    autocast_dtype: torch.dtype | None = None,
    progress: Any = None,
) -> TaskOutcome:
    """Score one task (batched) and return its accuracy over all ranks' examples."""
    import torch

    _check_distributed(world_size)
    dev = torch.device(device)
    prepared = prepare_task(
        task, tokenizer, max_per_task=max_per_task, rank=rank, world_size=world_size, max_seq_len=max_seq_len
    )
    (outcome,) = _score_prepared(
        model,
        [prepared],
        pad_id=tokenizer.bos_id,
        device=dev,
        batch_tokens=default_batch_tokens(dev) if batch_tokens is None else batch_tokens,
        world_size=world_size,
        autocast_dtype=autocast_dtype,
        progress=progress,
    )
    return outcome


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


def evaluate_tasks(
    model: torch.nn.Module,
    tokenizer: EvalTokenizer,
    bundle: Bundle,
    *,
    device: torch.device | str,
    labels: Sequence[str] | None = None,
    max_per_task: int | None = None,
    batch_tokens: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    max_seq_len: int | None = None,
    precision: Precision = "auto",
    progress: bool = True,
) -> list[TaskOutcome]:
    """Score the tasks ``labels`` of ``bundle`` (all 22 by default), in core-v1 order, batched across tasks."""
    import torch
    from tqdm import tqdm

    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    if max_per_task is not None and max_per_task < 1:
        raise ValueError(f"max_per_task must be >= 1 or None, got {max_per_task}")
    wanted = list(CORE_V1_LABELS) if labels is None else list(labels)
    unknown = [label for label in wanted if label not in CORE_V1_LABELS]
    if unknown:
        raise ValueError(f"labels: not core-v1 tasks: {unknown}")
    dtype = autocast_dtype_for(precision, device, model)
    if max_seq_len is None:  # a model that knows its positions (the reference GPT: its RoPE table) crops to them
        max_seq_len = getattr(model, "max_positions", None)
    tasks = [bundle.task(label) for label in wanted]
    if max_seq_len is not None:  # a prompt that cannot be cropped fails here, before any task is scored
        for task in tasks:
            items = task_items(task.items, max_per_task)
            if task.spec.num_fewshot < len(items):  # else evaluate_task names the problem
                check_examples_fit(task.spec, items, range(rank, len(items), world_size), tokenizer, max_seq_len)
    sizes = [len(t.items) if max_per_task is None else min(len(t.items), max_per_task) for t in tasks]
    total = sum(len(range(rank, n, world_size)) for n in sizes)
    _check_distributed(world_size)
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    try:
        with tqdm(total=total, unit="ex", desc="CORE", disable=not progress or rank != 0, file=sys.stderr) as bar:
            outcomes: list[TaskOutcome] = []
            group: list[PreparedTask] = []
            for i, task in enumerate(tasks):
                group.append(
                    prepare_task(
                        task,
                        tokenizer,
                        max_per_task=max_per_task,
                        rank=rank,
                        world_size=world_size,
                        max_seq_len=max_seq_len,
                    )
                )
                if i == len(tasks) - 1 or sum(p.tokens for p in group) >= IN_PROCESS_GROUP_TOKENS:
                    outcomes += _score_prepared(
                        model,
                        group,
                        pad_id=tokenizer.bos_id,
                        device=dev,
                        batch_tokens=default_batch_tokens(dev) if batch_tokens is None else batch_tokens,
                        world_size=world_size,
                        autocast_dtype=dtype,
                        progress=bar,
                    )
                    group = []
    finally:
        model.train(was_training)
    return outcomes


def core_result(
    outcomes: Sequence[TaskOutcome], *, bundle_sha256: str, max_per_task: int | None, seconds: float
) -> CoreResult:
    """The contract's CoreResult from the 22 task outcomes."""
    labels = [o.label for o in outcomes]
    if sorted(labels) != sorted(CORE_V1_LABELS):
        raise ValueError(f"CORE needs the 22 core-v1 tasks exactly, got {labels}")
    return CoreResult(
        core=sum(o.centered for o in outcomes) / len(outcomes),
        bundle_sha256=bundle_sha256,
        max_per_task=max_per_task,
        tasks={o.label: CoreTaskResult(accuracy=o.accuracy, centered=o.centered, n=o.n) for o in outcomes},
        seconds=seconds,
    )


def evaluate_core(
    model: torch.nn.Module,
    tokenizer: EvalTokenizer,
    bundle: Bundle,
    *,
    device: torch.device | str,
    max_per_task: int | None = None,
    batch_tokens: int | None = None,
    rank: int = 0,
    world_size: int = 1,
    max_seq_len: int | None = None,
    precision: Precision = "auto",
    progress: bool = True,
) -> CoreResult:
    """CORE (core-v1) of ``model`` on ``bundle``: every rank calls it, every rank gets the reduced result.

    ``model(idx) -> logits [B, T, V]``; ``batch_tokens`` bounds rows x padded length per forward
    (None: 4096 on CPU, 16384 on GPUs); evaluated in eval mode under no_grad (bf16 autocast on CUDA
    unless ``precision`` says otherwise). ``max_per_task`` keeps the first N shuffled examples
    of each task (None: all, as leaderboard runs do). ``max_seq_len`` crops prompts on the left, keeping
    the last tokens as the reference harness does, for a model with fewer positions than a prompt (None:
    the model's ``max_positions`` if it has one, the RoPE table of the reference GPT; else no crop).
    """
    t0 = time.perf_counter()
    outcomes = evaluate_tasks(
        model,
        tokenizer,
        bundle,
        device=device,
        max_per_task=max_per_task,
        batch_tokens=batch_tokens,
        rank=rank,
        world_size=world_size,
        max_seq_len=max_seq_len,
        precision=precision,
        progress=progress,
    )
    return core_result(
        outcomes, bundle_sha256=bundle.sha256, max_per_task=max_per_task, seconds=time.perf_counter() - t0
    )
