"""Issue 18: what the scorer / model-process split costs on CORE, against in-process CORE.

One checkpoint of the CPU track's recipe (trained here, ``--steps`` steps), scored twice in the
same run: ``evaluate_core`` in this process (the trainer's in-process path: load the weights, run the
batched scorer), and the verifier's path (``submissions.runner.score_run``: a sealed scorer and a
sealed model process joined by pipes, each started by bwrap; calibration, loading and val_bpb
included). Prints one JSON object: both times, the overhead, and whether the CORE figures agree
to the last digit.

    python bench/scoring.py [--steps 12] [--per-task N]   (N: core_max_per_task; default all examples)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--per-task", type=int, default=None)
    args = p.parse_args()
    import torch

    from contract.schema import RunConfig
    from submissions.runner import PreparedTrainer, RunContext, score_run
    from submissions.sandbox import Limits, sandbox_problem
    from submissions.verify import eval_inputs, model_limits
    from tests.submissions.factories import CPU
    from trainer.data.tokenizer import Tokenizer
    from trainer.evaluation.bundle import load_bundle
    from trainer.evaluation.core import evaluate_core
    from trainer.model import GPTConfig, build_model
    from trainer.plan import config_of

    overrides = {"num_iterations": args.steps, "core_max_per_task": args.per_task}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run-0"
        out = run_dir / "out"
        cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--overrides", json.dumps(overrides)]
        subprocess.run([*cmd, "--seed", "3", "--out", str(out), "--no-progress", "--no-eval"], check=True)
        config = RunConfig.model_validate(
            {
                "trainer": "reference@0.1.0",
                "recipe": "cpu_smoke",
                "overrides": overrides,
                "hardware_class": "cpu",
                "gpus_per_node": 0,
            }
        )
        inputs = eval_inputs(config, False)
        train_config = config_of("cpu_smoke", overrides, 3)
        t0 = time.perf_counter()
        model = build_model(GPTConfig.from_train_config(train_config), torch.device("cpu"), torch.float32)
        model.load_state_dict(torch.load(out / "model.pt", map_location="cpu", weights_only=True))
        assert inputs.bundle is not None
        load_s = time.perf_counter() - t0
        local = evaluate_core(
            model,
            Tokenizer.load(inputs.tokenizer_dir),
            load_bundle(inputs.bundle),
            device="cpu",
            max_per_task=args.per_task,
            max_seq_len=model.max_positions,
            progress=False,
        )
        in_process_s = time.perf_counter() - t0
        (run_dir / "eval").mkdir()
        ctx = RunContext(
            trainer=PreparedTrainer(python=sys.executable, label="reference@0.1.0", sealed=sandbox_problem() is None),
            run_config=config,
            eval_inputs=inputs,
            fingerprint=CPU,
            limits=Limits(wall_s=3600),
            eval_limits=Limits(wall_s=3600),
            model_limits=model_limits(config, False, 3600),
            v2=True,
        )
        t0 = time.perf_counter()
        score = score_run(ctx, seed=3, run_dir=run_dir)
        split_s = time.perf_counter() - t0
    assert score.core is not None
    print(
        json.dumps(
            {
                "examples": sum(t.n for t in local.tasks.values()),
                "in_process_load_and_core_s": round(in_process_s, 2),
                "in_process_core_s": round(local.seconds, 2),
                "in_process_load_s": round(load_s, 2),
                "scorer_and_model_process_s": round(split_s, 2),
                "of_which_core_s": round(score.core.seconds, 2),
                "waiting_for_model_process_s": round(score.model_seconds, 2),
                "requests": score.requests,
                "overhead_s": round(split_s - in_process_s, 2),
                "core_equal_to_last_digit": score.core.core == local.core,
                "core": local.core,
                "sealed": ctx.trainer.sealed,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
