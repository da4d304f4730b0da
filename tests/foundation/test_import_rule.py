"""The dependency rule holds and is enforced: `lint-imports` (pyproject.toml) passes on the tree,
fails on a planted upward import, and no import cycle remains among the site's modules."""

from __future__ import annotations

import graphlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from submissions.sandbox import project_packages

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tree / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def copy_of_the_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", tree)
    for name in project_packages():
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_the_tree_keeps_every_contract(copy_of_the_tree: Path) -> None:
    out = _lint(copy_of_the_tree)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout


@pytest.mark.parametrize(
    ("planted_in", "line", "broken"),
    [
        ("contract", "import trainer.config", "speedrun > web > leaderboard > submissions > trainer > contract"),
        ("trainer", "import submissions.stats", "speedrun > web > leaderboard > submissions > trainer > contract"),
        ("leaderboard", "import web.render", "speedrun > web > leaderboard > submissions > trainer > contract"),
        ("leaderboard", "import submissions.runner", "the site never imports the verifier's machinery or torch"),
        ("contract", "import fastapi", "contract imports no framework"),
        ("leaderboard/audit", "import leaderboard.users.models", "leaderboard domains point one way"),
    ],
)
def test_a_planted_import_breaks_the_rule(copy_of_the_tree: Path, planted_in: str, line: str, broken: str) -> None:
    planted = copy_of_the_tree / planted_in / "planted_upward_import.py"
    planted.write_text(f"{line}\n")
    try:
        out = _lint(copy_of_the_tree)
    finally:
        planted.unlink()
    assert out.returncode != 0
    assert broken in out.stdout and "BROKEN" in out.stdout
    assert f"{planted_in.replace('/', '.')}.planted_upward_import" in out.stdout


def test_no_import_cycle_among_the_sites_modules() -> None:
    graph = grimp.build_graph("leaderboard")
    sorter = graphlib.TopologicalSorter(
        {m: {i for i in graph.find_modules_directly_imported_by(m) if i != m} for m in graph.modules}
    )
    sorter.prepare()  # raises graphlib.CycleError naming the cycle
