"""The verifier's scorer: CORE and val_bpb of a run's checkpoint, by the worker's installed code.

Run as ``python -m submissions.score REQUEST.json`` inside the evaluation sandbox (no network,
the run's output, the eval bundle and the validation data bound read-only, only its own output
directory writable). It rebuilds the model from the verifier's copy of the config (recipe +
overrides + seed, never the run's result.json) and loads ``model.pt`` with ``weights_only``
(no code from the run), or, for a fork that declares a model entry point
(``[tool.speedrun] model = "package.module:function"`` in its pyproject.toml; see
submissions/README.md), imports that function from the fork and calls it. Then it runs exactly
the evaluation the reference trainer runs in process (``trainer.evaluation``), and writes
``score.json``.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field

from contract import MODEL_FILE
from contract.schema import Contract, CoreResult
from trainer.data.loader import val_batches
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bpb import evaluate_bpb
from trainer.evaluation.bundle import load_bundle
from trainer.evaluation.core import evaluate_core
from trainer.model import GPTConfig, build_model
from trainer.plan import config_of
from trainer.train import compute_dtype_for

SCORE_FILE = "score.json"
ENTRY_POINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ScoreRequest(Contract):
    recipe: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    seed: int
    model_dir: str
    out_dir: str
    bundle: str | None
    data_dir: str | None
    tokenizer_dir: str
    device: str = "cpu"
    entry_point: str | None = Field(default=None, pattern=ENTRY_POINT_PATTERN)
    fork_src: str | None = None


class Score(Contract):
    core: CoreResult | None
    val_bpb: float | None = Field(default=None, allow_inf_nan=False)
    seconds: float = Field(ge=0)


def _bpb_adapter(model: Any) -> Any:
    """Gives an entry-point model (token ids -> logits) the loss interface of evaluate_bpb."""

    class Adapter(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, idx: torch.Tensor, targets: torch.Tensor, loss_reduction: str = "none") -> torch.Tensor:
            logits = self.inner(idx).float()
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
            return loss.reshape(targets.shape)

    return Adapter(model)


def load_model(req: ScoreRequest, config: Any, device: Any) -> tuple[Any, int | None, bool]:
    """(model, max_seq_len, speaks the reference GPT's loss interface)."""
    if req.entry_point is None:
        model = build_model(GPTConfig.from_train_config(config), device, compute_dtype_for(device))
        state = torch.load(Path(req.model_dir) / MODEL_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        return model, model.max_positions, True
    module_name, _, func_name = req.entry_point.partition(":")
    if req.fork_src:
        sys.path.append(req.fork_src)  # after the verifier's own packages: never shadows them
    fn = getattr(importlib.import_module(module_name), func_name)
    model = fn(req.model_dir, config.to_dict())
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"{req.entry_point} returned {type(model).__name__}, not a torch.nn.Module")
    return model.to(device), None, False


def score(req: ScoreRequest) -> Score:

    t0 = time.perf_counter()
    config = config_of(req.recipe, req.overrides, req.seed)
    device = torch.device(req.device)
    tokenizer = Tokenizer.load(req.tokenizer_dir)
    model, max_seq_len, gpt_loss = load_model(req, config, device)
    val_bpb = None
    if req.data_dir is not None:
        batches = val_batches(
            req.data_dir,
            tokenizer,
            batch_size=config.data.device_batch_size,
            seq_len=config.model.sequence_len,
            num_tokens=config.eval.eval_tokens,
            device=device,
        )
        scored = model if gpt_loss else _bpb_adapter(model)
        val_bpb = float(evaluate_bpb(scored, batches, tokenizer.token_bytes(), world_size=1))
    core = None
    if req.bundle is not None:
        core = evaluate_core(
            model,
            tokenizer,
            load_bundle(req.bundle),
            device=device,
            max_per_task=config.eval.core_max_per_task,
            max_seq_len=max_seq_len,
            progress=False,
        )
    return Score(core=core, val_bpb=val_bpb, seconds=time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    req = ScoreRequest.model_validate_json(Path(args[0]).read_bytes())
    result = score(req)
    out = Path(req.out_dir) / SCORE_FILE
    out.write_text(json.dumps(result.model_dump(mode="json")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
