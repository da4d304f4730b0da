"""The scorer's side of the pipe to a model process: requests, deadlines and checked replies.

Every reply is checked before it is used: the count of values, their shape and dtype, finite
losses, token ids inside the vocabulary. A reply that fails a check, a closed pipe (the process
died) or a reply later than its deadline raises ``ModelProcessError`` with a reason a user can
read, and scoring stops there.

Deadlines: loading the model gets ``load_s``; each request ``base_s`` plus ``multiple`` times
what the reference GPT of the same config needs for the same tokens on this device, measured
by the scorer itself (``calibrate``: one timed forward of a freshly initialised reference model,
no weights from the run). So a model process gets a small multiple of the reference's scoring
cost, and no time to train off the clock.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from submissions import wire
from trainer.config import TrainConfig
from trainer.evaluation.rows import Row
from trainer.memory import keep_freed_memory
from trainer.model import GPTConfig, build_model
from trainer.train import compute_dtype_for


class ModelProcessError(Exception):
    """The model process died, stalled or answered something invalid; the message says which."""


@dataclass(frozen=True)
class Budget:
    load_s: float = 120.0
    base_s: float = 30.0
    multiple: float = 8.0
    seconds_per_token: float = 0.0  # the reference model's forward cost here (calibrate)

    def request_s(self, tokens: int, tasks: int = 1) -> float:
        """The deadline of a request for ``tokens`` tokens of ``tasks`` tasks (each task brings its own base)."""
        return self.base_s * tasks + self.multiple * self.seconds_per_token * tokens


# A CPU forward costs about the same per token at 1,024 tokens as at 4,096 (measured: 23 vs 30 us per
# token for cpu_smoke at 2 threads), so a CPU is timed on a quarter of the scorer's batch.
CPU_CALIBRATION_TOKENS = 1024


def calibrate(config: TrainConfig, device: torch.device, batch_tokens: int) -> float:
    """Seconds per token of one forward of the reference GPT of ``config`` on ``device`` (best of 3)."""
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(config), device, compute_dtype_for(device)).eval()
    if device.type == "cpu":
        keep_freed_memory()  # as the model process does (Served)
        batch_tokens = min(batch_tokens, CPU_CALIBRATION_TOKENS)
    width = min(config.model.sequence_len, batch_tokens)
    x = torch.randint(0, config.model.vocab_size, (max(1, batch_tokens // width), width), device=device)
    best = float("inf")
    with torch.no_grad():
        for _ in range(3):
            t0 = time.perf_counter()
            model(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - t0)
    del model
    return best / x.numel()


class ModelClient:
    """Requests to a model process over two pipe fds (to it, from it)."""

    def __init__(self, to_model: int, from_model: int, *, vocab_size: int, budget: Budget) -> None:
        self.to_model = to_model
        self.from_model = from_model
        self.vocab_size = vocab_size
        self.budget = budget
        self.requests = 0
        self.seconds = 0.0  # spent waiting for replies

    def _ask(
        self, what: str, header: dict[str, Any], arrays: list[np.ndarray], timeout_s: float
    ) -> tuple[dict[str, Any], list[np.ndarray]]:
        t0 = time.monotonic()
        try:
            wire.write_message(self.to_model, header, arrays)
            reply, out = wire.read_message(self.from_model, deadline=t0 + timeout_s)
        except wire.WireError as exc:
            if "time allowed" in str(exc):
                raise ModelProcessError(
                    f"the model process did not answer {what} within {timeout_s:.0f} s "
                    f"(a multiple of the reference model's cost): {exc}"
                ) from exc
            raise ModelProcessError(f"the model process stopped answering ({what}): {exc}") from exc
        self.requests += 1
        self.seconds += time.monotonic() - t0
        if reply.get("ok") is not True:
            raise ModelProcessError(f"the model process failed {what}: {str(reply.get('error'))[:500]}")
        return reply, out

    def hello(self) -> dict[str, Any]:
        reply, _ = self._ask("loading the model", {"op": "hello"}, [], self.budget.load_s)
        return reply

    def bye(self) -> None:
        with contextlib.suppress(wire.WireError):
            wire.write_message(self.to_model, {"op": "bye"})

    def losses(self, rows: Sequence[Row], pad_id: int, *, tasks: int = 1) -> list[float]:
        """The mean loss of each row's span (the gold index never leaves the scorer); ``tasks``: how many
        tasks' rows the request holds (the deadline is the sum of what each would get alone)."""
        lengths = np.asarray([len(r.tokens) for r in rows], dtype=np.int32)
        tokens = np.asarray([t for r in rows for t in r.tokens], dtype=np.int32)
        starts = np.asarray([r.start for r in rows], dtype=np.int32)
        ends = np.asarray([r.end for r in rows], dtype=np.int32)
        groups = np.asarray([r.example for r in rows], dtype=np.int32)
        what = f"a request for {len(rows)} candidate losses"
        _, out = self._ask(
            what,
            {"op": "losses", "pad_id": pad_id},
            [tokens, lengths, starts, ends, groups],
            self.budget.request_s(int(lengths.sum()), tasks),
        )
        values = _one(out, np.float64, (len(rows),), what)
        if not np.isfinite(values).all():
            raise ModelProcessError(f"the model process answered {what} with non-finite losses")
        return [float(v) for v in values]

    def greedy_matches(
        self, contexts: Sequence[Sequence[int]], golds: Sequence[Sequence[int]], pad_id: int, *, tasks: int = 1
    ) -> list[bool]:
        """Whether the model's greedy continuation of each context equals its gold tokens (no gold token sent).

        Decoded in rounds (``continue``): each round the model process decides at least one more token
        of every context still open; a context whose decided tokens differ from its gold ones is a miss
        and leaves, one whose gold tokens are all decided is a hit. The next round's contexts are
        extended by the model's own decided tokens, so the model process learns nothing but which of its
        own answers are still open. All rounds together get the deadline of decoding every continuation
        token by token (``(context + k) x (k + 1)`` tokens for k tokens).
        """
        if len(golds) != len(contexts):
            raise ValueError(f"{len(golds)} gold continuations for {len(contexts)} contexts")
        cost = int(sum((len(c) + len(g)) * (len(g) + 1) for c, g in zip(contexts, golds, strict=True)))
        allowed = self.budget.request_s(cost, tasks)
        deadline = time.monotonic() + allowed
        rounds = 0
        matches = [len(g) == 0 for g in golds]
        made: dict[int, list[int]] = {i: [] for i, g in enumerate(golds) if g}  # the open contexts' decided tokens
        while made:
            open_ = list(made)
            rows = [[*contexts[i], *made[i]] for i in open_]
            left = np.asarray([len(golds[i]) - len(made[i]) for i in open_], dtype=np.int32)
            rounds += 1
            what = f"round {rounds} of the continuations of {len(open_)} contexts ({allowed:.0f} s for all rounds)"
            _, out = self._ask(
                what,
                {"op": "continue", "pad_id": pad_id},
                [
                    np.asarray([t for r in rows for t in r], dtype=np.int32),
                    np.asarray([len(r) for r in rows], np.int32),
                    left,
                ],
                max(deadline - time.monotonic(), 0.0),
            )
            if len(out) != 2:
                raise ModelProcessError(f"the model process answered {what} with {len(out)} arrays, not 2")
            tokens = _one(out[:1], np.int64, (out[0].size,), what)
            lengths = _one(out[1:], np.int64, (len(open_),), what)
            if (lengths < 1).any() or (lengths > left).any() or int(lengths.sum()) != tokens.size:
                raise ModelProcessError(
                    f"the model process answered {what} with token counts outside 1 ... what was asked"
                )
            if tokens.size and (tokens.min() < 0 or tokens.max() >= self.vocab_size):
                raise ModelProcessError(f"the model process answered {what} with token ids outside the vocabulary")
            pos = 0
            for i, n in zip(open_, lengths.tolist(), strict=True):
                m = made[i]
                m += tokens[pos : pos + n].tolist()
                pos += n
                if m != list(golds[i][: len(m)]):
                    del made[i]  # a miss
                elif len(m) == len(golds[i]):
                    matches[i] = True
                    del made[i]
        return matches

    def token_losses(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = inputs.cpu().numpy().astype(np.int64)
        y = targets.cpu().numpy().astype(np.int64)
        what = f"a request for the per-token losses of a {tuple(x.shape)} batch"
        _, out = self._ask(what, {"op": "token_losses"}, [x, y], self.budget.request_s(int(x.size)))
        values = _one(out, np.float64, tuple(y.shape), what)
        if not np.isfinite(values).all():
            raise ModelProcessError(f"the model process answered {what} with non-finite losses")
        return torch.from_numpy(values.copy())


def _one(out: list[np.ndarray], dtype: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    if len(out) != 1:
        raise ModelProcessError(f"the model process answered {what} with {len(out)} arrays, not 1")
    a = out[0]
    if a.dtype != np.dtype(dtype) or tuple(a.shape) != shape:
        raise ModelProcessError(f"the model process answered {what} with {a.dtype} {tuple(a.shape)}, not {shape}")
    return a
