"""The CORE protocol ``core-v1`` as data: 22 tasks, their type, shots, delimiter and baselines.

This is the DCLM "low variance" task list as the nanochat harness evaluates it (its eval bundle's
``core.yaml`` and ``eval_meta_data.csv``). It is written down here so that a bundle whose files
disagree with the protocol is detected instead of silently changing what CORE means.

Baselines are in percent, as in ``eval_meta_data.csv``. ``core-v1`` uses the v1 baselines (the
ones with which GPT-2 XL scores 0.256525); DCLM's v2 (Sept 2025) changed three of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

PROTOCOL: Final = "core-v1"
# The bar of every GPT-2 track: GPT-2 XL (1558M) under the nanochat harness, v1 baselines.
GPT2_XL_CORE: Final = 0.256525


class TaskType(StrEnum):
    multiple_choice = "multiple_choice"
    schema = "schema"
    language_modeling = "language_modeling"


@dataclass(frozen=True)
class TaskSpec:
    """One CORE task: how its prompts are built and scored, and its random baselines (percent)."""

    label: str
    task_type: TaskType
    num_fewshot: int
    continuation_delimiter: str
    dataset_uri: str  # relative to <bundle>/eval_data/
    baseline_v1_percent: float
    baseline_v2_percent: float

    def __post_init__(self) -> None:
        if self.num_fewshot < 0:
            raise ValueError(f"{self.label}: num_fewshot must be >= 0, got {self.num_fewshot}")
        for name in ("baseline_v1_percent", "baseline_v2_percent"):
            value = getattr(self, name)
            if not 0.0 <= value < 100.0:
                raise ValueError(f"{self.label}: {name} must be in [0, 100), got {value}")


_MC = TaskType.multiple_choice
_SCHEMA = TaskType.schema
_LM = TaskType.language_modeling
_ANSWER = "\nAnswer: "


def _task(
    label: str, task_type: TaskType, shots: int, delimiter: str, uri: str, v1: float, v2: float | None = None
) -> TaskSpec:
    return TaskSpec(label, task_type, shots, delimiter, uri, v1, v1 if v2 is None else v2)


# In core.yaml order (the order CORE tables are printed in).
CORE_V1_TASKS: tuple[TaskSpec, ...] = (
    _task("hellaswag_zeroshot", _MC, 0, " ", "language_understanding/hellaswag.jsonl", 25),
    _task("jeopardy", _LM, 10, _ANSWER, "world_knowledge/jeopardy_all.jsonl", 0),
    _task("bigbench_qa_wikidata", _LM, 10, " ", "world_knowledge/bigbench_qa_wikidata.jsonl", 0),
    _task("arc_easy", _MC, 10, _ANSWER, "world_knowledge/arc_easy.jsonl", 25),
    _task("arc_challenge", _MC, 10, _ANSWER, "world_knowledge/arc_challenge.jsonl", 25),
    _task("copa", _MC, 0, " ", "commonsense_reasoning/copa.jsonl", 50),
    _task("commonsense_qa", _MC, 10, " ", "commonsense_reasoning/commonsense_qa.jsonl", 20, 40.3),
    _task("piqa", _MC, 10, _ANSWER, "commonsense_reasoning/piqa.jsonl", 50),
    _task("openbook_qa", _MC, 0, " ", "commonsense_reasoning/openbook_qa.jsonl", 25),
    _task("lambada_openai", _LM, 0, " ", "language_understanding/lambada_openai.jsonl", 0),
    _task("hellaswag", _MC, 10, " ", "language_understanding/hellaswag.jsonl", 25),
    _task("winograd", _SCHEMA, 0, " ", "language_understanding/winograd_wsc.jsonl", 50),
    _task("winogrande", _SCHEMA, 0, " ", "language_understanding/winogrande.jsonl", 50),
    _task("bigbench_dyck_languages", _LM, 10, " ", "symbolic_problem_solving/bigbench_dyck_languages.jsonl", 0),
    _task("agi_eval_lsat_ar", _MC, 3, " ", "symbolic_problem_solving/agi_eval_lsat_ar.jsonl", 20, 25),
    _task("bigbench_cs_algorithms", _LM, 10, " ", "symbolic_problem_solving/bigbench_cs_algorithms.jsonl", 0),
    _task("bigbench_operators", _LM, 10, " ", "symbolic_problem_solving/bigbench_operators.jsonl", 0),
    _task("bigbench_repeat_copy_logic", _LM, 10, " ", "symbolic_problem_solving/bigbench_repeat_copy_logic.jsonl", 0),
    _task("squad", _LM, 10, " ", "reading_comprehension/squad.jsonl", 0),
    _task("coqa", _LM, 0, " ", "reading_comprehension/coqa.jsonl", 0),
    _task("boolq", _MC, 10, _ANSWER, "reading_comprehension/boolq.jsonl", 62),
    _task(
        "bigbench_language_identification",
        _MC,
        10,
        " ",
        "language_understanding/bigbench_language_identification.jsonl",
        9.1,
        25,
    ),
)
CORE_V1_LABELS: tuple[str, ...] = tuple(t.label for t in CORE_V1_TASKS)
TASKS_BY_LABEL: Mapping[str, TaskSpec] = {t.label: t for t in CORE_V1_TASKS}
# Examples per task in the public bundle (91,037 in all); informational, used by projections.
CORE_V1_EXAMPLES: Mapping[str, int] = {
    "hellaswag_zeroshot": 10042,
    "jeopardy": 2117,
    "bigbench_qa_wikidata": 20321,
    "arc_easy": 2376,
    "arc_challenge": 1172,
    "copa": 100,
    "commonsense_qa": 1221,
    "piqa": 1838,
    "openbook_qa": 500,
    "lambada_openai": 5153,
    "hellaswag": 10042,
    "winograd": 273,
    "winogrande": 1267,
    "bigbench_dyck_languages": 1000,
    "agi_eval_lsat_ar": 230,
    "bigbench_cs_algorithms": 1320,
    "bigbench_operators": 210,
    "bigbench_repeat_copy_logic": 32,
    "squad": 10570,
    "coqa": 7983,
    "boolq": 3270,
    "bigbench_language_identification": 10000,
}


def centered_accuracy(accuracy: float, baseline_percent: float) -> float:
    """Accuracy rescaled so that the random baseline maps to 0 and perfect to 1."""
    b = 0.01 * baseline_percent
    return (accuracy - b) / (1.0 - b)


def core_from_accuracies(accuracies: Mapping[str, float], *, baselines: str = "v1") -> float:
    """CORE: the unweighted mean of the 22 centered accuracies (``baselines``: 'v1' or 'v2')."""
    if baselines not in ("v1", "v2"):
        raise ValueError(f"baselines: expected 'v1' or 'v2', got {baselines!r}")
    missing = [label for label in CORE_V1_LABELS if label not in accuracies]
    extra = sorted(set(accuracies) - set(CORE_V1_LABELS))
    if missing or extra:
        raise ValueError(f"accuracies: missing tasks {missing}, unknown tasks {extra}")
    total = 0.0
    for spec in CORE_V1_TASKS:
        b = spec.baseline_v1_percent if baselines == "v1" else spec.baseline_v2_percent
        total += centered_accuracy(accuracies[spec.label], b)
    return total / len(CORE_V1_TASKS)
