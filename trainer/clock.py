"""The trainer's own clock: speedrun-v1, self-reported. This is NOT the clock that ranks.

Every built-in track ranks under `speedrun-v2`, whose time is the verifier's own clock over the
sealed training process (``submissions/measure.py``); what this module measures travels in the run
result as the trainer's self-reported time and is only compared with it
(``contract.tracks.clock_disagrees``).

`speedrun-v1`: every real training step is timed, device-synchronized before and after, on every
rank (rank 0's figure is the one reported). Compilation warm-up happens in explicit untimed steps
before the clock starts, after which model, optimizer and loader state are reset (train.py), so
no real step escapes the clock. Evaluation, checkpointing and logging run outside `timed_step`.
The whole process's wall time is recorded separately.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from contract.schema import SELF_TIMED_RULES_VERSION, RulesVersion


class Clock:
    def __init__(
        self, synchronize: Callable[[], None] | None = None, rules_version: RulesVersion = SELF_TIMED_RULES_VERSION
    ):
        if rules_version != "speedrun-v1":
            raise ValueError(f"rules_version: this trainer times under speedrun-v1 only, got {rules_version!r}")
        self.rules_version: RulesVersion = rules_version
        self._synchronize = synchronize or (lambda: None)
        self.training_seconds = 0.0
        self.timed_steps = 0
        self.last_step_seconds = 0.0

    @contextmanager
    def timed_step(self) -> Iterator[None]:
        """Time one training step (synchronize, run, synchronize)."""
        self._synchronize()
        t0 = time.perf_counter()
        yield
        self._synchronize()
        self.last_step_seconds = time.perf_counter() - t0
        self.training_seconds += self.last_step_seconds
        self.timed_steps += 1

    def state_dict(self) -> dict[str, Any]:
        return {
            "rules_version": self.rules_version,
            "training_seconds": self.training_seconds,
            "timed_steps": self.timed_steps,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["rules_version"] != self.rules_version:
            raise ValueError(f"checkpoint was timed under {state['rules_version']}, not {self.rules_version}")
        self.training_seconds = float(state["training_seconds"])
        self.timed_steps = int(state["timed_steps"])


class WallClock:
    """Wall time of the process (the run result's `wall_seconds`), carried across resumes."""

    def __init__(self, previous_seconds: float = 0.0) -> None:
        self._t0 = time.perf_counter()
        self.previous_seconds = previous_seconds

    @property
    def seconds(self) -> float:
        return self.previous_seconds + time.perf_counter() - self._t0
