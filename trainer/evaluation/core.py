"""CORE, batched: many examples per forward, with the per-example result of the one-at-a-time harness.

Per task: shuffle and cut the records (`prompts.task_items`), take this rank's examples (strided),
render and tokenize them (`prompts.prepare_examples`), then score every token row of every example.
``_score_prepared`` can score several tasks together (the option rows of all their multiple-choice
and schema examples in one stream of batches, the language-modeling rows in another); the model
process does so for a request that holds several tasks, while ``evaluate_tasks`` scores one task at a
time (``IN_PROCESS_GROUP_TOKENS``: grouping measured slower in process on the 2-core CPU).
The rows are scored by ``trainer.evaluation.rows``: they go into batch rows ("units"): one row per unit, or, when the model's forward takes ``tree``
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

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from contract.core_v1 import CORE_V1_LABELS, TaskSpec, TaskType, centered_accuracy
from contract.schema import CoreResult, CoreTaskResult
from trainer.evaluation.bundle import Bundle, TaskData
from trainer.evaluation.prompts import (
    EvalTokenizer,
    ScoredExample,
    check_examples_fit,
    first_argmin,
    prepare_examples,
    task_items,
)
from trainer.evaluation.rows import Precision, autocast_dtype_for, default_batch_tokens, rows_across, score_rows

if TYPE_CHECKING:
    import torch

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
    batch_tokens: int | None,
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
        rows = rows_across([prepared[k].examples for k in chosen])
        # (task, row within the task) of each row
        where = [(k, i) for k in chosen for i in range(sum(len(ex.rows) for ex in prepared[k].examples))]
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
                batch_tokens=default_batch_tokens(device) if batch_tokens is None else batch_tokens,
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
        batch_tokens=batch_tokens,
        world_size=world_size,
        autocast_dtype=autocast_dtype,
        progress=progress,
    )
    return outcome


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
                        batch_tokens=batch_tokens,
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
