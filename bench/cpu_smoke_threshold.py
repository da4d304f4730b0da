"""The cpu-smoke track's CORE threshold: CORE of the trained cpu_smoke recipe vs an untrained model.

Prints one JSON object: the synthetic-bundle CORE of the untrained cpu_smoke model (random init,
one per seed; the reference, measured in the same run), the CORE of trained cpu_smoke runs (from
``speedrun train --recipe cpu_smoke`` result.json files, or trained here with ``--train``), the
threshold in ``contract.tracks`` and, for it, the one-sided t-test p-value of the trained runs
and the margin to the best untrained model. Progress goes to stderr.

    python bench/cpu_smoke_threshold.py --untrained-seeds 0,1,2 --results runs/a/result.json runs/b/result.json
    python bench/cpu_smoke_threshold.py --train --seeds 1,2,3 --work-dir /tmp/cpu-smoke-runs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def untrained_core(seed: int, max_per_task: int | None) -> float:
    import torch

    from trainer.config import build_config
    from trainer.evaluation.bundle import ensure_synthetic_bundle, load_bundle
    from trainer.evaluation.core import evaluate_core
    from trainer.inputs import prepare_inputs
    from trainer.model import GPTConfig, build_model

    cfg = build_config("cpu_smoke", {"seed": seed})
    inputs = prepare_inputs(cfg, progress=False)
    torch.manual_seed(seed)
    model = build_model(GPTConfig.from_train_config(cfg), torch.device("cpu"), torch.float32)
    model.eval()
    bundle = load_bundle(ensure_synthetic_bundle(seed=cfg.data.synthetic_seed))
    result = evaluate_core(model, inputs.tokenizer, bundle, device="cpu", max_per_task=max_per_task, progress=True)
    return float(result.core)


def train_run(seed: int, work_dir: Path) -> Path:
    out = work_dir / f"cpu_smoke-seed{seed}"
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--seed", str(seed), "--out", str(out)]
    print(f"$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return out / "result.json"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--untrained-seeds", default="0,1,2", help="seeds of the untrained reference models")
    p.add_argument("--results", nargs="*", default=[], help="result.json files of trained cpu_smoke runs")
    p.add_argument("--train", action="store_true", help="train cpu_smoke for --seeds here (slow on a small CPU)")
    p.add_argument("--seeds", default="1,2,3", help="seeds to train with --train")
    p.add_argument("--work-dir", default="runs/cpu-smoke-threshold", help="run directories of --train")
    p.add_argument("--max-per-task", type=int, default=None, help="CORE subsample (default: all, as the track)")
    args = p.parse_args()

    from contract.schema import RunResult
    from contract.tracks import BUILTIN_TRACKS
    from submissions.stats import mean, one_sided_t_test, sample_std

    threshold = BUILTIN_TRACKS["cpu-smoke"].threshold
    untrained: dict[str, float] = {}
    for s in [int(x) for x in args.untrained_seeds.split(",") if x]:
        t0 = time.monotonic()
        untrained[str(s)] = untrained_core(s, args.max_per_task)
        print(f"untrained seed {s}: CORE {untrained[str(s)]:.4f} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)
    paths = [Path(r) for r in args.results]
    if args.train:
        paths += [train_run(int(s), Path(args.work_dir)) for s in args.seeds.split(",") if s]
    trained: dict[str, Any] = {}
    for path in paths:
        r = RunResult.model_validate_json(path.read_bytes())
        trained[str(path)] = {
            "seed": r.seed,
            "core": r.core_score,
            "steps": r.steps,
            "max_per_task": None if r.core is None else r.core.max_per_task,
            "training_seconds": r.training_seconds,
        }
    scores = [v["core"] for v in trained.values() if v["core"] is not None]
    out: dict[str, Any] = {
        "threshold": threshold,
        "untrained_core": untrained,
        "untrained_max": max(untrained.values()) if untrained else None,
        "trained": trained,
        "trained_mean": mean(scores) if scores else None,
        "trained_std": sample_std(scores) if scores else None,
        "trained_p_value": one_sided_t_test(scores, threshold).p_value if len(scores) >= 2 else None,
        "margin_above_untrained": (threshold - max(untrained.values())) if untrained else None,
        "margin_below_trained": (min(scores) - threshold) if scores else None,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
