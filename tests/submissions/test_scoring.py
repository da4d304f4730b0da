"""The scorer and the model process (issue 18): the reference path keeps today's exact CORE, and a
model process that dies, stalls or answers garbage fails scoring with a reason (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from contract.schema import RunConfig, RunResult
from submissions.model_client import Budget, ModelClient, ModelProcessError
from submissions.sandbox import Limits, sandbox_problem

TINY = {"num_iterations": 12, "depth": 2, "device_batch_size": 4, "total_batch_size": 1024, "eval_tokens": 1024}
PEER = r"""
import os, sys, time
import numpy as np
from submissions import wire
mode = sys.argv[1]
wire.read_message(0)
if mode == "die":
    sys.exit(3)
if mode == "stall":
    time.sleep(60)
if mode == "garbage":
    os.write(1, b"\xff\xff\xff\xff not a message")
    time.sleep(5)
wire.write_message(1, {"ok": True, "max_positions": None})
wire.read_message(0)
if mode == "shape":
    wire.write_message(1, {"ok": True}, [np.zeros(5, dtype=np.float64)])
elif mode == "nan":
    wire.write_message(1, {"ok": True}, [np.full(2, np.nan)])
elif mode == "vocab":
    wire.write_message(1, {"ok": True}, [np.array([1, 99999], dtype=np.int64)])
time.sleep(5)
"""


def _peer(mode: str) -> tuple[subprocess.Popen[bytes], ModelClient]:
    proc = subprocess.Popen([sys.executable, "-c", PEER, mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    budget = Budget(load_s=3.0, base_s=3.0, multiple=1.0, seconds_per_token=0.0)
    return proc, ModelClient(proc.stdin.fileno(), proc.stdout.fileno(), vocab_size=100, budget=budget)


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("die", "stopped answering (loading the model)"),
        ("stall", "did not answer loading the model within 3 s"),
        ("garbage", "a header of"),
    ],
)
def test_a_model_process_that_dies_stalls_or_babbles_fails_loading_with_the_reason(mode: str, why: str) -> None:
    proc, client = _peer(mode)
    try:
        with pytest.raises(ModelProcessError, match=why.replace("(", r"\(").replace(")", r"\)")):
            client.hello()
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("mode", "why"),
    [("shape", r"float64 \(5,\), not \(2,\)"), ("nan", "non-finite losses"), ("vocab", "outside the vocabulary")],
)
def test_replies_of_the_wrong_shape_non_finite_or_outside_the_vocabulary_are_refused(mode: str, why: str) -> None:
    from trainer.evaluation.core import _Row

    proc, client = _peer(mode)
    try:
        client.hello()
        with pytest.raises(ModelProcessError, match=why):
            if mode == "vocab":
                client.continuations([[1, 2, 3]], [2], pad_id=0)
            else:
                client.losses([_Row(0, 0, (1, 2, 3), 1, 3), _Row(0, 1, (1, 2, 4), 1, 3)], pad_id=0)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
@pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")
def test_the_reference_path_rescores_to_the_in_process_core_exactly(tmp_path: Path) -> None:
    from submissions.runner import PreparedTrainer, RunContext, score_run
    from submissions.verify import eval_inputs, model_limits
    from tests.submissions.factories import CPU

    overrides = {**TINY, "core_max_per_task": 24}
    run_dir = tmp_path / "run-0"
    out = run_dir / "out"
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--overrides", json.dumps(overrides)]
    done = subprocess.run([*cmd, "--seed", "5", "--out", str(out), "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    own = RunResult.model_validate_json((out / "result.json").read_bytes())
    assert own.core is not None  # CORE computed in process at the end of training
    config = RunConfig.model_validate(
        {
            "trainer": "reference@0.1.0",
            "recipe": "cpu_smoke",
            "overrides": overrides,
            "hardware_class": "cpu",
            "gpus_per_node": 0,
        }
    )
    (run_dir / "eval").mkdir()
    ctx = RunContext(
        trainer=PreparedTrainer(python=sys.executable, label="reference@0.1.0", sealed=True),
        run_config=config,
        eval_inputs=eval_inputs(config, False),
        fingerprint=CPU,
        limits=Limits(wall_s=600),
        eval_limits=Limits(wall_s=600),
        model_limits=model_limits(config, False, 600),
        v2=True,
    )
    score = score_run(ctx, seed=5, run_dir=run_dir)
    assert score.core is not None and score.requests > 0
    assert score.core.core == own.core.core  # to the last digit
    assert {k: t.accuracy for k, t in score.core.tasks.items()} == {k: t.accuracy for k, t in own.core.tasks.items()}
    assert score.val_bpb is not None and not score.val_bpb_by_fork
    assert own.val_bpb is not None and abs(score.val_bpb - own.val_bpb) < 1e-9
    assert (run_dir / "model-home").is_dir() and (run_dir / "eval-home").is_dir()  # HOMEs training never had
    assert np.isfinite(score.model_seconds)
