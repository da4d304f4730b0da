"""A small Dockerfile reader for the deployment checks (no container engine runs in CI).

It understands what the checks need: comments and blank lines, backslash line continuations
(comment lines inside a continuation are dropped, as Docker does), parser directives, global
``ARG`` defaults substituted into ``FROM``, stages with ``AS name``, and the exec (JSON) and shell
forms of ``CMD``/``ENTRYPOINT``/``HEALTHCHECK CMD``.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?[-+][^}]*)?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, ...
    value: str  # the arguments, continuations joined with a space
    line: int  # 1-based line where the instruction starts


@dataclass
class Stage:
    base: str  # the FROM image with global ARGs substituted
    name: str | None
    index: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str | None]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        """The stage `docker build` produces without --target: the last one."""
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(f"{self.path.name}: no stage named {name!r}")

    def external_bases(self) -> list[tuple[Stage, str]]:
        """(stage, image) for every FROM that names an image rather than an earlier stage."""
        names = {s.name for s in self.stages if s.name}
        return [(s, s.base) for s in self.stages if s.base not in names and s.base != "scratch"]

    def resolved_stage(self, stage: Stage) -> list[Stage]:
        """The chain of stages from ``stage`` back to its external base (nearest first)."""
        chain = [stage]
        by_name = {s.name: s for s in self.stages if s.name}
        while chain[-1].base in by_name:
            chain.append(by_name[chain[-1].base])
        return chain

    def effective(self, stage: Stage, keyword: str) -> Instruction | None:
        """An instruction that a stage inherits from its parents when it does not set it (USER, CMD, ...)."""
        for s in self.resolved_stage(stage):
            found = s.last(keyword)
            if found is not None:
                return found
        return None


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(first line number, instruction text) with continuations joined and comments dropped."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    in_directives = True
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if in_directives and re.match(r"#\s*[A-Za-z]+\s*=", stripped):
            continue  # parser directive (syntax=, escape=), only allowed at the very top
        if stripped.startswith("#") or (not stripped and not buf):
            if stripped:
                in_directives = False
            continue
        in_directives = False
        if not stripped:
            continue  # a blank line inside a continuation
        if not buf:
            start = number
        if stripped.endswith("\\"):
            buf.append(stripped[:-1].strip())
            continue
        buf.append(stripped)
        out.append((start, " ".join(part for part in buf if part)))
        buf = []
    if buf:
        raise ValueError(f"line {start}: the file ends inside a line continuation")
    return out


def substitute(value: str, variables: dict[str, str | None]) -> str:
    """``${NAME}`` / ``$NAME`` replaced by its value; unknown names stay as they are."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        got = variables.get(name)
        return got if got is not None else m.group(0)

    return _VAR.sub(repl, value)


def _arg_pairs(value: str) -> list[tuple[str, str | None]]:
    pairs: list[tuple[str, str | None]] = []
    for token in shlex.split(value):
        name, eq, default = token.partition("=")
        pairs.append((name, default if eq else None))
    return pairs


def parse(path: Path) -> Dockerfile:
    text = path.read_text(encoding="utf-8")
    global_args: dict[str, str | None] = {}
    stages: list[Stage] = []
    for line, instruction in logical_lines(text):
        keyword, _, value = instruction.partition(" ")
        keyword = keyword.upper()
        value = value.strip()
        if keyword == "FROM":
            parts = value.split()
            parts = [p for p in parts if not p.startswith("--platform=")]
            if not parts:
                raise ValueError(f"{path.name}:{line}: FROM without an image")
            name = None
            if len(parts) == 3 and parts[1].upper() == "AS":
                name = parts[2]
            elif len(parts) != 1:
                raise ValueError(f"{path.name}:{line}: cannot read FROM {value!r}")
            stages.append(Stage(base=substitute(parts[0], global_args), name=name, index=len(stages)))
            continue
        if not stages:
            if keyword != "ARG":
                raise ValueError(f"{path.name}:{line}: {keyword} before the first FROM")
            global_args.update(_arg_pairs(value))
            continue
        stages[-1].instructions.append(Instruction(keyword, value, line))
    if not stages:
        raise ValueError(f"{path.name}: no FROM")
    return Dockerfile(path=path, global_args=global_args, stages=stages)


def command_words(instruction: Instruction) -> list[str]:
    """The argv of a CMD/ENTRYPOINT (exec form) or ``/bin/sh -c <text>`` (shell form)."""
    value = instruction.value
    if value.startswith("["):
        words = json.loads(value)
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise ValueError(f"line {instruction.line}: exec form must be a JSON list of strings")
        return words
    return ["/bin/sh", "-c", value]


def healthcheck_words(instruction: Instruction) -> list[str]:
    """The probe command of ``HEALTHCHECK [options] CMD ...`` (options dropped)."""
    _options, sep, rest = instruction.value.partition("CMD ")
    if not sep:
        raise ValueError(f"line {instruction.line}: HEALTHCHECK without CMD")
    return command_words(Instruction("CMD", rest.strip(), instruction.line))


def stage_args(stage: Stage) -> dict[str, str | None]:
    """ARG defaults declared inside a stage."""
    found: dict[str, str | None] = {}
    for instruction in stage.all("ARG"):
        found.update(_arg_pairs(instruction.value))
    return found
