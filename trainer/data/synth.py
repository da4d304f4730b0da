"""A seeded synthetic corpus of learnable English-like text, in the ClimbMix parquet layout.

`SyntheticWorld(seed)` is a small invented world: lands with capitals, languages and national
animals, people with favorite colors, foods and jobs. Documents state those facts (often in the
canonical form ``prefix + " " + object + "."``, sometimes in other templates), drill small-number
arithmetic and repeated patterns, and tell short templated stories whose characters and towns
come from a large Zipf-distributed pool of invented names (so a BPE has enough distinct words to
learn a 32768 vocabulary). A 2-4 layer model learns the facts and the arithmetic in minutes on a
CPU; the eval part builds its synthetic CORE tasks from the same world.

Everything is a pure function of the seeds: `random.Random` with string seeds is stable across
processes and machines, and the parquet writer is deterministic for a given pyarrow version.
"""

from __future__ import annotations

import bisect
import itertools
import os
import random
from dataclasses import dataclass
from pathlib import Path

ROW_GROUP_DOCS = 1024  # the ClimbMix layout: row groups of 1024 documents

_CONSONANTS = "bdfgklmnprstvz"
_ONSETS = [*_CONSONANTS, "br", "dr", "gl", "kr", "pl", "qu", "sh", "st", "th", "tr", "ch", "fl"]
_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "ai", "ou", "ee", "ia"]
_CODAS = ["", "", "", "", "n", "r", "l", "s", "m", "th", "x", "nd", "rk"]

COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "pink", "brown", "gray", "gold"]
FOODS = ["bread", "rice", "soup", "cheese", "apples", "fish", "beans", "noodles", "honey", "carrots", "plums", "eggs"]
ANIMALS = ["owl", "fox", "bear", "horse", "swan", "wolf", "goat", "tiger", "crane", "otter", "lynx", "deer"]
JOBS = ["baker", "farmer", "painter", "sailor", "doctor", "teacher", "potter", "singer", "tailor", "miner", "pilot"]

# relation -> (canonical prefix template, other statement templates). The canonical statement of a
# fact is exactly `prefix + " " + obj + "."`, which is what `fact_text` returns and CORE asks.
_RELATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "capital": ("The capital of {s} is", ("{o} is the capital of {s}.", "{s} has its capital in {o}.")),
    "language": ("The people of {s} speak", ("In {s}, people speak {o}.", "{o} is spoken in {s}.")),
    "animal": ("The national animal of {s} is the", ("The {o} is the national animal of {s}.",)),
    "color": ("The favorite color of {s} is", ("{s} likes the color {o} best.", "{s} loves everything {o}.")),
    "food": ("The favorite food of {s} is", ("{s} loves to eat {o}.", "Every day, {s} eats {o}.")),
    "job": ("{s} works as a", ("{s} is a {o}.", "By trade, {s} is a {o}.")),
}
_LAND_RELATIONS = ("capital", "language", "animal")
_PERSON_RELATIONS = ("color", "food", "job")

_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_LETTERS = list("abcdefgh")


@dataclass(frozen=True)
class Fact:
    subject: str
    relation: str
    obj: str


def _invent(rng: random.Random, min_syllables: int, max_syllables: int) -> str:
    parts = []
    for _ in range(rng.randint(min_syllables, max_syllables)):
        parts.append(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS))
    return "".join(parts).capitalize()


def _unique_names(rng: random.Random, count: int, min_syllables: int, max_syllables: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = _invent(rng, min_syllables, max_syllables)
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


class SyntheticWorld:
    """A deterministic little world of learnable facts, arithmetic, patterns and stories."""

    def __init__(self, seed: int = 0, *, num_lands: int = 24, num_people: int = 24, num_rare_names: int = 20_000):
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        for field, value in (("num_lands", num_lands), ("num_people", num_people), ("num_rare_names", num_rare_names)):
            if value < 1:
                raise ValueError(f"{field} must be >= 1, got {value}")
        self.seed = seed
        rng = random.Random(f"speedrun-synthetic-world-{seed}")
        taken: set[str] = set()
        self.lands = _unique_names(rng, num_lands, 2, 3, taken)
        self.people = _unique_names(rng, num_people, 2, 2, taken)
        cities = _unique_names(rng, num_lands, 2, 3, taken)
        languages = [name + "ish" for name in _unique_names(rng, 8, 1, 2, taken)]
        self._objects: dict[str, list[str]] = {
            "capital": cities,
            "language": languages,
            "animal": list(ANIMALS),
            "color": list(COLORS),
            "food": list(FOODS),
            "job": list(JOBS),
        }
        self.relations: list[str] = list(_RELATIONS)
        facts: list[Fact] = []
        for i, land in enumerate(self.lands):
            facts.append(Fact(land, "capital", cities[i]))  # one capital per land
            facts.append(Fact(land, "language", rng.choice(languages)))
            facts.append(Fact(land, "animal", rng.choice(ANIMALS)))
        for person in self.people:
            for relation in _PERSON_RELATIONS:
                facts.append(Fact(person, relation, rng.choice(self._objects[relation])))
        self.facts: list[Fact] = facts
        self._facts_by_subject: dict[str, list[Fact]] = {}
        for fact in facts:
            self._facts_by_subject.setdefault(fact.subject, []).append(fact)
        # A Zipf-distributed pool of invented names for story characters and towns.
        self._rare_names = _unique_names(rng, num_rare_names, 1, 4, taken)
        self._rare_cum_weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(num_rare_names)))

    # -- the public API used by the eval part ---------------------------------------------------

    def objects_of(self, relation: str) -> list[str]:
        """Every object a relation can take (the distractor candidates of a multiple-choice task)."""
        if relation not in self._objects:
            raise ValueError(f"unknown relation {relation!r}; known: {', '.join(self.relations)}")
        return list(self._objects[relation])

    def fact_text(self, fact: Fact) -> tuple[str, str]:
        """(prefix, object): documents state the fact as ``prefix + " " + obj + "."``."""
        if fact.relation not in _RELATIONS:
            raise ValueError(f"unknown relation {fact.relation!r}")
        return _RELATIONS[fact.relation][0].format(s=fact.subject), fact.obj

    def arithmetic(self, rng: random.Random) -> tuple[str, str]:
        """A small-number arithmetic fact, e.g. ("12 plus 7 is", "19")."""
        op = rng.choice(("plus", "plus", "minus", "times"))
        if op == "times":
            a, b = rng.randint(0, 10), rng.randint(0, 10)
            return f"{a} times {b} is", str(a * b)
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        if op == "minus":
            a, b = max(a, b), min(a, b)
            return f"{a} minus {b} is", str(a - b)
        return f"{a} plus {b} is", str(a + b)

    def sequence(self, rng: random.Random) -> tuple[str, str]:
        """A repeated or continued pattern and its next element, e.g. ("a b c a b c a b", "c")."""
        kind = rng.randrange(4)
        if kind == 0:  # counting up by a small step
            step = rng.randint(1, 3)
            start = rng.randint(0, 20)
            items = [str(start + step * i) for i in range(rng.randint(4, 7))]
        else:
            pool = (_LETTERS, COLORS, ANIMALS)[kind - 1]
            period = rng.sample(pool, rng.randint(2, 4))
            length = len(period) * rng.randint(2, 3) + rng.randint(1, len(period))
            items = [period[i % len(period)] for i in range(length)]
        return " ".join(items[:-1]), items[-1]

    def document(self, rng: random.Random) -> str:
        """One document: a few paragraphs of facts, arithmetic, patterns and stories (varied lengths)."""
        num_paragraphs = min(1 + int(rng.expovariate(0.35)), 24)
        makers = (self._fact_paragraph, self._story, self._arithmetic_paragraph, self._pattern_paragraph)
        weights = (4, 3, 2, 1)
        paragraphs = [rng.choices(makers, weights)[0](rng) for _ in range(num_paragraphs)]
        return "\n\n".join(paragraphs)

    def documents(self, n: int, seed: int) -> list[str]:
        """``n`` documents from a generator seeded by (world seed, ``seed``)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = random.Random(f"speedrun-synthetic-docs-{self.seed}-{seed}")
        return [self.document(rng) for _ in range(n)]

    # -- paragraph makers --------------------------------------------------------------------------

    def _statement(self, fact: Fact, rng: random.Random) -> str:
        prefix, obj = self.fact_text(fact)
        if rng.random() < 0.7:
            return f"{prefix} {obj}."
        return rng.choice(_RELATIONS[fact.relation][1]).format(s=fact.subject, o=obj)

    def _rare_name(self, rng: random.Random) -> str:
        i = bisect.bisect_left(self._rare_cum_weights, rng.random() * self._rare_cum_weights[-1])
        return self._rare_names[min(i, len(self._rare_names) - 1)]

    def _fact_paragraph(self, rng: random.Random) -> str:
        if rng.random() < 0.5:  # all about one subject
            subject = rng.choice([*self.lands, *self.people])
            facts = list(self._facts_by_subject[subject])
            rng.shuffle(facts)
            intro = (
                f"{subject} is a land far to the {rng.choice(['north', 'south', 'east', 'west'])}."
                if subject in self.lands
                else f"This is about {subject}."
            )
            return " ".join([intro, *(self._statement(f, rng) for f in facts)])
        facts = rng.sample(self.facts, rng.randint(2, 6))
        return " ".join(self._statement(f, rng) for f in facts)

    def _arithmetic_paragraph(self, rng: random.Random) -> str:
        lines = []
        for _ in range(rng.randint(2, 8)):
            question, answer = self.arithmetic(rng)
            lines.append(f"{question} {answer}.")
        head = rng.choice(["Some sums:", "Math practice.", "Let us count.", "Numbers:"])
        return head + " " + " ".join(lines)

    def _pattern_paragraph(self, rng: random.Random) -> str:
        lines = []
        for _ in range(rng.randint(1, 4)):
            question, answer = self.sequence(rng)
            lines.append(f"{question} {answer}.")
        return rng.choice(["Patterns:", "What comes next?", "A pattern:"]) + " " + " ".join(lines)

    def _story(self, rng: random.Random) -> str:
        hero, friend, town = self._rare_name(rng), self._rare_name(rng), self._rare_name(rng)
        job, food, animal, color = rng.choice(JOBS), rng.choice(FOODS), rng.choice(ANIMALS), rng.choice(COLORS)
        land = rng.choice(self.lands)
        sentences = [
            rng.choice(
                [
                    f"Once upon a time, there was a {job} named {hero} who lived in {town}.",
                    f"Long ago, in the town of {town}, lived a {job} called {hero}.",
                    f"{hero} was a {job} from {town}.",
                ]
            )
        ]
        middle = [
            f"Every morning, {hero} ate {food} and walked to the market.",
            f"One day, {hero} met a {color} {animal} near the river.",
            f'"Hello, {hero}," said {friend}. "Where are you going?"',
            f"{hero} and {friend} traveled to {land}.",
            f"They saw {_NUMBER_WORDS[rng.randint(2, 10)]} {animal}s on the road.",
            f"{friend} gave {hero} a {color} hat.",
            f"The sky over {town} was {color} that evening.",
        ]
        sentences += rng.sample(middle, rng.randint(2, len(middle)))
        if rng.random() < 0.5:  # stories mention world facts too
            sentences.append(self._statement(rng.choice(self._facts_by_subject[land]), rng))
        sentences.append(rng.choice(["The end.", f"{hero} was happy.", "And that is the story.", "They slept well."]))
        return " ".join(sentences)


def write_synthetic_corpus(
    out_dir: Path | str, *, seed: int = 0, num_shards: int = 3, docs_per_shard: int = 4096
) -> list[Path]:
    """Write ``num_shards`` parquet shards ``shard_00000.parquet``... (the last is validation) and the manifest.

    The layout is ClimbMix's: one string column ``text``, row groups of 1024 documents (zstd pages with
    CRC checksums, so a corrupted byte is caught when the shard is read).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainer.data.manifest import write_manifest
    from trainer.data.paths import shard_name

    if num_shards < 2:
        raise ValueError(
            f"num_shards must be >= 2 (at least one train shard and the validation shard), got {num_shards}"
        )
    if docs_per_shard < 1:
        raise ValueError(f"docs_per_shard must be >= 1, got {docs_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = SyntheticWorld(seed)
    paths = []
    for i in range(num_shards):
        docs = world.documents(docs_per_shard, seed=i)
        table = pa.table({"text": pa.array(docs, type=pa.string())})
        path = out / shard_name(i)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        pq.write_table(table, tmp, row_group_size=ROW_GROUP_DOCS, compression="zstd", write_page_checksum=True)
        os.replace(tmp, path)
        paths.append(path)
    write_manifest(out, [p.name for p in paths], val_shard=paths[-1].name)
    return paths
