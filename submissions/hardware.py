"""The fingerprint of the machine a worker or verifier runs on (torch imported inside)."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess

from submissions.schema import HardwareFingerprint
from submissions.tracks import sku_from_device_name


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.strip().splitlines()
    return first[0].strip() if first else None


def local_fingerprint(nodes: int = 1) -> HardwareFingerprint:
    """What this node offers: all its CUDA devices, or the CPU when there is none.

    Uses the reference trainer's fingerprint when it is installed, so that the worker describes its
    node exactly as the runs it verifies will; the fallback below is the same recipe without it."""
    import torch

    try:  # imported by name: mypy would otherwise check the trainer's module under this package's strict rules
        fingerprint = importlib.import_module("trainer.hardware").fingerprint
    except ImportError:
        pass
    else:
        if torch.cuda.is_available():
            fp = fingerprint(torch.device("cuda", 0), devices_per_node=torch.cuda.device_count(), nodes=nodes)
        else:
            fp = fingerprint(torch.device("cpu"), nodes=nodes)
        return HardwareFingerprint.model_validate(fp)

    cpu_count = os.cpu_count()
    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        nccl: str | None = None
        try:
            nccl = ".".join(str(v) for v in torch.cuda.nccl.version())  # type: ignore[no-untyped-call]
        except (AttributeError, RuntimeError):
            nccl = None
        return HardwareFingerprint(
            sku=sku_from_device_name(name),
            device_type="cuda",
            device_name=name,
            device_count=torch.cuda.device_count(),
            nodes=nodes,
            device_memory_bytes=int(torch.cuda.get_device_properties(0).total_memory),
            driver_version=_nvidia_driver(),
            cuda_version=torch.version.cuda,
            nccl_version=nccl,
            torch_version=torch.__version__,
            cpu_model=_cpu_model(),
            cpu_count=cpu_count,
        )
    return HardwareFingerprint(
        sku="cpu",
        device_type="cpu",
        device_name=_cpu_model()[:200],
        device_count=1,
        nodes=nodes,
        torch_version=torch.__version__,
        cpu_model=_cpu_model(),
        cpu_count=cpu_count,
    )
