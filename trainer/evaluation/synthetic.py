"""The synthetic CORE bundle: the 22 core-v1 tasks (labels, types, shots, delimiters) filled from `SyntheticWorld`.

Every record asks something the synthetic corpus teaches: a world fact (as multiple choice over
objects of the same relation, as a schema over two subjects, or as a continuation to complete),
small-number arithmetic, or the next element of a repeated pattern. A model trained by the CPU
recipe scores clearly above a random one; the layout is the public bundle's, so the real loader
and scorer run on it. Records are a pure function of the seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from contract.core_v1 import CORE_V1_TASKS

SYNTHETIC_VERSION = 1
EXAMPLES_PER_TASK = 40

Record = dict[str, Any]


def _distinct_numbers(rng: random.Random, answer: str, count: int) -> list[str]:
    value = int(answer)
    out: list[str] = []
    while len(out) < count:
        candidate = str(max(0, value + rng.choice([-3, -2, -1, 1, 2, 3, 5, 10])))
        if candidate != answer and candidate not in out:
            out.append(candidate)
    return out


class _Builder:
    """Record makers over one world; each takes the task's own seeded rng."""

    def __init__(self, seed: int):
        from trainer.data.synth import SyntheticWorld

        self.world = SyntheticWorld(seed)
        lands = set(self.world.lands)
        self.land_facts = [f for f in self.world.facts if f.subject in lands]
        self.person_facts = [f for f in self.world.facts if f.subject not in lands]

    # multiple choice ---------------------------------------------------------------------------

    def fact_mc(self, rng: random.Random, pool: list[Any], num_choices: int) -> Record:
        fact = rng.choice(pool)
        prefix, obj = self.world.fact_text(fact)
        others = [o for o in self.world.objects_of(fact.relation) if o != obj]
        choices = [obj, *rng.sample(others, min(num_choices - 1, len(others)))]
        rng.shuffle(choices)
        return {"query": prefix, "choices": choices, "gold": choices.index(obj)}

    def arithmetic_mc(self, rng: random.Random, num_choices: int) -> Record:
        question, answer = self.world.arithmetic(rng)
        choices = [answer, *_distinct_numbers(rng, answer, num_choices - 1)]
        rng.shuffle(choices)
        return {"query": question, "choices": choices, "gold": choices.index(answer)}

    def sequence_mc(self, rng: random.Random, num_choices: int) -> Record:
        while True:
            question, answer = self.world.sequence(rng)
            seen = [t for t in dict.fromkeys(question.split()) if t != answer]
            if seen:
                break
        choices = [answer, *rng.sample(seen, min(num_choices - 1, len(seen)))]
        rng.shuffle(choices)
        return {"query": question, "choices": choices, "gold": choices.index(answer)}

    # schema ------------------------------------------------------------------------------------

    def fact_schema(self, rng: random.Random, pool: list[Any]) -> Record:
        while True:
            fact = rng.choice(pool)
            other = rng.choice([f for f in pool if f.relation == fact.relation and f.subject != fact.subject])
            if other.obj != fact.obj:
                break
        prefix, obj = self.world.fact_text(fact)
        other_prefix, _ = self.world.fact_text(other)
        options = [prefix, other_prefix]
        rng.shuffle(options)
        return {"context_options": options, "continuation": obj + ".", "gold": options.index(prefix)}

    # language modeling -------------------------------------------------------------------------

    def fact_lm(self, rng: random.Random, pool: list[Any]) -> Record:
        prefix, obj = self.world.fact_text(rng.choice(pool))
        return {"context": prefix, "continuation": obj}

    def passage_lm(self, rng: random.Random) -> Record:
        """A short passage stating a subject's facts, then one of them to complete (reading comprehension)."""
        fact = rng.choice(self.world.facts)
        siblings = [f for f in self.world.facts if f.subject == fact.subject and f != fact]
        statements = [" ".join(self.world.fact_text(f)) + "." for f in [*siblings, fact]]
        rng.shuffle(statements)
        prefix, obj = self.world.fact_text(fact)
        return {"context": " ".join(statements) + " " + prefix, "continuation": obj}

    def arithmetic_lm(self, rng: random.Random) -> Record:
        question, answer = self.world.arithmetic(rng)
        return {"context": question, "continuation": answer}

    def sequence_lm(self, rng: random.Random) -> Record:
        question, answer = self.world.sequence(rng)
        return {"context": question, "continuation": answer}


def synthetic_records(seed: int = 0, *, examples_per_task: int = EXAMPLES_PER_TASK) -> dict[str, list[Record]]:
    """JSONL records of the 22 synthetic tasks, by core-v1 label (hellaswag and hellaswag_zeroshot share theirs)."""
    if examples_per_task < 11:
        raise ValueError(f"examples_per_task must be > 10 (the largest shot count), got {examples_per_task}")
    b = _Builder(seed)
    makers: dict[str, Callable[[random.Random], Record]] = {
        "hellaswag_zeroshot": lambda r: b.fact_mc(r, b.person_facts, 4),
        "jeopardy": lambda r: b.fact_lm(r, b.land_facts),
        "bigbench_qa_wikidata": lambda r: b.fact_lm(r, b.world.facts),
        "arc_easy": lambda r: b.fact_mc(r, b.land_facts, 4),
        "arc_challenge": lambda r: b.fact_mc(r, b.world.facts, 4),
        "copa": lambda r: b.arithmetic_mc(r, 2),
        "commonsense_qa": lambda r: b.fact_mc(r, b.person_facts, 5),
        "piqa": lambda r: b.sequence_mc(r, 2),
        "openbook_qa": lambda r: b.fact_mc(r, b.land_facts, 4),
        "lambada_openai": lambda r: b.fact_lm(r, b.person_facts),
        "winograd": lambda r: b.fact_schema(r, b.land_facts),
        "winogrande": lambda r: b.fact_schema(r, b.person_facts),
        "bigbench_dyck_languages": b.sequence_lm,
        "agi_eval_lsat_ar": lambda r: b.arithmetic_mc(r, 5),
        "bigbench_cs_algorithms": b.sequence_lm,
        "bigbench_operators": b.arithmetic_lm,
        "bigbench_repeat_copy_logic": b.sequence_lm,
        "squad": b.passage_lm,
        "coqa": b.passage_lm,
        "boolq": lambda r: b.fact_mc(r, b.land_facts, 2),
        "bigbench_language_identification": lambda r: b.fact_mc(
            r, [f for f in b.land_facts if f.relation == "language"], 11
        ),
    }
    records: dict[str, list[Record]] = {}
    for spec in CORE_V1_TASKS:
        if spec.label == "hellaswag":
            continue
        rng = random.Random(f"speedrun-synthetic-core-{seed}-{spec.label}")
        records[spec.label] = [makers[spec.label](rng) for _ in range(examples_per_task)]
    records["hellaswag"] = records["hellaswag_zeroshot"]  # one file, 0-shot and 10-shot, as in the public bundle
    return records
