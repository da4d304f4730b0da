"""The fingerprint of the machine a worker or verifier runs on.

The reference trainer owns how hardware is fingerprinted; the worker uses the very same function
so that it describes its node exactly as the runs it verifies will."""

from __future__ import annotations

import torch

from contract.schema import HardwareFingerprint
from trainer.hardware import fingerprint


def local_fingerprint(nodes: int = 1) -> HardwareFingerprint:
    """What this node offers: all its CUDA devices, or the CPU when there is none."""
    if torch.cuda.is_available():
        fp = fingerprint(torch.device("cuda", 0), devices_per_node=torch.cuda.device_count(), nodes=nodes)
    else:
        fp = fingerprint(torch.device("cpu"), nodes=nodes)
    return HardwareFingerprint.model_validate(fp)
