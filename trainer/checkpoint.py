"""Checkpoints: model + optimizer + loader + clock + RNG state, written atomically (temp + rename).

A checkpoint `ckpt_<step>.pt` holds everything needed to continue after `step` completed steps so
that, on CPU, a resumed run ends bit-identical to an uninterrupted one. `latest.json` names the
newest complete checkpoint; it is replaced only after the checkpoint file is in place.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest.json"
FORMAT_VERSION = 1


def _atomic_write_bytes(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    out_dir: Path,
    *,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loader_state: dict[str, Any],
    clock_state: dict[str, Any],
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    rank: int = 0,
) -> Path:
    """Write this rank's file of the checkpoint of `step` completed steps (rank 0 adds model and optimizer)."""
    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path = ckpt_dir / f"ckpt_{step:06d}_rank{rank}.pt"
    payload = {
        "format": FORMAT_VERSION,
        "step": step,
        "model": model.state_dict() if rank == 0 else None,
        "optimizer": optimizer.state_dict() if rank == 0 else None,
        "loader": loader_state,
        "clock": clock_state,
        "rng": rng_state(),
        "config": config,
        "extra": extra or {},
    }
    _atomic_write_bytes(path, lambda f: torch.save(payload, f))
    return path


def mark_latest(out_dir: Path, step: int) -> None:
    """Point `latest.json` at `step` (rank 0, once every rank's file of that step is written)."""
    latest = json.dumps({"step": step}).encode()
    _atomic_write_bytes(Path(out_dir) / CHECKPOINT_DIR / LATEST, lambda f: f.write(latest))


def latest_step(out_dir: Path) -> int | None:
    """The step of the newest complete checkpoint under `out_dir`, or None."""
    marker = Path(out_dir) / CHECKPOINT_DIR / LATEST
    if not marker.is_file():
        return None
    try:
        return int(json.loads(marker.read_text())["step"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{marker}: corrupt checkpoint marker ({exc})") from exc


def load_checkpoint(out_dir: Path, step: int, *, rank: int = 0) -> dict[str, Any]:
    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    path = ckpt_dir / f"ckpt_{step:06d}_rank{rank}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} is missing (was the run started with the same world size?)")
    payload: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=False)
    if payload.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')!r} is not {FORMAT_VERSION}")
    if rank != 0:
        shared = torch.load(ckpt_dir / f"ckpt_{step:06d}_rank0.pt", map_location="cpu", weights_only=False)
        payload["model"], payload["optimizer"] = shared["model"], shared["optimizer"]
    return payload


def save_model(path: Path, model: torch.nn.Module) -> None:
    """The final weights (state_dict), atomically."""
    _atomic_write_bytes(Path(path), lambda f: torch.save(model.state_dict(), f))
