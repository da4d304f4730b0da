"""trainer.cpus: torch threads sized to the CPUs actually free, measured against a real busy process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from trainer.cpus import THREADS_ENV, busy_cpus, cpu_threads, free_cpus, usable_cpus

AFFINITY = sorted(os.sched_getaffinity(0))


@pytest.fixture
def hog() -> Iterator[int]:
    """A real CPU-bound process pinned to the first CPU of ours; yields that CPU."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    os.sched_setaffinity(proc.pid, {AFFINITY[0]})
    try:
        yield AFFINITY[0]
    finally:
        proc.kill()
        proc.wait()


def test_a_process_spinning_on_a_cpu_counts_as_busy(hog: int) -> None:
    assert busy_cpus(0.5) >= 0.8  # the hog alone keeps one CPU busy; other work only adds


@pytest.mark.skipif(len(AFFINITY) < 2, reason="needs two CPUs")
def test_a_cpu_kept_busy_is_not_counted_free(hog: int) -> None:
    # a child restricted to the hog's CPU and one other: at most that other one is free
    pair = {hog, AFFINITY[1]}
    code = "import os, sys; from trainer.cpus import free_cpus; print(free_cpus(0.5))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=lambda: os.sched_setaffinity(0, pair),
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == 1


def test_free_cpus_is_between_one_and_the_usable_cpus() -> None:
    assert 1 <= free_cpus(0.2) <= usable_cpus() <= len(AFFINITY)


def test_an_explicit_thread_count_wins_over_the_measurement() -> None:
    assert cpu_threads({THREADS_ENV: "3"}) == (3, THREADS_ENV)


@pytest.mark.parametrize("value", ["", "0", "-2", "two"])
def test_a_missing_or_invalid_thread_count_is_measured(value: str) -> None:
    threads, source = cpu_threads({THREADS_ENV: value}, window_s=0.1)
    assert 1 <= threads <= usable_cpus() and source.startswith("free CPUs")


def test_speedrun_train_uses_the_thread_count_it_is_given(tmp_path) -> None:  # type: ignore[no-untyped-def]
    overrides = {"num_iterations": 1, "depth": 1, "device_batch_size": 2, "total_batch_size": 512, "eval_tokens": 512}
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--overrides", json.dumps(overrides)]
    cmd += ["--out", str(tmp_path / "run"), "--no-progress", "--no-eval"]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, THREADS_ENV: "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"1 CPU thread(s) ({THREADS_ENV})" in done.stderr
