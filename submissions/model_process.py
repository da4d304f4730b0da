"""The model process of scoring: a run's model behind a pipe, seeing token ids only.

Run as ``python -m submissions.model_process REQUEST.json`` in its own sandbox by the verifier,
its stdin and stdout wired to the scorer (``submissions.score``); everything it prints goes to
its log (stdout is moved to stderr before any model code is imported). It sees the run's output
directory and, for a fork, the fork's code; never the eval bundle, the validation data, the
scorer's files or the training run's HOME/TMPDIR.

The model is the reference GPT rebuilt from the verifier's copy of the config and loaded from
``model.pt`` with ``weights_only`` (no code from the run), or a fork's declared entry point
(``[tool.speedrun] model = "package.module:function"``, called as ``fn(model_dir, config)`` and
returning a module from token ids ``[B, T]`` to logits ``[B, T, V]``). It answers the requests of
``submissions.wire`` with the batched scoring of ``trainer.evaluation.rows.score_rows``: the
same rows, the same packing, so the reference model's answers equal the in-process scorer's. A greedy
continuation is decoded in rounds the scorer drives (``continue``: one round per request), each one
forward of the row's final length with a draft of the tokens still to come (``draft``: prompt lookup),
so a round decides one token or, where the draft is right, several.

Nothing here is trusted: a fork controls this whole process. The scorer checks every reply.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from contract import MODEL_FILE
from contract.schema import Contract
from submissions import wire
from trainer.evaluation.rows import Row, autocast_dtype_for, default_batch_tokens, score_rows
from trainer.memory import keep_freed_memory
from trainer.model import GPTConfig, build_model
from trainer.plan import config_of
from trainer.train import compute_dtype_for

ENTRY_POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelRequest(Contract):
    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    seed: int
    model_dir: str
    device: str = "cpu"
    entry_point: str | None = Field(default=None, pattern=ENTRY_POINT_PATTERN)
    fork_src: str | None = None


class Served:
    """A loaded model and how the batched scorer drives it."""

    def __init__(self, model: torch.nn.Module, device: torch.device, max_positions: int | None, gpt: bool) -> None:
        self.model = model.eval()
        self.device = device
        self.max_positions = max_positions
        self.gpt = gpt  # speaks the reference GPT's loss interface (targets=, loss_reduction=)
        self.autocast = autocast_dtype_for("auto", device, model)
        self.batch_tokens = default_batch_tokens(device)
        if device.type == "cpu":
            keep_freed_memory()

    def _score(self, rows: list[Row], pad_id: int, *, losses: bool) -> list[Any]:
        out: list[Any] = [None] * len(rows)
        with torch.no_grad():
            for batch, values in score_rows(
                self.model,
                rows,
                pad_id=pad_id,
                device=self.device,
                batch_tokens=self.batch_tokens,
                want_losses=losses,
                want_argmax=not losses,
                autocast_dtype=self.autocast,
            ):
                for i, v in zip(batch, values, strict=True):
                    out[i] = v
        return out

    def losses(self, rows: list[Row], pad_id: int) -> np.ndarray:
        return np.asarray(self._score(rows, pad_id, losses=True), dtype=np.float64)

    def continue_round(
        self, contexts: list[tuple[int, ...]], counts: list[int], pad_id: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """One round of greedy decoding: the tokens it decides after each context (1 to ``counts[i]``).

        The round forwards, for every context, one row of its final length: the context, a draft of
        the ``counts[i] - 1`` tokens after the first (``draft``) and one pad; the greedy token at every
        continuation position comes back. The first is decided, and each further one while the draft
        before it equals the greedy token there (greedy decoding is the same however many draft tokens
        are right), so a round decides at least one token, and all of them where the draft guesses
        well: a one-token continuation is one forward of context + 1 tokens, the in-process scorer's.
        Returns the decided tokens of every context, concatenated, and how many each has. The scorer
        drives the rounds: it sends the contexts still undecided, extended by what was decided.
        """
        if len(counts) != len(contexts):
            raise ValueError(f"{len(counts)} counts for {len(contexts)} contexts")
        if any(n < 1 for n in counts):
            raise ValueError("every context needs at least one token to continue")
        rows = [
            Row(j, 0, (*ctx, *draft(ctx, n - 1, pad_id), pad_id), len(ctx), len(ctx) + n)
            for j, (ctx, n) in enumerate(zip(contexts, counts, strict=True))
        ]
        decided: list[int] = []
        lengths = []
        for row, n, greedy in zip(rows, counts, self._score(rows, pad_id, losses=False), strict=True):
            m = 1
            while m < n and row.tokens[row.start + m - 1] == greedy[m - 1]:  # the draft held up to here
                m += 1
            decided += greedy[:m]
            lengths.append(m)
        return np.asarray(decided, dtype=np.int64), np.asarray(lengths, dtype=np.int64)

    def token_losses(self, inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.int64)).to(self.device)
        y = torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64)).to(self.device)
        with torch.no_grad():
            if self.gpt:
                loss = self.model(x, y, loss_reduction="none")
            else:
                logits = self.model(x).float()
                loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
        out: np.ndarray = loss.reshape(y.shape).double().cpu().numpy()
        return out


def draft(tokens: tuple[int, ...], n: int, pad_id: int) -> tuple[int, ...]:
    """A guess of the ``n`` tokens after ``tokens``: what followed the latest earlier occurrence of their
    last 3, 2 or 1 tokens (few-shot answers and passages repeat), else the last token repeated."""
    if n <= 0:
        return ()
    if not tokens:
        return (pad_id,) * n
    a = np.asarray(tokens, dtype=np.int64)
    for k in (3, 2, 1):
        m = len(a) - k  # candidate starts 0 .. m - 1: at least one token follows the occurrence
        if m <= 0:
            continue
        ok = np.ones(m, dtype=bool)
        for j in range(k):
            ok &= a[j : j + m] == a[m + j]
        hits = np.flatnonzero(ok)
        if hits.size:
            guess = tokens[int(hits[-1]) + k :][:n]
            return (*guess, *(guess[-1:] * (n - len(guess))))
    return (tokens[-1],) * n


def load(req: ModelRequest) -> Served:
    config = config_of(req.recipe, req.overrides, req.seed)
    device = torch.device(req.device)
    if req.entry_point is None:
        model = build_model(GPTConfig.from_train_config(config), device, compute_dtype_for(device))
        state = torch.load(Path(req.model_dir) / MODEL_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return Served(model, device, model.max_positions, gpt=True)
    module_name, _, func_name = req.entry_point.partition(":")
    if req.fork_src:
        sys.path.append(req.fork_src)  # after the verifier's own packages: never shadows them
    fn = getattr(importlib.import_module(module_name), func_name)
    model = fn(req.model_dir, config.to_dict())
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{req.entry_point} returned {type(model).__name__}, not a torch.nn.Module")
    return Served(model.to(device), device, None, gpt=False)


def _split(tokens: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    """The concatenated rows ``tokens`` cut at ``lengths`` (which must add up to the whole)."""
    if int(lengths.sum()) != len(tokens) or (lengths < 0).any():
        raise ValueError(f"row lengths add up to {int(lengths.sum())}, not the {len(tokens)} tokens sent")
    return np.split(tokens.astype(np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else []


def _rows(arrays: list[np.ndarray]) -> list[Row]:
    tokens, lengths, starts, ends, groups = arrays
    rows = _split(tokens, lengths)
    return [
        Row(g, 0, tuple(r.tolist()), s, e)
        for g, r, s, e in zip(groups.tolist(), rows, starts.tolist(), ends.tolist(), strict=True)
    ]


def answer(served: Served, header: dict[str, Any], arrays: list[np.ndarray]) -> tuple[dict[str, Any], list[Any]]:
    op = header.get("op")
    pad_id = int(header.get("pad_id", 0))
    if op == "losses":
        return {"ok": True}, [served.losses(_rows(arrays), pad_id)]
    if op == "continue":
        tokens, lengths, counts = arrays
        contexts = [tuple(c.tolist()) for c in _split(tokens, lengths)]
        return {"ok": True}, list(served.continue_round(contexts, counts.tolist(), pad_id))
    if op == "token_losses":
        return {"ok": True}, [served.token_losses(arrays[0], arrays[1])]
    raise ValueError(f"unknown request {op!r}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    proto_in, proto_out = 0, os.dup(1)
    os.dup2(2, 1)  # whatever the model prints goes to the log, never into the protocol
    sys.stdout = sys.stderr
    req = ModelRequest.model_validate_json(Path(args[0]).read_bytes())
    header, _ = wire.read_message(proto_in)
    if header.get("op") != "hello":
        return 2
    try:
        served = load(req)
    except Exception as exc:
        traceback.print_exc()
        wire.write_message(proto_out, {"ok": False, "error": f"loading the model failed: {exc!r}"[:2000]})
        return 1
    vocab = getattr(getattr(served.model, "config", None), "vocab_size", None)
    wire.write_message(proto_out, {"ok": True, "max_positions": served.max_positions, "vocab_size": vocab})
    while True:
        header, arrays = wire.read_message(proto_in)
        if header.get("op") == "bye":
            return 0
        try:
            reply, out = answer(served, header, arrays)
        except Exception as exc:
            traceback.print_exc()
            reply, out = {"ok": False, "error": f"{header.get('op')}: {exc!r}"[:2000]}, []
        wire.write_message(proto_out, reply, out)


if __name__ == "__main__":
    sys.exit(main())
