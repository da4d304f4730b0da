"""Checks of the deployment files that can be made without a container engine.

The Dockerfiles are read with a small parser of our own (``dockerfile_parser``), compose with
PyYAML; every ``speedrun ...`` command they or ``docs/deploy.md`` run is parsed by the real CLI
parser, every ``SPEEDRUN_*`` variable must be a field of the real settings (or be read by the
code), base images must be pinned and no secret may be written into them.
"""

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

import pytest
import yaml
from dockerfile_parser import (
    Dockerfile,
    Instruction,
    command_words,
    healthcheck_words,
    logical_lines,
    parse,
    stage_args,
    substitute,
)

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


# --- the parser itself ---------------------------------------------------------------------------


def test_parser_joins_continuations_and_drops_comments(tmp_path: Path) -> None:
    path = tmp_path / "x.Dockerfile"
    path.write_text(
        "# syntax=docker/dockerfile:1.7\n"
        "ARG BASE=python:3.11.9-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN echo one \\\n"
        "    # a comment inside the continuation\n"
        "    && echo two\n"
        "\n"
        "FROM build\n"
        'CMD ["speedrun", "serve"]\n'
        "USER 10001\n"
    )
    df = parse(path)
    assert [s.base for s in df.stages] == ["python:3.11.9-slim", "build"]
    assert df.stages[0].all("RUN")[0].value == "echo one && echo two"
    assert df.stages[0].all("RUN")[0].line == 4
    assert df.external_bases() == [(df.stages[0], "python:3.11.9-slim")]
    assert command_words(df.final.all("CMD")[0]) == ["speedrun", "serve"]
    assert df.effective(df.final, "USER") == Instruction("USER", "10001", 10)


def test_parser_rejects_a_dangling_continuation() -> None:
    with pytest.raises(ValueError, match="continuation"):
        logical_lines("FROM x:1\nRUN a \\\n")


def test_parser_shell_form_and_healthcheck_options() -> None:
    assert command_words(Instruction("CMD", "speedrun serve --port 1", 1)) == [
        "/bin/sh",
        "-c",
        "speedrun serve --port 1",
    ]
    probe = healthcheck_words(Instruction("HEALTHCHECK", '--interval=5s --retries=3 CMD ["true"]', 1))
    assert probe == ["true"]
    assert substitute("a-${X}-$Y-${Z:-d}", {"X": "1", "Y": "2"}) == "a-1-2-${Z:-d}"


def test_invocation_extraction_knows_the_shapes_docs_use() -> None:
    got = list(speedrun_invocations("docker compose -f docker/compose.yaml exec site speedrun admin --help"))
    assert got == [("speedrun", ["admin", "--help"])]
    got = list(
        speedrun_invocations("docker run --gpus all -v /d:/data speedrun-trainer:dev --server http://x --token t")
    )
    assert got == [("speedrun", ["worker", "--server", "http://x", "--token", "t"])]
    assert list(speedrun_invocations("docker run --entrypoint bash speedrun-trainer:dev -c true")) == []
    assert list(speedrun_invocations("pg_dump --format=custom speedrun")) == []
    got = list(speedrun_invocations("docker run -d --name speedrun-site -v speedrun-site:/v speedrun-site serve"))
    assert got == [("speedrun", ["serve"])]
    got = list(speedrun_invocations("docker run --rm --entrypoint speedrun speedrun-trainer:x data verify"))
    assert got == [("speedrun", ["data", "verify"])]


def test_secret_scan_tells_keys_from_identifiers() -> None:
    import secrets

    assert _entropy_bits(secrets.token_urlsafe(32)) > 4.2
    assert _entropy_bits("FLASH_ATTENTION_DISABLE_PAGEDKV=TRUE") < 4.2


# --- base images: pinned -------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [SERVICE, TRAINER], ids=lambda p: p.name)
def test_base_images_are_pinned_to_versions(dockerfile: Path) -> None:
    df = parse(dockerfile)
    bases = df.external_bases()
    assert bases, f"{dockerfile.name}: no external base image"
    for stage, image in bases:
        assert "$" not in image, f"{dockerfile.name}: FROM {image!r} of stage {stage.name} uses an unset ARG"
        assert has_version(image), f"{dockerfile.name}: base {image!r} is not pinned to a versioned tag"


def test_service_base_is_slim_python_pinned_by_digest() -> None:
    images = {image for _, image in service().external_bases()}
    assert len(images) == 1, f"build and runtime stages should share one base, got {images}"
    (image,) = images
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", image), image


def test_trainer_base_is_a_cuda_devel_image() -> None:
    images = {image for _, image in trainer().external_bases()}
    assert len(images) == 1, images
    (image,) = images
    # devel: flash-attn compiles with nvcc; the tag names the exact CUDA release
    assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-(cudnn-)?devel-ubuntu\d+\.\d+(@sha256:[0-9a-f]{64})?", image), image


def test_compose_images_are_pinned() -> None:
    for name, svc in compose()["services"].items():
        image = svc.get("image")
        assert image or "build" in svc, f"service {name}: neither image nor build"
        if image and "build" not in svc:
            assert has_version(image) and "@sha256:" in image, f"service {name}: {image!r} not pinned by version+digest"
    assert compose()["services"]["db"]["image"].startswith("postgres:")


def test_torch_pins_match_the_tested_torch() -> None:
    import torch

    tested = torch.__version__.split("+")[0]
    for df in (service(), trainer()):
        pins = [stage_args(s).get("TORCH_VERSION") for s in df.stages if "TORCH_VERSION" in stage_args(s)]
        assert pins, f"{df.path.name}: no TORCH_VERSION build arg"
        assert set(pins) == {tested}, f"{df.path.name}: torch {pins} but the project is tested with {tested}"
    build = service().stage("build")
    assert stage_args(build)["TORCH_INDEX_URL"].endswith("/whl/cpu"), "the site image must install CPU torch"
    assert re.search(r"/whl/cu\d+$", stage_args(trainer().stage("base"))["TORCH_INDEX_URL"] or "")


def test_flash_attn_in_the_image_is_pinned_and_the_gpu_extra_needs_no_compile() -> None:
    import tomllib

    from packaging.requirements import Requirement
    from packaging.version import Version

    # the [gpu] extra is wheels only (kernels: a prebuilt FA3 from the kernel hub); flash-attn left it (issue 13)
    extras = [
        Requirement(r).name
        for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    ]
    assert "kernels" in extras and "flash-attn" not in extras, extras
    # the image still builds its own FA2 (sealed runs cannot download the hub kernel): an exact, recent pin
    version = stage_args(trainer().stage("fa2"))["FLASH_ATTN_VERSION"]
    assert version and re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert Version(version) >= Version("2.6"), f"flash-attn {version}: window_size=(w, 0) needs >= 2.6 here"
    assert stage_args(trainer().stage("fa2"))["MAX_JOBS"], "the flash-attn build must bound MAX_JOBS"


# --- what goes into the images ------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", [SERVICE, TRAINER], ids=lambda p: p.name)
def test_copied_sources_exist_and_cover_every_package(dockerfile: Path) -> None:
    import tomllib

    copied: set[str] = set()
    for stage in parse(dockerfile).stages:
        for copy in stage.all("COPY"):
            words = [w for w in shlex.split(copy.value) if not w.startswith("--")]
            if any(w.startswith("--from=") for w in shlex.split(copy.value)):
                continue
            for src in words[:-1]:
                assert (ROOT / src).exists(), (
                    f"{dockerfile.name}:{copy.line}: COPY source {src} is not in the repository"
                )
                copied.add(src.rstrip("/"))
    includes = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.rstrip("*") for p in includes}
    assert packages <= copied, f"{dockerfile.name}: packages {sorted(packages - copied)} are not copied into the image"
    assert {"pyproject.toml", "README.md"} <= copied


@pytest.mark.parametrize("dockerfile", [SERVICE, TRAINER], ids=lambda p: p.name)
def test_dockerignore_keeps_local_state_out_of_the_context(dockerfile: Path) -> None:
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    assert ignore.exists(), f"{ignore.name} is missing (BuildKit reads <Dockerfile>.dockerignore)"
    patterns = {line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")}
    for needed in (".git", "**/__pycache__", "runs", "docker/.env"):
        assert needed in patterns, f"{ignore.name}: {needed} is not ignored"


def test_service_final_stage_runs_as_non_root() -> None:
    df = service()
    user = df.effective(df.final, "USER")
    assert user is not None, "the site image sets no USER: it would run as root"
    name = user.value.split(":")[0]
    assert name not in {"root", "0"}, f"the site image runs as {user.value}"


@pytest.mark.parametrize("stage", ["trainer", "trainer-fa3"])
def test_trainer_targets_run_the_worker_as_non_root(stage: str) -> None:
    df = trainer()
    target = df.stage(stage)
    user = df.effective(target, "USER")
    assert user is not None and user.value.split(":")[0] not in {"root", "0"}
    entry = df.effective(target, "ENTRYPOINT")
    assert entry is not None and command_words(entry) == ["speedrun", "worker"]
    assert df.final.name == "trainer", "the default target (last stage) must be the FA2 trainer"


def health_probe_path() -> str:
    """The URL path the site image's HEALTHCHECK requests on 127.0.0.1 (at the port `speedrun serve` listens on)."""
    df = service()
    health = df.effective(df.final, "HEALTHCHECK")
    assert health is not None, "no HEALTHCHECK in the site image"
    probe = " ".join(healthcheck_words(health))
    found = re.search(r"http://127\.0\.0\.1:(\d+)(/[\w/.-]*)", probe)
    assert found, f"the HEALTHCHECK requests no http://127.0.0.1:PORT/PATH URL: {probe}"
    return found.group(2)


def test_service_healthcheck_probes_the_served_port() -> None:
    df = service()
    probe = " ".join(healthcheck_words(df.effective(df.final, "HEALTHCHECK")))  # type: ignore[arg-type]
    cmd = df.effective(df.final, "CMD")
    entry = df.effective(df.final, "ENTRYPOINT")
    assert cmd is not None and entry is not None
    argv = command_words(entry) + command_words(cmd)
    assert argv[:2] == ["speedrun", "serve"], argv
    port = argv[argv.index("--port") + 1]
    assert f"http://127.0.0.1:{port}{health_probe_path()}" in probe, probe
    assert df.final.last("EXPOSE") is not None and df.final.last("EXPOSE").value == port  # type: ignore[union-attr]
    assert health_probe_path().startswith("/api/"), "probe the JSON API (cheap, no page rendering)"
    assert health_probe_path() in DEPLOY_DOC.read_text(), "docs/deploy.md should name the probed path"


def test_the_site_answers_the_probed_health_path(tmp_path: Path) -> None:
    """A fresh site (migrations on an empty SQLite file, as on first start) answers the probe with 200."""
    import asyncio

    import httpx

    from leaderboard.settings import Settings
    from speedrun.site import create_app

    app = create_app(Settings(home=tmp_path, seed_on_start=False))

    async def probe() -> int:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as client:
                return (await client.get(health_probe_path())).status_code

    status = asyncio.run(probe())
    assert status == 200, f"the image HEALTHCHECK probes {health_probe_path()}, which answers {status}"


def test_service_image_runs_migrations_on_start() -> None:
    from leaderboard.settings import Settings

    env = " ".join(i.value for i in service().final.all("ENV"))
    assert "SPEEDRUN_MIGRATE_ON_START=true" in env
    assert "migrate_on_start" in Settings.model_fields


# --- commands exist in the real CLI --------------------------------------------------------------


def test_image_commands_parse_with_the_real_cli() -> None:
    df = service()
    argv = command_words(df.effective(df.final, "ENTRYPOINT")) + command_words(df.effective(df.final, "CMD"))  # type: ignore[arg-type]
    assert argv[0] == "speedrun"
    assert parse_speedrun(argv[1:]) is None, f"site image command {argv}: {parse_speedrun(argv[1:])}"
    tr = trainer()
    for stage in ("trainer", "trainer-fa3"):
        argv = command_words(tr.effective(tr.stage(stage), "ENTRYPOINT")) + command_words(
            tr.effective(tr.stage(stage), "CMD")  # type: ignore[arg-type]
        )
        assert parse_speedrun(argv[1:]) is None, f"trainer image command {argv}: {parse_speedrun(argv[1:])}"


def test_compose_commands_parse_with_the_real_cli() -> None:
    images = {"docker/service.Dockerfile": service(), "docker/trainer.Dockerfile": trainer()}
    checked = 0
    for name, svc in compose()["services"].items():
        if "build" not in svc:
            continue
        df = images[svc["build"]["dockerfile"]]
        final = df.stage(svc["build"]["target"]) if "target" in svc["build"] else df.final
        entry = svc.get("entrypoint") or command_words(df.effective(final, "ENTRYPOINT"))  # type: ignore[arg-type]
        command = svc.get("command") or command_words(df.effective(final, "CMD"))  # type: ignore[arg-type]
        argv = [*entry, *command]
        assert argv[0] == "speedrun", f"service {name} runs {argv[0]}"
        problem = parse_speedrun(argv[1:])
        assert problem is None, f"service {name}: `{shlex.join(argv)}` is rejected by the CLI: {problem}"
        checked += 1
    assert checked == 2


def test_docs_commands_parse_with_the_real_cli() -> None:
    found = doc_invocations()
    kinds = [kind for _, kind, _ in found]
    assert kinds.count("torchrun") >= 2, "docs/deploy.md should show single-node and multi-node torchrun"
    groups = {argv[0] for _, kind, argv in found if kind == "speedrun" and argv}
    assert {"serve", "worker", "train", "admin", "data"} <= groups, groups
    problems = [
        f"`{command}`: {parse_speedrun(argv)}"
        for command, kind, argv in found
        if kind == "speedrun" and parse_speedrun(argv) is not None
    ]
    assert not problems, "docs/deploy.md runs commands the CLI rejects:\n" + "\n".join(problems)


def test_docs_multi_node_launch_uses_c10d_rendezvous() -> None:
    multi = [argv for _, kind, argv in doc_invocations() if kind == "torchrun" and "--standalone" not in argv]
    assert multi, "no multi-node torchrun command in docs/deploy.md"
    for argv in multi:
        text = " ".join(argv)
        assert "--rdzv-backend c10d" in text or "--rdzv-backend=c10d" in text, text
        assert "--rdzv-endpoint" in text and "--nnodes" in text, text


# --- configuration: settings names, compose wiring -----------------------------------------------


def test_speedrun_env_vars_exist_in_settings_or_code() -> None:
    from leaderboard.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    assert prefix == "SPEEDRUN_"
    fields = {prefix + name.upper() for name in Settings.model_fields}
    source = "\n".join(p.read_text(encoding="utf-8") for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py"))
    unknown: dict[str, list[str]] = {}
    for path, text in deploy_texts().items():
        for name in set(re.findall(r"\bSPEEDRUN_[A-Z0-9_]+", text)):
            if name not in fields and f'"{name}"' not in source:
                unknown.setdefault(name, []).append(path)
    assert not unknown, f"variables that neither leaderboard.settings.Settings nor the code reads: {unknown}"


def test_compose_topology() -> None:
    services = compose()["services"]
    assert set(services) == {"db", "site", "worker"}
    db, site, worker = services["db"], services["site"], services["worker"]
    assert any(v.endswith(":/var/lib/postgresql/data") for v in db["volumes"]), "PostgreSQL data needs a volume"
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert site["depends_on"]["db"]["condition"] == "service_healthy"
    assert site["environment"]["SPEEDRUN_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@db:5432/" in site["environment"]["SPEEDRUN_DATABASE_URL"]
    assert any(v.endswith(":/var/lib/speedrun") for v in site["volumes"]), "artifacts need a volume"
    assert worker["profiles"] == ["gpu"], "the worker must stay off unless --profile gpu"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    command = worker["command"]
    server = command[command.index("--server") + 1]
    assert server == "http://site:8000", "the worker must reach the site by its compose service name"
    for svc in (site, worker):
        assert (ROOT / svc["build"]["dockerfile"]).exists()
        assert (COMPOSE.parent / svc["build"]["context"]).resolve() == ROOT
    declared = set(compose()["volumes"])
    used = {v.split(":")[0] for s in services.values() for v in s.get("volumes", [])}
    assert used <= declared, f"undeclared volumes {used - declared}"


def test_site_settings_in_compose_validate() -> None:
    from leaderboard.settings import Settings

    env = env_example()
    values = {
        key[len("SPEEDRUN_") :].lower(): INTERPOLATION.sub(
            lambda m: env.get(re.split(r"[:?+-]", m.group(0)[2:-1], maxsplit=1)[0], m.group(0)), str(value)
        )
        for key, value in compose()["services"]["site"]["environment"].items()
    }
    settings = Settings(**values)  # raises ValueError naming the field if compose sets a bad value
    assert settings.resolved_database_url.startswith("postgresql+psycopg://speedrun:")


# --- secrets -------------------------------------------------------------------------------------


def _interpolated_names(text: str) -> set[str]:
    return {re.split(r"[:?+-]", m[2:-1], maxsplit=1)[0] for m in INTERPOLATION.findall(text)}


def test_compose_secrets_come_from_env_file() -> None:
    for name, svc in compose()["services"].items():
        for key, value in (svc.get("environment") or {}).items():
            text = str(value)
            if SECRET_NAME.search(key):
                assert INTERPOLATION.fullmatch(text), f"service {name}: {key} holds a literal, not ${{...}}"
            for userinfo in re.findall(r"://[^:/@\s]+:([^@\s]+)@", text):
                assert INTERPOLATION.fullmatch(userinfo), f"service {name}: {key} has a literal password in its URL"
        command = svc.get("command") or []
        for flag in ("--token", "--password", "--secret"):
            if flag in command:
                value = command[command.index(flag) + 1]
                assert INTERPOLATION.fullmatch(value), f"service {name}: {flag} is a literal"


def test_env_example_documents_every_compose_variable_with_dev_defaults() -> None:
    env = env_example()
    used = _interpolated_names(COMPOSE.read_text(encoding="utf-8"))
    assert used <= set(env), f"compose uses variables that .env.example does not document: {used - set(env)}"
    assert set(env) <= used, f".env.example has variables compose never uses: {set(env) - used}"
    for name, value in env.items():
        if SECRET_NAME.search(name):
            assert value.startswith(DEV_DEFAULT_MARK), f"{name} in .env.example must be a marked dev default"
    assert ".env" in (DOCKER / ".gitignore").read_text().split(), "docker/.env (real secrets) must be git-ignored"


def _entropy_bits(text: str) -> float:
    """Shannon entropy per character: ~3.5 for identifiers like FLASH_ATTENTION_DISABLE_FP8, ~5 for a random key."""
    counts = [text.count(c) for c in set(text)]
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts)


def test_no_secret_literals_in_deploy_files() -> None:
    vendor_token = re.compile(
        r"\b(?:sk-[A-Za-z0-9]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16})"
    )
    random_run = re.compile(r"[A-Za-z0-9+/=_-]{32,}")
    for path, text in deploy_texts().items():
        found = vendor_token.search(text)
        assert found is None, f"{path}: a literal API token: {found.group(0)[:8]}..."
        for m in random_run.finditer(text):
            run = m.group(0)
            if "/" in run.strip("/"):
                continue  # a path, not a key
            classes = sum(bool(re.search(c, run)) for c in (r"[a-z]", r"[A-Z]", r"\d"))
            if re.fullmatch(r"[0-9a-f]{32,}", run) or (classes == 3 and _entropy_bits(run) > 4.2):
                assert text[max(0, m.start() - 7) : m.start()] == "sha256:", (
                    f"{path}: a long random-looking literal (a key or token?): {run[:10]}..."
                )
        for line in text.splitlines():
            for key, value in re.findall(r"\b([A-Z][A-Z0-9_]*)=(\S+)", line):
                if not SECRET_NAME.search(key) or path.endswith(".env.example"):
                    continue
                ok = value.startswith(("$", "<", DEV_DEFAULT_MARK, '"$', "'$")) or value in {'""', "''"}
                assert ok, f"{path}: {key} is given a literal value: {line.strip()}"
    for df in (service(), trainer()):
        for stage in df.stages:
            for instruction in stage.all("ENV") + stage.all("ARG"):
                for name in re.findall(r"\b([A-Z][A-Z0-9_]*)=", instruction.value):
                    assert not SECRET_NAME.search(name), (
                        f"{df.path.name}:{instruction.line}: {name} baked into the image"
                    )


# --- the site image's command, run for real (SQLite instead of PostgreSQL, no container) ----------


@pytest.mark.slow
def test_site_command_with_compose_environment_serves_health(tmp_path: Path, free_port: int) -> None:
    """The site's command as compose runs it, with the environment compose gives it, answers the health probe."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    df = service()
    site = compose()["services"]["site"]
    env_file = env_example()

    def interpolate(value: object) -> str:
        return INTERPOLATION.sub(lambda m: env_file.get(_interpolated_names(m.group(0)).pop(), ""), str(value))

    entry = site.get("entrypoint") or command_words(df.effective(df.final, "ENTRYPOINT"))  # type: ignore[arg-type]
    command = site.get("command") or command_words(df.effective(df.final, "CMD"))  # type: ignore[arg-type]
    argv = [interpolate(word) for word in [*entry, *command]]
    argv[argv.index("--port") + 1] = str(free_port)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    site_env = {key: interpolate(value) for key, value in site["environment"].items()}
    site_env["SPEEDRUN_DATABASE_URL"] = ""  # SQLite under SPEEDRUN_HOME: no PostgreSQL needed here
    site_env["SPEEDRUN_HOME"] = str(tmp_path)
    site_env["SPEEDRUN_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    base_url = env_file["SITE_BASE_URL"]  # what compose makes the public URL, not http://127.0.0.1:<port>
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPEEDRUN_")} | site_env
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "speedrun", *argv[1:]], env=env, stdout=out, stderr=out)
        try:
            status = None
            for _ in range(300):  # up to ~60 s on a loaded machine; no timing is asserted
                if proc.poll() is not None:
                    break
                try:
                    reply = httpx.get(f"http://127.0.0.1:{free_port}{health_probe_path()}", timeout=2)
                    status = reply.status_code
                    break
                except httpx.TransportError:
                    time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    text = log.read_text(errors="replace")
    assert status == 200, f"{health_probe_path()} answered {status}; serve output:\n{text[-3000:]}"
    assert base_url in text, f"serve does not use the public URL {base_url} compose gives it:\n{text[-2000:]}"
