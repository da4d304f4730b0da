"""Run the doctor's checks in order and make the verdict (`run_doctor`), and render the table."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainer.doctor.checks import (
    FAIL,
    OK,
    Check,
    check_attention,
    check_core,
    check_loader,
    check_small_model,
    check_stack,
    guarded,
    no_gpu,
    scratch_dataset,
    small_config,
)

GPU_CHECKS = ("record_model", "compile", "fp8", "allreduce", "projection")


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def verdict(checks: list[Check], gpu: bool) -> str:
    """`not ready` if any check failed; `ready` on a GPU node with every check passed; `cpu only` otherwise."""
    if any(c.status == FAIL for c in checks):
        return "not ready"
    return "ready" if gpu else "cpu only"


def run_doctor(*, quick: bool = False, extra: Sequence[tuple[str, Callable[[bool], Check]]] = ()) -> dict[str, Any]:
    """Every check that applies here; ``extra``: (name, check(gpu)) pairs a caller adds after the
    stack check (the verifier's sandbox probe, registered by the `speedrun` command)."""
    import torch

    gpu = torch.cuda.is_available()
    device = torch.device("cuda", 0) if gpu else torch.device("cpu")
    checks: list[Check] = [guarded("stack", check_stack)]
    for name, fn in extra:
        checks.append(guarded(name, lambda fn=fn: fn(gpu)))  # type: ignore[misc]
    checks.append(guarded("attention", lambda: check_attention(device, quick)))
    small: list[float] = []

    def small_model() -> Check:
        check, tps = check_small_model(device, quick)
        small.append(tps)
        return check

    checks.append(guarded("small_model", small_model))
    best: dict[str, Any] | None = None
    if gpu:
        found: list[dict[str, Any]] = []

        def record() -> Check:
            from trainer.doctor.gpu import check_record_model

            check, b = check_record_model(device, quick)
            if b is not None:
                found.append(b)
            return check

        checks.append(guarded("record_model", record))
        best = found[0] if found else None
    with tempfile.TemporaryDirectory(prefix="speedrun-doctor-") as tmp:
        root = Path(tmp)
        data: list[Any] = []

        def dataset() -> Check:
            data.extend(scratch_dataset(root, quick))
            return Check("scratch_data", OK, "synthetic corpus and tokenizer built")

        made = guarded("scratch_data", dataset)
        if made.status == FAIL:
            checks.append(made)
        else:
            # what one device consumes: the record model's tokens/s on a GPU, the small model's on a CPU
            needed = best["tokens_per_second"] if best else (small[0] if small else None)
            checks.append(guarded("loader", lambda: check_loader(data[0], data[1], device, needed, quick)))
            if gpu and best is not None:
                from trainer.doctor.gpu import record_config

                core_cfg = record_config(best["depth"], 16, compile=False, fp8=False)
            else:
                core_cfg = small_config(quick)
            checks.append(guarded("core", lambda: check_core(root, data[1], device, core_cfg, quick)))
    if gpu and best is not None:
        from trainer.doctor import gpu as g

        depth = int(best["depth"])
        checks.append(guarded("compile", lambda: g.check_compile(device, depth, best, quick)))
        fp8 = guarded("fp8", lambda: g.check_fp8(device, depth, best, quick))
        checks.append(fp8)
        checks.append(guarded("allreduce", lambda: g.check_allreduce(quick)))
        speedup = fp8.figures.get("speedup") if fp8.status == OK else None
        checks.append(guarded("projection", lambda: g.check_projection(device, best, speedup)))
    elif not gpu:
        what = {
            "record_model": "depth-24 tokens/s, MFU and memory at device batch 16 and 32",
            "compile": "compiled against eager tokens/s",
            "fp8": "fp8 against bf16 tokens/s and losses",
            "allreduce": "all-reduce bandwidth across GPUs (torchrun)",
            "projection": "hours to GPT-2 from the measured MFU and the plan's FLOPs",
        }
        checks += [no_gpu(name, what[name]) for name in GPU_CHECKS]
    return {
        "verdict": verdict(checks, gpu),
        "gpu": gpu,
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": _commit(),
        "checks": {c.name: c.to_dict() for c in checks},
    }


def format_table(report: dict[str, Any]) -> str:
    rows = [(name, c["status"], c["detail"]) for name, c in report["checks"].items()]
    width = max(len(r[0]) for r in rows)
    lines = [f"speedrun doctor: {report['verdict']}  ({report['date']}, commit {str(report['commit'])[:12]})"]
    lines += [f"  {name:<{width}}  {status:<4}  {detail}" for name, status, detail in rows]
    return "\n".join(lines)
