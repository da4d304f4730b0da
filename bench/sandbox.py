"""Sealed verification (issue 15): what the sandbox and the verifier's own scoring cost.

Three figures, each against the same work in the same run:

1. start-up overhead of a sandboxed step: ``python -c "import torch"`` launched through
   ``submissions.sandbox.launch`` sealed (bwrap) vs unsealed, median of ``--repeats`` each;
2. the CPU track's verification of one run before/after: the previous verifier (the last
   commit before the sealed one, loaded from git: unsealed ``speedrun train`` and its
   self-reported numbers) vs the sealed verifier (sealed training + the extra CORE/val_bpb pass
   in its own sandbox), same reference config, same seed;
3. the verifier's peak RSS (VmHWM, sampled) while a hostile fork writes a newline-free 1 GiB
   metrics.jsonl, vs the same verifier on a fork that just crashes.

    python bench/sandbox.py [--repeats 5] [--steps 3] [--skip-bomb]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.processes import peak_rss_kib  # noqa: E402  (the repository root is on the path above)

OLD_VERIFIER_COMMIT = "22c7b8f"  # the contract commit; its verify.py is the pre-sandbox verifier
TINY = {"depth": 2, "device_batch_size": 4, "total_batch_size": 1024, "eval_tokens": 1024, "core_max_per_task": 11}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def startup(repeats: int, work: Path) -> dict[str, float]:
    from submissions.sandbox import Limits, Step, launch

    work.mkdir(parents=True, exist_ok=True)
    step = Step(argv=[sys.executable, "-c", "import torch"], cwd=work, writable=[work], env={"HOME": str(work)})
    out: dict[str, list[float]] = {"sealed": [], "unsealed": []}
    for _ in range(repeats):
        for mode in ("unsealed", "sealed"):
            t0 = time.perf_counter()
            proc = launch(step, Limits(wall_s=300), sealed=mode == "sealed", stdout=subprocess.DEVNULL)
            assert proc.wait() == 0
            out[mode].append(time.perf_counter() - t0)
    sealed, unsealed = statistics.median(out["sealed"]), statistics.median(out["unsealed"])
    return {"sealed_s": sealed, "unsealed_s": unsealed, "overhead_s": sealed - unsealed, "ratio": sealed / unsealed}


def _old_verify():  # type: ignore[no-untyped-def]
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{OLD_VERIFIER_COMMIT}:submissions/verify.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "verify_v1.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("submissions_verify_v1", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.verify


def verification(steps: int, work: Path) -> dict[str, float | str | None]:
    from contract.schema import RunConfig
    from contract.tracks import BUILTIN_TRACKS
    from submissions.verify import verify

    config = RunConfig.model_validate(
        {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "overrides": {**TINY, "num_iterations": steps},
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )
    v1_track = BUILTIN_TRACKS["cpu-smoke"].model_copy(update={"rules_version": "speedrun-v1"})
    t0 = time.perf_counter()
    before = _old_verify()(config, track=v1_track, runs=1, out_dir=work / "before", seeds=[11], sandbox_user=None)
    t_before = time.perf_counter() - t0
    t0 = time.perf_counter()
    after = verify(config, track=BUILTIN_TRACKS["cpu-smoke"], runs=1, out_dir=work / "after", seeds=[11])
    t_after = time.perf_counter() - t0
    b, a = before.runs[0], after.runs[0]
    return {
        "before_s": t_before,
        "after_s": t_after,
        "ratio": t_after / t_before,
        "after_sealed": str(after.sealed),
        "before_training_seconds_self_reported": b.training_seconds,
        "after_training_seconds_verifier_clock": a.training_seconds,
        "after_self_reported": a.self_reported_training_seconds,
        "core_before": b.core_score,
        "core_after_rescored": a.core_score,
        "core_equal": str(b.core_score == a.core_score),
    }


def metrics_bomb(work: Path) -> dict[str, float]:
    from tests.submissions.fork_repos import fork_config, make_forks

    forks = make_forks(work / "forks")
    peaks = {}
    for behaviour in ("crash", "metrics_bomb"):
        config = work / f"{behaviour}.json"
        config.write_text(fork_config(forks, behaviour).model_dump_json())
        cmd = [sys.executable, "-m", "speedrun", "verify", str(config), "--runs", "1", "--seeds", "1"]
        cmd += ["--out", str(work / behaviour), "--quiet", "--allow-local-git"]
        peaks[behaviour] = peak_rss_kib(cmd)[0] / 1024
    written = (work / "metrics_bomb" / "run-0" / "out" / "metrics.jsonl").stat().st_size / 2**20
    return {
        "peak_rss_mib_crash_fork": peaks["crash"],
        "peak_rss_mib_metrics_bomb": peaks["metrics_bomb"],
        "extra_mib": peaks["metrics_bomb"] - peaks["crash"],
        "metrics_file_mib": written,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--skip-bomb", action="store_true")
    args = p.parse_args()
    out: dict[str, object] = {"load_avg_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _say("sandbox start-up ...")
        out["startup_import_torch"] = startup(args.repeats, work / "startup")
        _say("CPU track verification before/after ...")
        out["cpu_track_one_run"] = verification(args.steps, work / "verify")
        if not args.skip_bomb:
            _say("metrics bomb ...")
            out["metrics_bomb"] = metrics_bomb(work / "bomb")
    out["load_avg_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
