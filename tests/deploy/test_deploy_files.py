"""Checks of the deployment files that can be made without a container engine.

The Dockerfiles are read with a small parser of our own (``dockerfile_parser``), compose with
PyYAML; every ``speedrun ...`` command they or ``docs/deploy.md`` run is parsed by the real CLI
parser, every ``SPEEDRUN_*`` variable must be a field of the real settings (or be read by the
code), base images must be pinned and no secret may be written into them.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from deploy_files import (
    DEPLOY_DOC,
    ROOT,
    SERVICE,
    TRAINER,
    compose,
    entropy_bits,
    has_version,
    health_probe_path,
    service,
    speedrun_invocations,
    trainer,
)
from dockerfile_parser import (
    Instruction,
    command_words,
    healthcheck_words,
    logical_lines,
    parse,
    stage_args,
    substitute,
)

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

    assert entropy_bits(secrets.token_urlsafe(32)) > 4.2
    assert entropy_bits("FLASH_ATTENTION_DISABLE_PAGEDKV=TRUE") < 4.2


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
