"""The doctor's GPU checks: the record model's tokens/s and MFU, compile, fp8 vs bf16, all-reduce, and the
projected time to GPT-2. Each needs CUDA; the caller skips them with "no GPU" elsewhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainer.doctor.checks import FAIL, OK, SKIP, Check, TrainingFigures, measure_training

if TYPE_CHECKING:
    import torch

    from trainer.config import TrainConfig

RECORD_DEPTHS = (24, 20, 16, 12)  # the record's depth first, then smaller ones if it does not fit


def _peak(device: torch.device) -> float | None:
    from trainer.hardware import fingerprint, peak_flops

    return peak_flops(fingerprint(device))


def record_config(depth: int, device_batch: int, *, compile: bool, fp8: bool) -> TrainConfig:
    from trainer.config import gpt2_speedrun

    return gpt2_speedrun().replace(
        **{
            "model.depth": depth,
            "data.device_batch_size": device_batch,
            "runtime.compile": compile,
            "runtime.fp8": fp8,
        }
    )


def _measure(depth: int, batch: int, device: torch.device, steps: int, *, compile: bool, fp8: bool) -> TrainingFigures:
    import torch

    try:
        return measure_training(record_config(depth, batch, compile=compile, fp8=fp8), device, steps, warmup=2)
    finally:
        torch.cuda.empty_cache()


def _figures(depth: int, batch: int, figs: TrainingFigures, peak: float | None) -> dict[str, Any]:
    from trainer.plan import dims_for, flops_per_token

    d = dims_for(record_config(depth, batch, compile=False, fp8=False))
    mfu = None if peak is None else flops_per_token(d) * figs.tokens_per_second / peak
    return {
        "depth": depth,
        "device_batch": batch,
        "tokens_per_second": round(figs.tokens_per_second, 1),
        "mfu": None if mfu is None else round(mfu, 4),
        "peak_memory_gib": figs.peak_memory_gib,
        "first_step_seconds": round(figs.first_step_seconds, 2),
        "losses": [round(x, 4) for x in figs.losses],
    }


def check_record_model(device: torch.device, quick: bool) -> tuple[Check, dict[str, Any] | None]:
    """The record model (depth 24, or the largest of RECORD_DEPTHS that fits) compiled, at device batch 16 and 32."""
    import torch

    peak = _peak(device)
    steps = 3 if quick else 8
    results: dict[str, Any] = {"peak_flops": peak, "runs": []}
    best: dict[str, Any] | None = None
    for depth in RECORD_DEPTHS:
        try:
            figs16 = _measure(depth, 16, device, steps, compile=True, fp8=False)
        except torch.cuda.OutOfMemoryError:
            results.setdefault("did_not_fit", []).append(depth)
            continue
        best = _figures(depth, 16, figs16, peak)
        results["runs"].append(best)
        try:
            results["runs"].append(
                _figures(depth, 32, _measure(depth, 32, device, steps, compile=True, fp8=False), peak)
            )
        except torch.cuda.OutOfMemoryError:
            results["runs"].append({"depth": depth, "device_batch": 32, "error": "out of memory"})
        break
    if best is None:
        return Check("record_model", FAIL, f"no depth of {RECORD_DEPTHS} fits at device batch 16", results), None
    parts = [
        f"b{r['device_batch']}: {r['tokens_per_second']:,.0f} tok/s, MFU {r['mfu']}, {r['peak_memory_gib']} GiB"
        for r in results["runs"]
        if "tokens_per_second" in r
    ]
    return Check("record_model", OK, f"depth {best['depth']}: " + "; ".join(parts), results), best


def check_compile(device: torch.device, depth: int, compiled: dict[str, Any], quick: bool) -> Check:
    """Eager against compiled tokens/s at device batch 16, and how long the first (compiling) step took."""
    figs = _measure(depth, 16, device, 2 if quick else 4, compile=False, fp8=False)
    eager = figs.tokens_per_second
    speedup = compiled["tokens_per_second"] / eager
    figures = {
        "eager_tokens_per_second": round(eager, 1),
        "compiled_tokens_per_second": compiled["tokens_per_second"],
        "speedup": round(speedup, 3),
        "first_compiled_step_seconds": compiled["first_step_seconds"],
    }
    status = OK if speedup > 1.0 else FAIL
    return Check(
        "compile", status, f"{speedup:.2f}x over eager; first step {compiled['first_step_seconds']} s", figures
    )


def check_fp8(device: torch.device, depth: int, bf16: dict[str, Any], quick: bool) -> Check:
    """fp8 against bf16 tokens/s (compiled, device batch 16) and their losses over the same steps."""
    import torch

    if torch.cuda.get_device_capability(device)[0] < 9:
        return Check("fp8", SKIP, "fp8 matmuls need Hopper or newer (sm90+)")
    figs = _measure(depth, 16, device, 3 if quick else 8, compile=True, fp8=True)
    losses = [round(x, 4) for x in figs.losses]
    rel = max(abs(a - b) / abs(b) for a, b in zip(losses, bf16["losses"], strict=True))
    speedup = figs.tokens_per_second / bf16["tokens_per_second"]
    figures = {
        "fp8_tokens_per_second": round(figs.tokens_per_second, 1),
        "bf16_tokens_per_second": bf16["tokens_per_second"],
        "speedup": round(speedup, 3),
        "fp8_losses": losses,
        "bf16_losses": bf16["losses"],
        "max_relative_loss_difference": round(rel, 5),
    }
    status = OK if rel < 0.02 else FAIL
    return Check("fp8", status, f"{speedup:.2f}x bf16 tokens/s; losses within {rel:.2%}", figures)


def check_allreduce(quick: bool) -> Check:
    """Bus bandwidth of a bf16 all-reduce across this node's GPUs (torchrun, NCCL)."""
    import torch

    n = torch.cuda.device_count()
    if n < 2:
        return Check("allreduce", SKIP, f"needs >= 2 GPUs, this node has {n}")
    torchrun = shutil.which("torchrun")
    cmd = [torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"]
    with tempfile.TemporaryDirectory(prefix="speedrun-doctor-") as tmp:
        out = Path(tmp) / "allreduce.json"
        size_mib = 64 if quick else 256
        proc = subprocess.run(
            [*cmd, "--standalone", f"--nproc_per_node={n}", "-m", "trainer.doctor.allreduce", str(out), str(size_mib)],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        if proc.returncode != 0 or not out.is_file():
            return Check("allreduce", FAIL, f"torchrun exited {proc.returncode}: {proc.stderr[-400:]}")
        figures = json.loads(out.read_text())
    return Check("allreduce", OK, f"{n} GPUs: {figures['bus_gbps']:,.0f} GB/s bus bandwidth", figures)


def check_projection(device: torch.device, best: dict[str, Any], fp8_speedup: float | None = None) -> Check:
    """Hours to GPT-2 on this node: the record plan's FLOPs at the measured MFU on all its GPUs (the fp8
    MFU when the fp8 check measured one, as the record trains in fp8)."""
    import torch

    from trainer.config import gpt2_speedrun
    from trainer.plan import resolve

    peak = _peak(device)
    if peak is None or best.get("mfu") is None:
        return Check("projection", SKIP, "unknown GPU peak FLOP/s: no MFU to project from")
    plan = resolve(gpt2_speedrun(), 1)
    flops = plan.flops_per_token * plan.total_tokens
    gpus = torch.cuda.device_count()
    mfu = best["mfu"] * (fp8_speedup or 1.0)
    hours = flops / (mfu * peak * gpus) / 3600
    figures = {
        "plan_flops": flops,
        "mfu": round(mfu, 4),
        "precision": "fp8" if fp8_speedup else "bf16",
        "measured_depth": best["depth"],
        "gpus": gpus,
        "hours": round(hours, 3),
        "note": "MFU of one GPU; multi-GPU communication not included",
    }
    if best["depth"] != 24:
        figures["note"] += f"; MFU measured at depth {best['depth']} (depth 24 did not fit)"
    what = f"{hours:.2f} h to GPT-2 on {gpus} GPUs at {figures['precision']} MFU {figures['mfu']}"
    return Check("projection", OK, what, figures)
