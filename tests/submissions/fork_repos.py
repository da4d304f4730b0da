"""A local git repository that plays a submitter's fork of the trainer, for the verifier tests.

Its ``speedrun train`` behaves by recipe name: ``crash`` raises after a few log lines, ``hang``
sleeps (writing its pid first), ``garbage`` exits 0 with an invalid result.json, ``slow``
works 4 s and then crashes. Everything else
about it is real: a git commit cloned by URL, a virtual environment, ``pip install -e``.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from submissions.schema import RunConfig

MAIN = """
import argparse, json, os, sys, time

def main() -> int:
    p = argparse.ArgumentParser(prog="speedrun")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--recipe"); t.add_argument("--overrides"); t.add_argument("--seed", type=int)
    t.add_argument("--out")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    print(f"fork trainer: recipe {a.recipe} seed {a.seed} overrides {a.overrides} token={os.environ.get('SPEEDRUN_TOKEN')}", flush=True)
    with open(os.path.join(a.out, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 3, "num_iterations": 10, "eta_seconds": 7.0}) + "\\n")
    if a.recipe == "crash":
        for i in range(5):
            print(f"step {i} loss {9 - i}", flush=True)
        raise RuntimeError("boom: the fork's model diverged")
    if a.recipe == "slow":
        print("working slowly", flush=True)
        time.sleep(4)
        raise RuntimeError("slow fork gave up")
    if a.recipe == "hang":
        with open(os.path.join(a.out, "pid"), "w") as f:
            f.write(str(os.getpid()))
        print("waiting forever", flush=True)
        time.sleep(600)
    if a.recipe == "garbage":
        with open(os.path.join(a.out, "result.json"), "w") as f:
            f.write(json.dumps({"seed": a.seed, "training_seconds": -5}))
    return 0

if __name__ == "__main__":
    sys.exit(main())
"""

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "speedrun-fork-under-test"
version = "0.0.1"

[tool.setuptools]
packages = ["speedrun"]
"""


def make_fork(root: Path) -> tuple[str, str]:
    """Create the fork repository under ``root``; returns (file:// clone URL, commit)."""
    repo = root / "fork.git-src"
    (repo / "speedrun").mkdir(parents=True)
    (repo / "speedrun" / "__init__.py").write_text('__version__ = "0.0.1-fork"\n')
    (repo / "speedrun" / "__main__.py").write_text(MAIN)
    (repo / "pyproject.toml").write_text(PYPROJECT)
    env = ["-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), *env, "commit", "-q", "-m", "fork"], check=True)
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    return f"file://{repo}", commit


def fork_config(fork: tuple[str, str], recipe: str) -> RunConfig:
    """A CPU run config that runs ``recipe`` of the fork made by ``make_fork``."""
    url, commit = fork
    return RunConfig.model_validate(
        {
            "trainer": {"kind": "git", "git_url": url, "commit": commit},
            "recipe": recipe,
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )
