"""What the deployment-file checks share: the files' paths, their parsed forms, and the extraction of
the ``speedrun`` commands they and ``docs/deploy.md`` run, the site image's health probe, and the
entropy test of the secret scan (``test_deploy_files.py``, ``test_deploy_config.py``)."""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import re
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parser import Dockerfile, healthcheck_words, parse

from submissions.sandbox import project_packages

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
SERVICE = DOCKER / "service.Dockerfile"
TRAINER = DOCKER / "trainer.Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENV_EXAMPLE = DOCKER / ".env.example"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SOURCE_DIRS = tuple(project_packages())

SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE_KEY)", re.IGNORECASE)
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}")
DEV_DEFAULT_MARK = "dev-only-change-me"
# `docker run` options that take no value (all others do, unless written --opt=value)
DOCKER_RUN_FLAGS = {"-d", "--detach", "--rm", "-i", "-t", "-it", "-ti", "--interactive", "--tty", "--init"}
DOCKER_RUN_FLAGS |= {"--privileged", "--read-only", "-P", "--publish-all", "-q", "--quiet"}


# --- helpers ------------------------------------------------------------------------------------


@cache
def service() -> Dockerfile:
    return parse(SERVICE)


@cache
def trainer() -> Dockerfile:
    return parse(TRAINER)


@cache
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "compose.yaml must be a mapping"
    return data


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, eq, value = line.partition("=")
        assert eq and re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), f".env.example:{number}: not NAME=value: {raw!r}"
        values[name] = value
    return values


@cache
def cli_parser() -> argparse.ArgumentParser:
    from speedrun.cli import build_parser

    return build_parser()


def parse_speedrun(argv: list[str]) -> str | None:
    """None when the real `speedrun` parser accepts argv, else argparse's complaint."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            cli_parser().parse_args(argv)
    except SystemExit as exc:
        if exc.code == 0 and "--help" in argv:
            return None
        return err.getvalue().strip() or f"exit {exc.code}"
    return None


def torchrun_split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(torchrun's own options, the speedrun argv after ``-m speedrun``), parsed by torchrun's parser."""
    from torch.distributed.run import get_args_parser

    args = get_args_parser().parse_args(argv)
    assert args.module, f"torchrun must run the module: -m speedrun ({shlex.join(argv)})"
    assert args.training_script == "speedrun", f"torchrun runs {args.training_script!r}, not speedrun"
    return argv[: argv.index("-m")], list(args.training_script_args)


def shell_commands(block: str) -> Iterator[str]:
    """Commands of a shell code block: continuations joined, comments and prompts dropped, split on ; && ||."""
    joined = re.sub(r"\\\n\s*", " ", block)
    for raw in joined.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        if not line or line.startswith("#"):
            continue
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
            part = part.split(" #", 1)[0].strip()
            part = re.split(r"\s[12]?>>?\s?", part, maxsplit=1)[0].strip()  # drop redirections
            if part:
                yield part


def code_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```(?:bash|sh|shell|console)?\n(.*?)^```", markdown, flags=re.DOTALL | re.MULTILINE)


def speedrun_invocations(command: str) -> Iterator[tuple[str, list[str]]]:
    """(kind, argv) for each way a shell command runs the speedrun CLI.

    kind is "speedrun" (argv given to the speedrun parser) or "torchrun" (the torchrun options).
    Covers `speedrun ...`, `python -m speedrun ...`, `torchrun ... -m speedrun ...`, `docker ...
    exec/run ... speedrun ...`, and `docker run ... speedrun-trainer[:tag] ARGS` (entry point
    `speedrun worker`) or `speedrun-site[:tag] ARGS` (entry point `speedrun`).
    """
    words = shlex.split(command)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words = words[1:]  # leading VAR=value assignments
    if not words:
        return
    if words[:2] == ["docker", "run"]:
        yield from _docker_run_invocations(words)
        return
    if words[0] == "torchrun":
        yield from _torchrun_invocations(words[1:])
        return
    services = set(compose()["services"])
    for i, word in enumerate(words):
        runs_module = i >= 2 and words[i - 1] == "-m" and words[i - 2].startswith("python")
        in_container = words[0] == "docker" and i >= 1 and words[i - 1] in services  # `exec site speedrun ...`
        if word == "speedrun" and (i == 0 or runs_module or in_container):
            yield "speedrun", words[i + 1 :]
            return


def _torchrun_invocations(args: list[str]) -> Iterator[tuple[str, list[str]]]:
    options, argv = torchrun_split(args)
    yield "torchrun", options
    yield "speedrun", argv


def _docker_run_invocations(words: list[str]) -> Iterator[tuple[str, list[str]]]:
    """`docker run [options] IMAGE [args]` of one of our images: the entry point (or --entrypoint) + args."""
    i = 2
    while i < len(words) and words[i].startswith("-"):
        takes_value = "=" not in words[i] and words[i] not in DOCKER_RUN_FLAGS
        i += 2 if takes_value else 1
    if i < len(words):
        word = words[i]
        image = re.fullmatch(r"(?:[\w.-]+/)*speedrun-(trainer|site)(?::[\w.-]+)?", word)
        if image is None:
            return
        options, args = words[2:i], words[i + 1 :]
        entrypoint = options[options.index("--entrypoint") + 1] if "--entrypoint" in options else None
        if entrypoint is None and not args:
            return  # the image's own command, checked by test_image_commands_parse_with_the_real_cli
        if entrypoint is None:
            yield "speedrun", (["worker"] if image.group(1) == "trainer" else []) + args
        elif entrypoint == "speedrun":
            yield "speedrun", args
        elif entrypoint == "torchrun":
            yield from _torchrun_invocations(args)
        return  # another program from the image, or another image: nothing of ours to check


def doc_invocations() -> list[tuple[str, str, list[str]]]:
    found: list[tuple[str, str, list[str]]] = []
    for block in code_blocks(DEPLOY_DOC.read_text(encoding="utf-8")):
        for command in shell_commands(block):
            for kind, argv in speedrun_invocations(command):
                found.append((command, kind, argv))
    return found


def deploy_texts() -> dict[str, str]:
    files = [SERVICE, TRAINER, COMPOSE, ENV_EXAMPLE, DEPLOY_DOC, *DOCKER.glob("*.dockerignore")]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in files}


def has_version(ref: str) -> bool:
    """A tag that names a version (digits), not latest/stable/a bare name (a digest may follow)."""
    name = ref.partition("@")[0]
    tag = name.rsplit("/", 1)[-1].partition(":")[2]
    if not tag:
        return False
    return tag not in {"latest", "stable", "edge", "nightly", "main", "master"} and bool(re.search(r"\d", tag))


def health_probe_path() -> str:
    """The URL path the site image's HEALTHCHECK requests on 127.0.0.1 (at the port `speedrun serve` listens on)."""
    df = service()
    health = df.effective(df.final, "HEALTHCHECK")
    assert health is not None, "no HEALTHCHECK in the site image"
    probe = " ".join(healthcheck_words(health))
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", probe)
    assert found, f"the HEALTHCHECK requests no http://127.0.0.1:PORT/PATH URL: {probe}"
    return found.group(2)


def entropy_bits(text: str) -> float:
    """Shannon entropy per character: ~3.5 for identifiers like FLASH_ATTENTION_DISABLE_FP8, ~5 for a random key."""
    counts = [text.count(c) for c in set(text)]
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts)
