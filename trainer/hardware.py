"""What a run ran on: a `HardwareFingerprint` of the CPU or GPUs, and the software versions."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version

import torch

from contract.hardware import peak_flops as sku_peak_flops
from contract.hardware import sku_from_device_name
from contract.schema import VAL_BPB_NOTE, HardwareFingerprint
from trainer.attention import BackendChoice

SOFTWARE_PACKAGES = (
    "speedrun",
    "torch",
    "numpy",
    "pyarrow",
    "tiktoken",
    "rustbpe",
    "flash-attn",
    "flash_attn_3",
    "kernels",
    "triton",
)


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return out.strip().splitlines()[0] if out.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def fingerprint(device: torch.device, *, devices_per_node: int = 1, nodes: int = 1) -> HardwareFingerprint:
    """The fingerprint of `device` (one of `devices_per_node` identical devices on each of `nodes`)."""
    cpu_count = os.cpu_count()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        nccl = ".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl") else None
        return HardwareFingerprint(
            sku=sku_from_device_name(props.name),
            device_type="cuda",
            device_name=props.name,
            device_count=devices_per_node,
            nodes=nodes,
            device_memory_bytes=int(props.total_memory),
            driver_version=_nvidia_driver(),
            cuda_version=torch.version.cuda,
            nccl_version=nccl,
            torch_version=torch.__version__,
            cpu_model=cpu_model(),
            cpu_count=cpu_count,
        )
    return HardwareFingerprint(
        sku="cpu",
        device_type="cpu",
        device_name=cpu_model() or "cpu",
        device_count=devices_per_node,
        nodes=nodes,
        device_memory_bytes=None,
        torch_version=torch.__version__,
        cpu_model=cpu_model(),
        cpu_count=cpu_count,
    )


def peak_flops(fp: HardwareFingerprint) -> float | None:
    """bf16 dense peak FLOP/s of one device, or None (CPU, unknown GPU): then MFU is reported as null."""
    return sku_peak_flops(fp.sku)


def software_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in SOFTWARE_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    out["torch"] = torch.__version__
    if torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


def run_software(attention: BackendChoice) -> dict[str, str]:
    """`software_versions` plus what the run result must say about how it computed: the attention
    backend (name, version, why it was chosen) and the val_bpb byte convention."""

    out = software_versions()
    out["attention"] = f"{attention.name} {attention.version}"
    out["attention_reason"] = attention.reason
    out["val_bpb"] = VAL_BPB_NOTE
    return out
