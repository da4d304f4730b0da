"""The core-v1 protocol as data, centered accuracy and the CORE aggregation test vector (CORE.md)."""

from __future__ import annotations

import pytest

from contract.core_v1 import (
    CORE_V1_EXAMPLES,
    CORE_V1_LABELS,
    CORE_V1_TASKS,
    TASKS_BY_LABEL,
    TaskSpec,
    TaskType,
    centered_accuracy,
    core_from_accuracies,
)

# OLMo-1B accuracies of the DCLM pipeline -> CORE v1 0.29722, v2 0.27235 (CORE.md).
OLMO_1B = {
    "hellaswag_zeroshot": 0.6225,
    "jeopardy": 0.2093,
    "bigbench_qa_wikidata": 0.6498,
    "arc_easy": 0.6343,
    "arc_challenge": 0.3464,
    "copa": 0.7000,
    "commonsense_qa": 0.2703,
    "piqa": 0.7612,
    "openbook_qa": 0.3700,
    "lambada_openai": 0.5636,
    "hellaswag": 0.6331,
    "winograd": 0.7546,
    "winogrande": 0.5998,
    "bigbench_dyck_languages": 0.2180,
    "agi_eval_lsat_ar": 0.2304,
    "bigbench_cs_algorithms": 0.4371,
    "bigbench_operators": 0.2143,
    "bigbench_repeat_copy_logic": 0.0312,
    "squad": 0.3737,
    "coqa": 0.3020,
    "boolq": 0.5401,
    "bigbench_language_identification": 0.2589,
}


def test_aggregation_vector_reproduces_v1_and_v2() -> None:
    assert core_from_accuracies(OLMO_1B, baselines="v1") == pytest.approx(0.29722, abs=1e-4)
    assert core_from_accuracies(OLMO_1B, baselines="v2") == pytest.approx(0.27235, abs=1e-4)


def test_protocol_table_matches_core_md() -> None:
    # (type, shots, delimiter, v1 baseline) of each task, in core.yaml order, as CORE.md lists them
    answer = "\nAnswer: "
    expected = [
        ("hellaswag_zeroshot", "MC", 0, " ", 25),
        ("jeopardy", "LM", 10, answer, 0),
        ("bigbench_qa_wikidata", "LM", 10, " ", 0),
        ("arc_easy", "MC", 10, answer, 25),
        ("arc_challenge", "MC", 10, answer, 25),
        ("copa", "MC", 0, " ", 50),
        ("commonsense_qa", "MC", 10, " ", 20),
        ("piqa", "MC", 10, answer, 50),
        ("openbook_qa", "MC", 0, " ", 25),
        ("lambada_openai", "LM", 0, " ", 0),
        ("hellaswag", "MC", 10, " ", 25),
        ("winograd", "schema", 0, " ", 50),
        ("winogrande", "schema", 0, " ", 50),
        ("bigbench_dyck_languages", "LM", 10, " ", 0),
        ("agi_eval_lsat_ar", "MC", 3, " ", 20),
        ("bigbench_cs_algorithms", "LM", 10, " ", 0),
        ("bigbench_operators", "LM", 10, " ", 0),
        ("bigbench_repeat_copy_logic", "LM", 10, " ", 0),
        ("squad", "LM", 10, " ", 0),
        ("coqa", "LM", 0, " ", 0),
        ("boolq", "MC", 10, answer, 62),
        ("bigbench_language_identification", "MC", 10, " ", 9.1),
    ]
    kinds = {"MC": TaskType.multiple_choice, "LM": TaskType.language_modeling, "schema": TaskType.schema}
    got = [
        (t.label, t.task_type, t.num_fewshot, t.continuation_delimiter, t.baseline_v1_percent) for t in CORE_V1_TASKS
    ]
    assert got == [(label, kinds[k], shots, d, b) for label, k, shots, d, b in expected]
    assert sum(CORE_V1_EXAMPLES.values()) == 91_037
    assert list(CORE_V1_EXAMPLES) == list(CORE_V1_LABELS)


def test_v2_baselines_differ_in_exactly_three_tasks() -> None:
    changed = {t.label: t.baseline_v2_percent for t in CORE_V1_TASKS if t.baseline_v2_percent != t.baseline_v1_percent}
    assert changed == {"commonsense_qa": 40.3, "agi_eval_lsat_ar": 25, "bigbench_language_identification": 25}


def test_centered_accuracy_maps_baseline_to_zero_and_perfect_to_one() -> None:
    assert centered_accuracy(0.62, 62) == pytest.approx(0.0)
    assert centered_accuracy(1.0, 62) == pytest.approx(1.0)
    assert centered_accuracy(0.25, 50) == pytest.approx(-0.5)
    assert centered_accuracy(0.3, 0) == pytest.approx(0.3)


def test_core_needs_exactly_the_22_tasks() -> None:
    partial = dict(OLMO_1B)
    del partial["copa"]
    with pytest.raises(ValueError, match="copa"):
        core_from_accuracies(partial)
    with pytest.raises(ValueError, match="mmlu"):
        core_from_accuracies({**OLMO_1B, "mmlu": 0.3})
    with pytest.raises(ValueError, match="baselines"):
        core_from_accuracies(OLMO_1B, baselines="v3")


def test_task_spec_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="num_fewshot"):
        TaskSpec("x", TaskType.schema, -1, " ", "x.jsonl", 50, 50)
    with pytest.raises(ValueError, match="baseline_v1_percent"):
        TaskSpec("x", TaskType.schema, 0, " ", "x.jsonl", 100, 50)
    assert TASKS_BY_LABEL["boolq"].baseline_v1_percent == 62
