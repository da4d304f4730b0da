"""The verifier's scorer: CORE and val_bpb of a run's checkpoint, computed where no run code runs.

Run as ``python -m submissions.score REQUEST.json`` in its own sandbox (no network; the eval
bundle, the validation data and the tokenizer bound read-only; only its own output directory
writable; a HOME and TMPDIR that training never had). It is the only process that sees what is
graded. The model itself runs in a separate sandboxed *model process*
(``submissions.model_process``) reached over two pipes (``to_model_fd``, ``from_model_fd``),
which sees token ids only:

- multiple choice and schema: each candidate row (context + candidate) is sent and its mean
  span loss comes back; the gold index stays here and the decision is the first argmin, as in
  ``trainer.evaluation.core``;
- language modelling: only the context is sent, with the number of tokens to continue; the
  greedy continuation comes back in rounds and is compared here with the gold continuation
  (equivalent to "every argmax matches", and no gold token is sent); an example whose decided
  tokens already differ from the gold ones is not decoded further (``ModelClient.greedy_matches``);
- val_bpb: the validation batches are sent and per-token losses come back. The model process
  could lie about those, so a fork's val_bpb is labelled as computed by the fork's own model and
  never ranks (``Score.val_bpb_by_fork``).

The tasks' rows go in as few requests as possible (issue 22: one ``losses`` request and the ``continue``
rounds for all 22 tasks of a small bundle, groups of about ``GROUP_TOKENS`` row tokens on the full
one), so the model process packs its batches across tasks as the in-process scorer does (the reference
GPT's decisions are identical to the one-example reference's, tested on every example). Writes ``score.json``, or
``failure.json`` with the reason (a model process that died, stalled or answered garbage).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from contract.core_v1 import CORE_V1_LABELS, TaskType, centered_accuracy
from contract.schema import Contract, CoreResult
from submissions.model_client import Budget, ModelClient, ModelProcessError, calibrate
from trainer.data.loader import val_batches
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bpb import evaluate_bpb, merged_batches
from trainer.evaluation.bundle import Bundle, load_bundle
from trainer.evaluation.core import GROUP_TOKENS, PreparedTask, TaskOutcome, core_result, prepare_task
from trainer.evaluation.prompts import check_examples_fit, first_argmin, task_items
from trainer.evaluation.rows import default_batch_tokens, rows_across
from trainer.plan import config_of

SCORE_FILE = "score.json"
FAILURE_FILE = "failure.json"


class ScoreRequest(Contract):
    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    seed: int
    out_dir: str
    bundle: str | None
    data_dir: str | None
    tokenizer_dir: str
    device: str = "cpu"
    fork_model: bool = False  # the model process runs a fork's declared model (its answers are its own)
    to_model_fd: int
    from_model_fd: int
    load_s: float = Field(default=120.0, gt=0)
    base_s: float = Field(default=30.0, gt=0)
    multiple: float = Field(default=8.0, gt=0)


class Score(Contract):
    core: CoreResult | None
    val_bpb: float | None = Field(default=None, allow_inf_nan=False)
    val_bpb_by_fork: bool = False  # computed from losses the fork's own model process reported
    seconds: float = Field(ge=0)
    model_seconds: float = Field(default=0.0, ge=0)  # of which waiting for the model process
    requests: int = Field(default=0, ge=0)


class _RemoteLoss(torch.nn.Module):
    """evaluate_bpb's loss interface, answered by the model process (the sums stay here)."""

    def __init__(self, client: ModelClient) -> None:
        super().__init__()
        self.client = client
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # evaluate_bpb reads the device from here

    def forward(self, idx: torch.Tensor, targets: torch.Tensor, loss_reduction: str = "none") -> torch.Tensor:
        return self.client.token_losses(idx, targets)


def _score_group(client: ModelClient, group: list[PreparedTask], pad_id: int) -> list[TaskOutcome]:
    """Several tasks together: every option row of their multiple-choice and schema tasks in one ``losses``
    request, every context of their language-modeling tasks in the ``continue`` rounds."""
    correct: list[list[bool]] = [[] for _ in group]
    request_s = [0.0] * len(group)
    for want_losses in (True, False):
        chosen = [k for k, p in enumerate(group) if (p.spec.task_type is not TaskType.language_modeling) == want_losses]
        if not chosen:
            continue
        t0 = time.perf_counter()
        if want_losses:
            rows = rows_across([group[k].examples for k in chosen])
            losses = client.losses(rows, pad_id, tasks=len(chosen))
            pos = 0
            for k in chosen:
                for ex in group[k].examples:
                    correct[k].append(first_argmin(losses[pos : pos + len(ex.rows)]) == ex.gold)
                    pos += len(ex.rows)
        else:
            examples = [ex for k in chosen for ex in group[k].examples]
            contexts = [ex.rows[0][: ex.starts[0]] for ex in examples]
            golds = [ex.rows[0][ex.starts[0] : ex.ends[0]] for ex in examples]
            matches = iter(client.greedy_matches(contexts, golds, pad_id, tasks=len(chosen)))
            for k in chosen:
                correct[k] = [next(matches) for _ in group[k].examples]
        spent = time.perf_counter() - t0
        total = sum(group[k].tokens for k in chosen)
        for k in chosen:  # each task's share of the request's time, by its tokens
            request_s[k] = spent * group[k].tokens / total
    outcomes = []
    for k, p in enumerate(group):
        accuracy = sum(correct[k]) / len(correct[k])
        outcomes.append(
            TaskOutcome(
                label=p.spec.label,
                accuracy=accuracy,
                centered=centered_accuracy(accuracy, p.spec.baseline_v1_percent),
                n=len(correct[k]),
                seconds=p.seconds + request_s[k],
                correct=tuple(correct[k]),
            )
        )
    return outcomes


def remote_outcomes(
    client: ModelClient, tokenizer: Tokenizer, bundle: Bundle, *, max_per_task: int | None, max_seq_len: int | None
) -> list[TaskOutcome]:
    """The 22 tasks' outcomes through the model process (per-example decisions of ``evaluate_tasks``).

    Tasks go in groups of about ``GROUP_TOKENS`` row tokens (all 22 at once on a small bundle), one
    ``losses`` request and the ``continue`` rounds a group, so the model process packs its batches
    across tasks.
    """
    if max_seq_len is not None:  # a prompt that cannot be cropped fails before any task is scored
        for label in CORE_V1_LABELS:
            task = bundle.task(label)
            items = task_items(task.items, max_per_task)
            if task.spec.num_fewshot < len(items):
                check_examples_fit(task.spec, items, range(len(items)), tokenizer, max_seq_len)
    outcomes: list[TaskOutcome] = []
    group: list[PreparedTask] = []
    for i, label in enumerate(CORE_V1_LABELS):
        task = bundle.task(label)
        group.append(
            prepare_task(task, tokenizer, max_per_task=max_per_task, rank=0, world_size=1, max_seq_len=max_seq_len)
        )
        if i == len(CORE_V1_LABELS) - 1 or sum(p.tokens for p in group) >= GROUP_TOKENS:
            outcomes += _score_group(client, group, tokenizer.bos_id)
            group = []
    return outcomes


def remote_core(
    client: ModelClient, tokenizer: Tokenizer, bundle: Bundle, *, max_per_task: int | None, max_seq_len: int | None
) -> CoreResult:
    """CORE (core-v1) through the model process, with the decisions of ``evaluate_core``."""
    t0 = time.perf_counter()
    outcomes = remote_outcomes(client, tokenizer, bundle, max_per_task=max_per_task, max_seq_len=max_seq_len)
    return core_result(
        outcomes, bundle_sha256=bundle.sha256, max_per_task=max_per_task, seconds=time.perf_counter() - t0
    )


def score(req: ScoreRequest) -> Score:
    t0 = time.perf_counter()
    config = config_of(req.recipe, req.overrides, req.seed)
    device = torch.device(req.device)
    tokenizer = Tokenizer.load(req.tokenizer_dir)
    spt = calibrate(config, device, default_batch_tokens(device))
    budget = Budget(load_s=req.load_s, base_s=req.base_s, multiple=req.multiple, seconds_per_token=spt)
    client = ModelClient(req.to_model_fd, req.from_model_fd, vocab_size=tokenizer.vocab_size, budget=budget)
    hello = client.hello()
    # the reference GPT crops prompts to its RoPE table, as in process; a fork's claim is not used
    max_seq_len = None if req.fork_model else hello.get("max_positions")
    if max_seq_len is not None and not isinstance(max_seq_len, int):
        raise ModelProcessError(f"the model process said max_positions={max_seq_len!r}")
    val_bpb = None
    if req.data_dir is not None:
        batches = val_batches(
            req.data_dir,
            tokenizer,
            batch_size=config.data.device_batch_size,
            seq_len=config.model.sequence_len,
            num_tokens=config.eval.eval_tokens,
            device="cpu",
        )
        joined = merged_batches(batches, default_batch_tokens(device))  # a few requests, not one per batch
        val_bpb = float(evaluate_bpb(_RemoteLoss(client), joined, tokenizer.token_bytes(), world_size=1))
    core = None
    if req.bundle is not None:
        core = remote_core(
            client,
            tokenizer,
            load_bundle(req.bundle),
            max_per_task=config.eval.core_max_per_task,
            max_seq_len=max_seq_len,
        )
    client.bye()
    return Score(
        core=core,
        val_bpb=val_bpb,
        val_bpb_by_fork=req.fork_model and val_bpb is not None,
        seconds=time.perf_counter() - t0,
        model_seconds=client.seconds,
        requests=client.requests,
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    req = ScoreRequest.model_validate_json(Path(args[0]).read_bytes())
    out = Path(req.out_dir)
    try:
        result = score(req)
    except ModelProcessError as exc:
        (out / FAILURE_FILE).write_text(json.dumps({"reason": str(exc)[:2000]}), encoding="utf-8")
        return 3
    (out / SCORE_FILE).write_text(json.dumps(result.model_dump(mode="json")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
