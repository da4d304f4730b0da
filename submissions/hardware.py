"""The fingerprint of the machine a worker or verifier runs on (torch imported inside).

The reference trainer (same distribution) owns how hardware is fingerprinted; the worker uses the
very same function so that it describes its node exactly as the runs it verifies will."""

from __future__ import annotations

import importlib

from submissions.schema import HardwareFingerprint


def local_fingerprint(nodes: int = 1) -> HardwareFingerprint:
    """What this node offers: all its CUDA devices, or the CPU when there is none."""
    import torch

    # imported by name: mypy would otherwise check the trainer's module under this package's strict rules
    fingerprint = importlib.import_module("trainer.hardware").fingerprint
    if torch.cuda.is_available():
        fp = fingerprint(torch.device("cuda", 0), devices_per_node=torch.cuda.device_count(), nodes=nodes)
    else:
        fp = fingerprint(torch.device("cpu"), nodes=nodes)
    return HardwareFingerprint.model_validate(fp)
