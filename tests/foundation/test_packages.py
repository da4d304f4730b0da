"""The project's top-level packages are one list: pyproject's `packages.find`, the installed
distribution, both Dockerfiles and the sandbox's bind list agree (a package missed by the sandbox
breaks only sealed runs, so this is checked here, not found on a GPU node)."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

from submissions.sandbox import interpreter_paths, project_packages

ROOT = Path(__file__).resolve().parents[2]


def _packages_on_disk() -> set[str]:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    dirs = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
    return {d for d in dirs if any(fnmatch.fnmatch(d, pat) for pat in patterns)}


def test_the_installed_distribution_is_the_one_pyproject_builds() -> None:
    assert set(project_packages()) == _packages_on_disk()
    assert "contract" in project_packages()


@pytest.mark.parametrize("dockerfile", ["docker/trainer.Dockerfile", "docker/service.Dockerfile"])
def test_each_image_copies_every_package(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    copied = {m.group(1) for m in re.finditer(r"^COPY (\w+) \./\1$", text, flags=re.MULTILINE)}
    assert copied & _packages_on_disk() == set(project_packages())


def test_the_sandbox_binds_every_package() -> None:
    bound = interpreter_paths()
    for name in project_packages():
        path = (ROOT / name).resolve()
        assert any(path == b or path.is_relative_to(b) for b in bound), f"{name} is not bound into the sandbox"
