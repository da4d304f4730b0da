"""The worker's fingerprint of its own node is the trainer's, and a CPU node fits the CPU track."""

from __future__ import annotations

import pytest
import torch

from contract.tracks import BUILTIN_TRACKS
from submissions.hardware import local_fingerprint
from trainer.hardware import fingerprint


def test_worker_fingerprint_is_the_trainers() -> None:
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 1
    assert local_fingerprint() == fingerprint(device, devices_per_node=count)


def test_a_cpu_node_fits_only_the_cpu_track() -> None:
    fp = local_fingerprint()
    if fp.sku != "cpu":
        pytest.skip("a GPU machine: the CPU-track property does not apply")
    assert BUILTIN_TRACKS["cpu-smoke"].allows_hardware(fp.sku, fp.device_count, fp.nodes) is None
    assert BUILTIN_TRACKS["gpt2-cost"].allows_hardware(fp.sku, fp.device_count, fp.nodes) is not None
