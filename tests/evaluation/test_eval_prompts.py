"""Prompts, few-shot draws, tokenized spans and the decision rule, against hand-written strings and the harness."""

from __future__ import annotations

import math
import random

import pytest

from contract.core_v1 import TASKS_BY_LABEL, TaskSpec, TaskType
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bundle import Bundle, LMItem, MCItem, SchemaItem
from trainer.evaluation.prompts import (
    ScoredExample,
    crop_to_context,
    fewshot_indices,
    first_argmin,
    prepare_examples,
    render_lm,
    render_mc,
    render_prompts,
    render_schema,
    task_items,
)

ANSWER = "\nAnswer: "


def test_mc_prompt_joins_shots_with_blank_lines_and_uses_the_delimiter() -> None:
    shots = [MCItem("Q1?", ("a", "b"), 1), MCItem("Q2?", ("c", "d"), 0)]
    item = MCItem("Q?", ("x", "y z"), 0)
    assert render_mc(item, ANSWER, shots) == [
        "Q1?\nAnswer: b\n\nQ2?\nAnswer: c\n\nQ?\nAnswer: x",
        "Q1?\nAnswer: b\n\nQ2?\nAnswer: c\n\nQ?\nAnswer: y z",
    ]
    assert render_mc(item, " ", []) == ["Q? x", "Q? y z"]


def test_schema_prompt_varies_the_context_and_keeps_the_continuation() -> None:
    shots = [SchemaItem(("The cat", "The dog"), "barked.", 1)]
    item = SchemaItem(("Ann said", "Bob said"), "hello.", 1)
    assert render_schema(item, " ", shots) == [
        "The dog barked.\n\nAnn said hello.",
        "The dog barked.\n\nBob said hello.",
    ]


def test_lm_prompts_strip_contexts_and_the_prompt_without_continuation() -> None:
    shots = [LMItem("  Who wrote it? \n", "Ann")]
    item = LMItem("\tWhat is 2 plus 2? ", "4")
    assert render_lm(item, ANSWER, shots) == [
        "Who wrote it?\nAnswer: Ann\n\nWhat is 2 plus 2?\nAnswer:",
        "Who wrote it?\nAnswer: Ann\n\nWhat is 2 plus 2?\nAnswer: 4",
    ]
    assert render_lm(LMItem("The sky is ", "blue"), " ", []) == ["The sky is", "The sky is blue"]


def _random_text(rng: random.Random) -> str:
    pieces = ["", " ", "\n", "  ", "\t", "word", "Two words", "x\ny", "émoji ✓", "{{ raw }}", "a.", "\n\n"]
    return "".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))


@pytest.mark.parametrize("task_type", list(TaskType))
def test_rendering_equals_the_harness_jinja_templates_on_awkward_whitespace(task_type: TaskType, ref) -> None:
    rng = random.Random(7)
    for delimiter in (" ", ANSWER, "", ": "):
        spec = TaskSpec("t", task_type, 3, delimiter, "t.jsonl", 0, 0)
        items: list[MCItem | SchemaItem | LMItem] = []
        for _ in range(8):
            opts = tuple(_random_text(rng) for _ in range(rng.randint(2, 4)))
            if task_type is TaskType.multiple_choice:
                items.append(MCItem(_random_text(rng), opts, rng.randrange(len(opts))))
            elif task_type is TaskType.schema:
                items.append(SchemaItem(opts, _random_text(rng), rng.randrange(len(opts))))
            else:
                items.append(LMItem(_random_text(rng), _random_text(rng)))
        for idx in range(len(items)):
            assert render_prompts(spec, items, idx) == ref.prompts(spec, items, idx)


def test_rendering_equals_the_harness_on_every_synthetic_task(bundle: Bundle, ref) -> None:
    for task in bundle.tasks:
        items = task_items(task.items, None)
        for idx in (0, 7, len(items) - 1):
            assert render_prompts(task.spec, items, idx) == ref.prompts(task.spec, items, idx)


def test_fewshot_draw_equals_sampling_the_literal_list() -> None:
    for n in (2, 5, 11, 30, 200, 3000):
        for k in (0, 1, 3, 10):
            if k >= n:
                continue
            for idx in {0, 1, n // 2, n - 1}:
                literal = random.Random(1234 + idx).sample([i for i in range(n) if i != idx], k) if k else []
                assert fewshot_indices(idx, n, k) == literal


def test_fewshot_needs_more_items_than_shots() -> None:
    with pytest.raises(ValueError, match="10 few-shot examples need more than 10 items"):
        fewshot_indices(0, 10, 10)


def test_task_items_shuffle_with_1337_then_cut() -> None:
    items = [LMItem(str(i), "x") for i in range(50)]
    expected = list(items)
    random.Random(1337).shuffle(expected)
    assert task_items(items, None) == expected
    assert task_items(items, 7) == expected[:7]
    assert task_items(items, 500) == expected
    with pytest.raises(ValueError, match="max_per_task"):
        task_items(items, 0)


def test_mc_span_starts_after_the_common_token_prefix(tokenizer: Tokenizer) -> None:
    spec = TASKS_BY_LABEL["copa"]
    items = [MCItem("The capital of Zorbia is", ("Quenta", "Rotond", "Quentas"), 0)]
    (ex,) = prepare_examples(spec, items, [0], tokenizer)
    start = ex.starts[0]
    assert ex.starts == (start,) * 3 and ex.ends == tuple(len(r) for r in ex.rows)
    assert all(r[:start] == ex.rows[0][:start] for r in ex.rows)
    assert len({r[start] for r in ex.rows if len(r) > start}) > 1 or any(len(r) == start for r in ex.rows)
    assert ex.rows[0][0] == tokenizer.bos_id
    for row, choice in zip(ex.rows, items[0].choices, strict=True):
        assert tokenizer.decode(list(row[1:])) == f"The capital of Zorbia is {choice}"
        scored = tokenizer.decode(list(row[start:]))
        assert scored and f" {choice}".endswith(scored)


def test_schema_span_is_the_common_token_suffix(tokenizer: Tokenizer) -> None:
    spec = TASKS_BY_LABEL["winograd"]
    items = [SchemaItem(("The capital of Zorbia is", "The people of Kel speak"), "Quenta today.", 1)]
    (ex,) = prepare_examples(spec, items, [0], tokenizer)
    suffix = ex.ends[0] - ex.starts[0]
    assert ex.ends[1] - ex.starts[1] == suffix
    assert ex.rows[0][-suffix:] == ex.rows[1][-suffix:]
    assert ex.rows[0][-suffix - 1] != ex.rows[1][-suffix - 1]
    assert tokenizer.decode(list(ex.rows[0][ex.starts[0] :])).endswith("Quenta today.")
    assert ex.gold == 1


def test_lm_span_is_the_continuation_after_the_stripped_prompt(tokenizer: Tokenizer) -> None:
    spec = TASKS_BY_LABEL["lambada_openai"]
    (ex,) = prepare_examples(spec, [LMItem("The capital of Zorbia is ", "Quenta")], [0], tokenizer)
    (row,) = ex.rows
    assert tokenizer.decode(list(row[1 : ex.starts[0]])) == "The capital of Zorbia is"
    assert tokenizer.decode(list(row[ex.starts[0] : ex.ends[0]])) == " Quenta"
    assert ex.ends[0] == len(row) and ex.gold is None


def test_lm_prompt_whose_tokens_are_not_a_prefix_is_an_error(tokenizer: Tokenizer) -> None:
    spec = TaskSpec("glued", TaskType.language_modeling, 0, "", "g.jsonl", 0, 0)
    assert tokenizer.encode("The") != tokenizer.encode("T") + tokenizer.encode("he")  # "The" is one merged token
    with pytest.raises(ValueError, match=r"glued: .* not a strict prefix .*example 0"):
        prepare_examples(spec, [LMItem("T", "he capital")], [0], tokenizer)


def test_crop_keeps_the_last_tokens_and_shifts_the_spans() -> None:
    ex = ScoredExample(rows=((9, 1, 2, 3, 4, 5), (9, 1, 2, 7)), starts=(3, 3), ends=(6, 4), gold=0)
    cropped = crop_to_context(ex, 4)
    assert cropped.rows == ((2, 3, 4, 5), (9, 1, 2, 7))
    assert cropped.starts == (1, 3) and cropped.ends == (4, 4)
    assert crop_to_context(ex, None) is ex
    with pytest.raises(ValueError, match="does not fit"):
        crop_to_context(ex, 3)


def test_first_argmin_is_pythons_index_of_min_including_ties_and_nan() -> None:
    rng = random.Random(0)
    for _ in range(2000):
        values = [rng.choice([1.0, 2.0, 0.5, math.nan, rng.random()]) for _ in range(rng.randint(1, 6))]
        assert first_argmin(values) == values.index(min(values)), values
