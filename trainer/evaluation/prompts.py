"""CORE prompts exactly as the nanochat harness builds them: shots, rendering, tokens and scored spans.

For item ``idx`` of a task (after the seeded shuffle and cut), the few-shot examples are
``random.Random(1234 + idx).sample([i for i in range(n) if i != idx], k)``; shots are rendered
one after the other, each followed by a blank line. Every prompt is tokenized with BOS prepended.
The scored span of a row is ``tokens[start:end]``; the model's prediction for token ``t`` comes
from position ``t - 1``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from contract.core_v1 import TaskSpec, TaskType
from trainer.evaluation.bundle import Item, LMItem, MCItem, SchemaItem

SHUFFLE_SEED = 1337
FEWSHOT_SEED_BASE = 1234
SHOT_SEPARATOR = "\n\n"


class EvalTokenizer(Protocol):
    """What the scorer needs of a tokenizer (`trainer.data.tokenizer.Tokenizer` is one)."""

    bos_id: int

    def encode_batch(self, texts: Sequence[str], *, prepend_bos: bool = False) -> list[list[int]]: ...


def task_items(items: Sequence[Item], max_per_task: int | None) -> list[Item]:
    """The task's records shuffled with ``Random(1337)`` and cut to the first ``max_per_task`` (None: all)."""
    if max_per_task is not None and max_per_task < 1:
        raise ValueError(f"max_per_task must be >= 1 or None, got {max_per_task}")
    shuffled = list(items)
    random.Random(SHUFFLE_SEED).shuffle(shuffled)
    return shuffled if max_per_task is None else shuffled[:max_per_task]


class _AllBut(Sequence[int]):
    """``[i for i in range(n) if i != skip]`` without building the list (same `random.sample` draws)."""

    def __init__(self, n: int, skip: int):
        self._n, self._skip = n, skip

    def __len__(self) -> int:
        return self._n - 1

    @overload
    def __getitem__(self, j: int) -> int: ...
    @overload
    def __getitem__(self, j: slice) -> Sequence[int]: ...
    def __getitem__(self, j: int | slice) -> int | Sequence[int]:
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        if j < 0:
            j += len(self)
        if not 0 <= j < len(self):
            raise IndexError(j)
        return j if j < self._skip else j + 1

    def __iter__(self) -> Iterator[int]:
        yield from range(self._skip)
        yield from range(self._skip + 1, self._n)


def fewshot_indices(idx: int, n: int, k: int) -> list[int]:
    """Indices of the ``k`` shots of item ``idx`` among ``n`` items (the harness's seeded draw)."""
    if k == 0:
        return []
    if k >= n:
        raise ValueError(f"{k} few-shot examples need more than {k} items in the task, it has {n}")
    return random.Random(FEWSHOT_SEED_BASE + idx).sample(_AllBut(n, idx), k)


def render_mc(item: MCItem, delimiter: str, shots: Sequence[MCItem]) -> list[str]:
    """One prompt per choice: shots ``query + d + gold choice``, then ``query + d + choice``."""
    prefix = "".join(f"{s.query}{delimiter}{s.choices[s.gold]}{SHOT_SEPARATOR}" for s in shots)
    return [f"{prefix}{item.query}{delimiter}{choice}" for choice in item.choices]


def render_schema(item: SchemaItem, delimiter: str, shots: Sequence[SchemaItem]) -> list[str]:
    """One prompt per context option: ``option + d + continuation``."""
    prefix = "".join(f"{s.context_options[s.gold]}{delimiter}{s.continuation}{SHOT_SEPARATOR}" for s in shots)
    return [f"{prefix}{option}{delimiter}{item.continuation}" for option in item.context_options]


def render_lm(item: LMItem, delimiter: str, shots: Sequence[LMItem]) -> list[str]:
    """[prompt without the continuation (stripped), prompt with it]."""
    prefix = "".join(f"{s.context.strip()}{delimiter}{s.continuation}{SHOT_SEPARATOR}" for s in shots)
    head = f"{prefix}{item.context.strip()}{delimiter}"
    return [head.strip(), head + item.continuation]


def render_prompts(spec: TaskSpec, items: Sequence[Item], idx: int) -> list[str]:
    """The prompts of item ``idx`` of ``items`` (already shuffled and cut) under ``spec``."""
    item = items[idx]
    shots = [items[i] for i in fewshot_indices(idx, len(items), spec.num_fewshot)]
    d = spec.continuation_delimiter
    if isinstance(item, MCItem) and spec.task_type is TaskType.multiple_choice:
        return render_mc(item, d, shots)  # type: ignore[arg-type]
    if isinstance(item, SchemaItem) and spec.task_type is TaskType.schema:
        return render_schema(item, d, shots)  # type: ignore[arg-type]
    if isinstance(item, LMItem) and spec.task_type is TaskType.language_modeling:
        return render_lm(item, d, shots)  # type: ignore[arg-type]
    raise ValueError(f"{spec.label}: item {idx} is a {type(item).__name__}, not a {spec.task_type.value} record")


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    # the common prefix of all rows is that of the lexicographically smallest and largest (os.path.commonprefix)
    seqs = [tuple(r) for r in rows]
    low, high = min(seqs), max(seqs)
    for i, t in enumerate(low):
        if t != high[i]:
            return i
    return len(low)


def common_suffix_length(rows: Sequence[Sequence[int]]) -> int:
    n = min(len(r) for r in rows)
    first = rows[0]
    for i in range(1, n + 1):
        if any(r[-i] != first[-i] for r in rows):
            return i - 1
    return n


@dataclass(frozen=True)
class ScoredExample:
    """The token rows of one example and the span ``[start, end)`` scored in each.

    ``gold`` is the index of the correct row (multiple choice, schema), or None for language
    modeling (one row, correct iff greedy decoding reproduces the span).
    """

    rows: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    gold: int | None


def spans(spec: TaskSpec, tokens: list[list[int]], gold: int | None) -> ScoredExample:
    """Scored spans of one example's tokenized prompts (BOS already prepended)."""
    if spec.task_type is TaskType.multiple_choice:
        start = common_prefix_length(tokens)
        starts = [start] * len(tokens)
        ends = [len(t) for t in tokens]
    elif spec.task_type is TaskType.schema:
        suffix = common_suffix_length(tokens)
        ends = [len(t) for t in tokens]
        starts = [e - suffix for e in ends]
    else:
        without, with_ = tokens
        if not (len(without) < len(with_) and with_[: len(without)] == without):
            raise ValueError(
                f"{spec.label}: the tokens of the prompt without the continuation are not a strict prefix of "
                "the tokens of the prompt with it"
            )
        tokens = [with_]
        starts, ends = [len(without)], [len(with_)]
    return ScoredExample(tuple(tuple(t) for t in tokens), tuple(starts), tuple(ends), gold)


def crop_to_context(example: ScoredExample, max_seq_len: int | None) -> ScoredExample:
    """Keep the last ``max_seq_len`` tokens of each row, spans shifted (the reference harness's crop for a
    model with fewer positions than a prompt: the most recent tokens stay, the BOS and oldest shots go)."""
    if max_seq_len is None or all(len(r) <= max_seq_len for r in example.rows):
        return example
    rows, starts, ends = [], [], []
    for r, s, e in zip(example.rows, example.starts, example.ends, strict=True):
        crop = max(0, len(r) - max_seq_len)
        if s - crop < 1:  # the first scored token needs a token before it
            raise ValueError(
                f"a scored span of {e - s} tokens (prompt of {len(r)} tokens) does not fit in the model's "
                f"{max_seq_len} positions"
            )
        rows.append(r[crop:])
        starts.append(s - crop)
        ends.append(e - crop)
    return ScoredExample(tuple(rows), tuple(starts), tuple(ends), example.gold)


def prepare_examples(
    spec: TaskSpec,
    items: Sequence[Item],
    indices: Sequence[int],
    tokenizer: EvalTokenizer,
    *,
    max_seq_len: int | None = None,
) -> list[ScoredExample]:
    """Render, tokenize (one batched call) and span the examples ``indices`` of ``items``."""
    prompts: list[list[str]] = [render_prompts(spec, items, idx) for idx in indices]
    flat = [p for ps in prompts for p in ps]
    tokens = tokenizer.encode_batch(flat, prepend_bos=True) if flat else []
    out = []
    pos = 0
    for idx, ps in zip(indices, prompts, strict=True):
        item = items[idx]
        gold = None if isinstance(item, LMItem) else item.gold
        try:
            example = crop_to_context(spans(spec, tokens[pos : pos + len(ps)], gold), max_seq_len)
        except ValueError as exc:  # named by task and example, before any of the task is scored
            msg = str(exc) if str(exc).startswith(f"{spec.label}:") else f"{spec.label}: {exc}"
            raise ValueError(f"{msg} (example {idx} after the shuffle)") from None
        out.append(example)
        pos += len(ps)
    return out


def check_examples_fit(
    spec: TaskSpec, items: Sequence[Item], indices: Sequence[int], tokenizer: EvalTokenizer, max_seq_len: int
) -> int:
    """Raise (task, example, lengths named) if an example's scored span cannot fit ``max_seq_len`` positions.

    Cheap enough to run on every task before any is scored: a prompt has at most its UTF-8 byte length + 1
    (BOS) tokens, so only the examples with a longer prompt than that bound are tokenized. Returns how many
    examples were long enough to be checked (they will be cropped).
    """
    long = [idx for idx in indices if any(len(p.encode()) + 1 > max_seq_len for p in render_prompts(spec, items, idx))]
    if long:
        prepare_examples(spec, items, long, tokenizer, max_seq_len=max_seq_len)
    return len(long)


def first_argmin(values: Sequence[float]) -> int:
    """Index of the smallest value, first on ties (Python's ``values.index(min(values))``, NaN included)."""
    best = 0
    for i in range(1, len(values)):
        if values[i] < values[best]:
            best = i
    return best
