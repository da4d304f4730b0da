"""The site's own settings of the built-in tracks.

``SITE_DEFAULTS`` is what a new database seeds (and what migration 20261201_0001 writes into an
existing one); admins edit the stored copies. The hardware peaks that bound a run's physical
floor are the contract's (``contract.hardware.PEAKS``).
"""

from __future__ import annotations

from typing import Any

from contract.core_v1 import CORE_V1_EXAMPLES
from contract.schema import CLOCK_TOLERANCE_REL

CORE_V1_FULL_EXAMPLES = sum(CORE_V1_EXAMPLES.values())  # 91,037: every example of the public bundle
CPU_SMOKE_EXAMPLES = 880  # the synthetic bundle: 40 examples of each of the 22 tasks

_GPT2 = {
    "require_sealed": True,
    "fork_review": "required",
    "clock_tolerance": CLOCK_TOLERANCE_REL,
    "max_verifications": 3,
    "weekly_gpu_runs": 12,  # four verifications of k = 3 runs per user per week
    "core_examples": CORE_V1_FULL_EXAMPLES,
    "min_worker_accounts": 2,  # no single worker token makes a record
}
SITE_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt2-8xh100": _GPT2,
    "gpt2-cost": _GPT2,
    "cpu-smoke": {
        "require_sealed": False,
        "fork_review": "none",
        "clock_tolerance": CLOCK_TOLERANCE_REL,
        "max_verifications": 3,
        "weekly_gpu_runs": None,
        "core_examples": CPU_SMOKE_EXAMPLES,
        "min_worker_accounts": 1,  # a laptop's one worker verifies the CPU loop
    },
}
