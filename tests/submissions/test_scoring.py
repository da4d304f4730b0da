"""The scorer and the model process (issue 18): the reference path keeps today's exact CORE, and a
model process that dies, stalls or answers garbage fails scoring with a reason (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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
    wire.write_message(1, {"ok": True}, [np.array([1, 99999], dtype=np.int64), np.array([2], dtype=np.int64)])
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
    from trainer.evaluation.rows import Row

    proc, client = _peer(mode)
    try:
        client.hello()
        with pytest.raises(ModelProcessError, match=why):
            if mode == "vocab":
                client.greedy_matches([[1, 2, 3]], [[1, 2]], pad_id=0)
            else:
                client.losses([Row(0, 0, (1, 2, 3), 1, 3), Row(0, 1, (1, 2, 4), 1, 3)], pad_id=0)
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


# -- issue 22: the batched scorer through a real model process, against the one-example reference ------------

TINY_GPT = {"depth": 2, "aspect_ratio": 32, "head_dim": 32}  # the cpu_smoke recipe at depth 2, dim 64


@pytest.fixture(scope="module")
def served_gpt(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A depth-2 reference GPT (jittered so decisions vary) saved as a run's model.pt, its tokenizer (vocab 2048,
    the recipe's) and the synthetic core-v1 bundle (the public bundle's format, 22 tasks x 40 examples)."""
    import torch

    from contract import MODEL_FILE
    from trainer.data.synth import SyntheticWorld
    from trainer.data.tokenizer import train_tokenizer
    from trainer.evaluation.bundle import load_bundle, write_synthetic_bundle
    from trainer.model import GPTConfig, build_model
    from trainer.plan import config_of

    root = tmp_path_factory.mktemp("served")
    tokenizer = train_tokenizer(
        SyntheticWorld(0).documents(3000, seed=0), vocab_size=2048, max_chars=10**8, progress=False
    )
    torch.manual_seed(0)
    model = build_model(
        GPTConfig.from_train_config(config_of("cpu_smoke", TINY_GPT, 0)), torch.device("cpu"), torch.float32
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.lm_head.weight.normal_(0.0, 0.3)
    (root / "model").mkdir()
    torch.save(model.state_dict(), root / "model" / MODEL_FILE)
    request = root / "model.json"
    request.write_text(
        json.dumps({"recipe": "cpu_smoke", "overrides": TINY_GPT, "seed": 0, "model_dir": str(root / "model")})
    )
    return model.eval(), tokenizer, load_bundle(write_synthetic_bundle(root / "bundle")), request


def _model_process(request: Path) -> tuple[subprocess.Popen[bytes], ModelClient]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "submissions.model_process", str(request)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdin is not None and proc.stdout is not None
    budget = Budget(load_s=120.0, base_s=300.0, multiple=1.0, seconds_per_token=0.0)
    return proc, ModelClient(proc.stdin.fileno(), proc.stdout.fileno(), vocab_size=2048, budget=budget)


@pytest.mark.slow
def test_every_decision_through_the_model_process_equals_the_one_example_reference(served_gpt: Any) -> None:
    """All 880 examples of the real-format bundle: the batched scorer through a real model process (tasks
    batched together, greedy continuations drafted and checked) and in process, each example's decision
    equal to the harness's one forward per example."""
    from contract.core_v1 import TaskType
    from submissions.score import remote_outcomes
    from tests.evaluation.conftest import reference_task
    from trainer.evaluation.core import evaluate_tasks, prepare_task

    model, tokenizer, bundle, request = served_gpt
    expected = {t.spec.label: reference_task(model, tokenizer, bundle, t.spec.label, None) for t in bundle.tasks}
    assert {flag for flags in expected.values() for flag in flags} == {True, False}
    proc, client = _model_process(request)
    try:
        hello = client.hello()
        remote = remote_outcomes(client, tokenizer, bundle, max_per_task=None, max_seq_len=hello["max_positions"])
        # hello, one losses request for all 22 tasks, then the continue rounds of all their open contexts: at
        # most one a token of the longest continuation, none after the last decided one
        lm = [t for t in bundle.tasks if t.spec.task_type is TaskType.language_modeling]
        prepared = [prepare_task(t, tokenizer, max_per_task=None, rank=0, world_size=1, max_seq_len=None) for t in lm]
        longest = max(ex.ends[0] - ex.starts[0] for p in prepared for ex in p.examples)
        assert 3 <= client.requests <= 2 + longest
        client.bye()
    finally:
        proc.wait(timeout=60)
    in_process = evaluate_tasks(model, tokenizer, bundle, device="cpu", progress=False)
    assert sum(o.n for o in remote) == 880
    for outcomes in (remote, in_process):
        for outcome in outcomes:
            assert list(outcome.correct) == expected[outcome.label], outcome.label


@pytest.mark.parametrize("drafts", ["lookup", "right", "wrong"])
def test_drafted_greedy_continuations_equal_token_by_token_greedy_decoding(
    drafts: str, served_gpt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Continuations of 1 to 7 tokens, drafted by prompt lookup (contexts with and without repeats), always
    right (one round), always wrong (one token a round): the answer is the model's greedy decoding one token
    at a time."""
    import torch

    from submissions import model_process
    from submissions.model_process import Served, draft

    model, *_ = served_gpt
    rng = np.random.default_rng(0)
    contexts: list[tuple[int, ...]] = []
    for i in range(24):
        base = [int(t) for t in rng.integers(1, 2048, size=int(rng.integers(3, 40)))]
        contexts.append(tuple(base * (1 + i % 3)))  # repeats give the draft something to copy
    counts = [1 + i % 7 for i in range(len(contexts))]
    greedy: dict[tuple[int, ...], list[int]] = {}
    with torch.no_grad():
        for ctx, n in zip(contexts, counts, strict=True):
            seq = list(ctx)
            for _ in range(n):
                seq.append(int(model(torch.tensor([seq]))[0, -1].argmax()))
            greedy[ctx] = seq[len(ctx) :]

    def oracle(tokens: tuple[int, ...], n: int, pad_id: int) -> tuple[int, ...]:
        ctx = next(c for c in contexts if tokens[: len(c)] == c and len(tokens) - len(c) < len(greedy[c]))
        rest = greedy[ctx][len(tokens) - len(ctx) :][:n]
        return tuple(rest) if drafts == "right" else tuple((t + 1) % 2048 for t in rest)

    if drafts != "lookup":
        monkeypatch.setattr(model_process, "draft", oracle)
    served = Served(model, torch.device("cpu"), model.max_positions, gpt=True)
    made: dict[int, list[int]] = {i: [] for i in range(len(contexts))}  # the scorer's side of the rounds
    rounds = 0
    while open_ := [i for i in made if len(made[i]) < counts[i]]:
        rounds += 1
        tokens, lengths = served.continue_round(
            [(*contexts[i], *made[i]) for i in open_], [counts[i] - len(made[i]) for i in open_], pad_id=0
        )
        assert lengths.min() >= 1 and int(lengths.sum()) == tokens.size
        for i, part in zip(open_, np.split(tokens, np.cumsum(lengths)[:-1]), strict=True):
            made[i] += part.tolist()
    assert [made[i] for i in range(len(contexts))] == [greedy[ctx] for ctx in contexts]
    if drafts == "right":
        assert rounds == 1  # the whole continuation decided in the forward that also answers
    elif drafts == "wrong":
        assert rounds == max(counts)  # one token a round, and no checking forward after the last
    assert draft((5, 6, 7, 8, 5, 6), 3, 0) == (7, 8, 5)  # what followed the last 5, 6
    assert draft((1, 2, 3), 2, 0) == (3, 3)  # nothing repeats: the last token again
    assert draft((1, 2), 0, 0) == ()


def test_a_request_for_several_tasks_gets_the_deadline_they_would_get_one_by_one() -> None:
    budget = Budget(base_s=30.0, multiple=8.0, seconds_per_token=1e-3)
    assert budget.request_s(1000, 3) == pytest.approx(3 * 30.0 + 8.0)
    assert budget.request_s(600) + budget.request_s(400) + budget.request_s(0) == pytest.approx(
        budget.request_s(1000, 3)
    )
