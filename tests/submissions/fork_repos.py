"""Local git repositories that play a submitter's (hostile) fork of the trainer, for the verifier tests.

One repository holds one commit per behaviour (``make_forks``); every commit is a real package
``speedrun`` with a ``setup.py``, installed by the verifier into its own venv inside the sandbox.
Its ``speedrun train`` (recipe ``cpu_smoke``, the only recipe the verifier scores) does what its
behaviour says:

``crash`` raises after a few log lines; ``slow`` works 4 s then crashes; ``garbage`` writes an
invalid result.json; ``hang`` starts a detached ``sleep`` in a new session (a marker in its argv)
and sleeps; ``forge`` trains nothing, saves an untrained reference GPT as model.pt and a forged
result.json (CORE 0.9, 0.5 s, an H100); ``link_environ`` / ``link_secret`` / ``fifo`` / ``sparse``
leave train.log as a symlink to /proc/self/environ, result.json as a symlink to a mode-0600 file,
metrics.jsonl as a FIFO, train.log as a 2 GB sparse file; ``spy`` records what it can see (uid,
environment, network, the worker's HOME, work dir and token file) at install and at training;
``plant`` drops usercustomize.py and .pth files wherever it can write; ``metrics_bomb`` writes
a 1 GB metrics.jsonl without a newline; ``entry`` declares a model entry point and saves a
bigram; ``entry_forge`` and ``entry_wrap`` do too, and their model function attacks the scorer
(issue 18): the first writes a perfect ``score.json`` next to the checkpoint and ``os._exit(0)``,
the second wraps the verifier's ``evaluate_task`` and bpb adapter to report perfect scores;
``late_work`` saves a reference GPT and its result at once, then keeps working 5 s through a
mmap of model.pt opened early (the clock must cover it) and plants usercustomize/sitecustomize
in its HOME and TMPDIR. Every behaviour but ``forge``, the ``entry*`` ones and ``late_work``
exits without model.pt.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from contract.schema import RunConfig

BEHAVIOURS = (
    "crash",
    "slow",
    "garbage",
    "hang",
    "forge",
    "link_environ",
    "link_secret",
    "fifo",
    "sparse",
    "spy",
    "plant",
    "metrics_bomb",
    "entry",
    "entry_forge",
    "entry_wrap",
    "late_work",
)
ENTRY_POINTS = {
    "entry": "fork_model:load",
    "entry_forge": "fork_model:load_forge",
    "entry_wrap": "fork_model:load_wrap",
}
OVERRIDES = {"num_iterations": 2, "core_max_per_task": 11}

PROBE = r"""
import json, os, socket

def probe(where, params):
    out = {"where": where, "uid": os.getuid(), "env": dict(os.environ), "cwd": os.getcwd()}
    nets = {}
    for host, port in (("127.0.0.1", params["http_port"]), ("1.1.1.1", 443), ("pypi.org", 443)):
        try:
            socket.create_connection((host, port), timeout=2).close()
            nets[f"{host}:{port}"] = "reachable"
        except OSError as exc:
            nets[f"{host}:{port}"] = f"unreachable: {exc}"
    out["network"] = nets
    seen = {}
    for path in params["worker_paths"]:
        try:
            seen[path] = ["listed", *sorted(os.listdir(path))] if os.path.isdir(path) else open(path).read()[:200]
        except OSError as exc:
            seen[path] = f"denied: {exc.__class__.__name__}"
    out["worker_paths"] = seen
    sysctl = "/proc/sys/kernel/printk_ratelimit_burst"  # looked at, never written
    out["proc_sys"] = {
        "writable": os.access(sysctl, os.W_OK),
        "readonly_mount": bool(os.statvfs("/proc/sys").f_flag & os.ST_RDONLY),
    }
    try:
        with open("/proc/1/environ", "rb") as f:
            out["pid1_environ"] = f.read().decode(errors="replace")
    except OSError as exc:
        out["pid1_environ"] = f"denied: {exc}"
    return out
"""

MAIN = r"""
import argparse, json, os, subprocess, sys, time
from speedrun._probe import probe

BEHAVIOUR = __BEHAVIOUR__
PARAMS = __PARAMS__

def main() -> int:
    p = argparse.ArgumentParser(prog="speedrun")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    for a in ("--recipe", "--overrides", "--out"):
        t.add_argument(a)
    t.add_argument("--seed", type=int)
    t.add_argument("--no-progress", action="store_true")
    a = p.parse_args()
    out = a.out
    os.makedirs(out, exist_ok=True)
    print(f"fork trainer {BEHAVIOUR}: recipe {a.recipe} seed {a.seed} overrides {a.overrides}", flush=True)
    with open(os.path.join(out, "metrics.jsonl"), "w") as f:
        f.write(json.dumps({"step": 3, "num_iterations": 10, "eta_seconds": 7.0}) + "\n")
    if BEHAVIOUR == "crash":
        for i in range(5):
            print(f"step {i} loss {9 - i}", flush=True)
        raise RuntimeError("boom: the fork's model diverged")
    if BEHAVIOUR == "slow":
        print("working slowly", flush=True)
        time.sleep(4)
        raise RuntimeError("slow fork gave up")
    if BEHAVIOUR == "hang":
        subprocess.Popen(["/bin/sh", "-c", "sleep 3600; echo " + PARAMS["marker"]], start_new_session=True)
        print("waiting forever", flush=True)
        time.sleep(3600)
    if BEHAVIOUR == "garbage":
        with open(os.path.join(out, "result.json"), "w") as f:
            f.write(json.dumps({"seed": a.seed, "training_seconds": -5}))
        with open(os.path.join(out, "model.pt"), "wb") as f:
            f.write(b"not a checkpoint")
    if BEHAVIOUR == "forge":
        import torch
        from trainer.config import build_config
        from trainer.model import GPTConfig, build_model
        config = build_config(a.recipe, {**json.loads(a.overrides), "seed": a.seed})
        torch.manual_seed(a.seed)
        model = build_model(GPTConfig.from_train_config(config), torch.device("cpu"), torch.float32)
        torch.save(model.state_dict(), os.path.join(out, "model.pt"))
        forged = dict(PARAMS["forged"], seed=a.seed)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(forged, f)
        with open(os.path.join(out, "train.log"), "w") as f:
            f.write("trained in 0.5 s, CORE 0.9\n")
    if BEHAVIOUR == "link_environ":
        os.symlink("/proc/self/environ", os.path.join(out, "train.log"))
    if BEHAVIOUR == "link_secret":
        os.remove(os.path.join(out, "metrics.jsonl"))
        os.symlink(PARAMS["secret_path"], os.path.join(out, "result.json"))
    if BEHAVIOUR == "fifo":
        os.remove(os.path.join(out, "metrics.jsonl"))
        os.mkfifo(os.path.join(out, "metrics.jsonl"))
    if BEHAVIOUR == "sparse":
        with open(os.path.join(out, "train.log"), "wb") as f:
            f.truncate(2 * 1024**3)
    if BEHAVIOUR == "spy":
        with open(os.path.join(out, "probe.json"), "w") as f:
            json.dump(probe("train", PARAMS), f)
    if BEHAVIOUR == "plant":
        code = f"open({PARAMS['marker']!r}, 'a').write('planted code ran\\n')\n"
        planted = []
        import site, sysconfig
        targets = [os.path.expanduser("~/.local/lib/python3.11/site-packages"), site.getusersitepackages()]
        targets += list(site.getsitepackages()) + [sysconfig.get_paths()["purelib"], "/tmp", os.environ.get("TMPDIR", "/tmp")]
        targets += PARAMS["worker_paths"]
        for d in targets:
            for name, text in (("usercustomize.py", code), ("sitecustomize.py", code), ("zz_planted.pth", "import os; " + code)):
                try:
                    os.makedirs(d, exist_ok=True)
                    with open(os.path.join(d, name), "w") as f:
                        f.write(text)
                    planted.append(os.path.join(d, name))
                except OSError:
                    pass
        print("planted:", planted, flush=True)
    if BEHAVIOUR == "late_work":
        import mmap, torch
        from trainer.config import build_config
        from trainer.model import GPTConfig, build_model
        config = build_config(a.recipe, {**json.loads(a.overrides), "seed": a.seed})
        torch.manual_seed(a.seed)
        model = build_model(GPTConfig.from_train_config(config), torch.device("cpu"), torch.float32)
        path = os.path.join(out, "model.pt")
        torch.save(model.state_dict(), path)
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(dict(PARAMS["forged"], seed=a.seed), f)
        code = f"open({PARAMS['marker']!r}, 'a').write('planted code ran\\n')\n"
        for d in (os.environ["HOME"], os.environ["TMPDIR"]):
            for name in ("usercustomize.py", "sitecustomize.py"):
                with open(os.path.join(d, name), "w") as f:
                    f.write(code)
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), 0)
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:  # "training" written through the mmap: no mtime poll sees it
                mm[-1:] = mm[-1:]
                time.sleep(0.05)
            mm.close()
    if BEHAVIOUR.startswith("entry"):
        import torch
        from fork_model import Bigram
        torch.manual_seed(a.seed)
        torch.save(Bigram(2048).state_dict(), os.path.join(out, "model.pt"))
        with open(os.path.join(out, "result.json"), "w") as f:
            json.dump(dict(PARAMS["forged"], seed=a.seed), f)
    if BEHAVIOUR == "metrics_bomb":
        with open(os.path.join(out, "metrics.jsonl"), "ab") as f:
            block = b"x" * (1 << 20)
            for _ in range(1024):
                f.write(block)
        time.sleep(4)
    return 0

if __name__ == "__main__":
    sys.exit(main())
"""

SETUP = r"""
import json, os, sys
from setuptools import setup
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from speedrun._probe import probe

if __BEHAVIOUR__ == "spy":
    data = json.dumps(probe("install", __PARAMS__))
    for d in (os.getcwd(), os.environ.get("HOME", ".")):
        try:
            with open(os.path.join(d, "probe-install.json"), "w") as f:
                f.write(data)
        except OSError:
            pass
setup()
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
py-modules = ["fork_model"]
"""

FORK_MODEL = """
import os
import torch

class Bigram(torch.nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.emb(idx)

def load(checkpoint_dir: str, config: dict) -> torch.nn.Module:
    model = Bigram(config["model"]["vocab_size"])
    model.load_state_dict(torch.load(os.path.join(checkpoint_dir, "model.pt"), weights_only=True))
    return model


PERFECT = {"core": {"core": 0.86, "bundle_sha256": "0" * 64, "max_per_task": 11, "tasks": {}, "seconds": 1.0},
           "val_bpb": 0.1, "seconds": 1.0}


def load_forge(checkpoint_dir: str, config: dict) -> torch.nn.Module:
    # issue 18, attack 1a: write the scorer's score.json itself, then end the process
    import json
    for d in (os.path.join(os.path.dirname(checkpoint_dir), "eval"), os.getcwd(), os.environ.get("HOME", ".")):
        try:
            with open(os.path.join(d, "score.json"), "w") as f:
                json.dump(PERFECT, f)
        except OSError:
            pass
    os._exit(0)


def load_wrap(checkpoint_dir: str, config: dict) -> torch.nn.Module:
    # issue 18, attack 1b: make the verifier's own code report a perfect score
    import sys
    from trainer.evaluation import core as core_mod
    from trainer.evaluation.core import TaskOutcome

    def perfect_task(model, tokenizer, task, **kw):
        return TaskOutcome(task.spec.label, 1.0, 1.0, 11, 0.0, (True,) * 11)

    core_mod.evaluate_task = perfect_task
    for name, module in list(sys.modules.items()):
        if name.startswith(("submissions", "trainer")):
            for attr in ("evaluate_task", "evaluate_bpb"):
                if hasattr(module, attr):
                    setattr(module, attr, perfect_task if attr == "evaluate_task" else (lambda *a, **k: 0.1))
    return load(checkpoint_dir, config)
"""

GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@example.com"]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *GIT_ID, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_forks(root: Path, params: dict[str, Any] | None = None) -> dict[str, tuple[str, str]]:
    """One repository under ``root`` with a commit per behaviour: behaviour -> (file:// URL, commit)."""
    params = {
        "http_port": 9,
        "worker_paths": [],
        "marker": "/nonexistent",
        "secret_path": "/nonexistent",
        **(params or {}),
    }
    repo = root / "fork.git-src"
    (repo / "speedrun").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "speedrun" / "__init__.py").write_text('__version__ = "0.0.1-fork"\n')
    (repo / "speedrun" / "_probe.py").write_text(PROBE)
    (repo / "fork_model.py").write_text(FORK_MODEL)
    out = {}
    for behaviour in BEHAVIOURS:
        values = {"__BEHAVIOUR__": repr(behaviour), "__PARAMS__": repr(params)}
        main, setup = MAIN, SETUP
        for key, value in values.items():
            main, setup = main.replace(key, value), setup.replace(key, value)
        (repo / "speedrun" / "__main__.py").write_text(main)
        (repo / "setup.py").write_text(setup)
        entry = ENTRY_POINTS.get(behaviour)
        (repo / "pyproject.toml").write_text(PYPROJECT + (f'\n[tool.speedrun]\nmodel = "{entry}"\n' if entry else ""))
        _git(repo, "add", ".")
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"fork: {behaviour}")
        out[behaviour] = (f"file://{repo}", _git(repo, "rev-parse", "HEAD"))
    return out


def fork_config(forks: dict[str, tuple[str, str]], behaviour: str) -> RunConfig:
    """A CPU run config (recipe cpu_smoke, two steps) that runs ``behaviour`` of the forks."""
    url, commit = forks[behaviour]
    return RunConfig.model_validate(
        {
            "trainer": {"kind": "git", "git_url": url, "commit": commit},
            "recipe": "cpu_smoke",
            "overrides": OVERRIDES,
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )


def forged_result(seed: int = 0) -> dict[str, Any]:
    """A well-formed result.json claiming CORE 0.9 in 0.5 s on an H100 (for the ``forge`` fork)."""
    from tests.submissions.factories import H100, run_result

    forged = run_result(seed=seed, core_score=0.9, training_seconds=0.5, hardware=H100)
    data: dict[str, Any] = json.loads(forged.model_dump_json())
    data.update(recipe="cpu_smoke", overrides=OVERRIDES)
    return data
