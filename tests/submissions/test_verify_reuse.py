"""One real sealed cpu_smoke verification, run twice as a run-by-run worker would (``runs=1`` per
call): the verifier's corpus is built once and reused, training reads it instead of building its
own, each CPU step gets the free CPUs as OMP_NUM_THREADS (or the worker's own thread count, the
second call), and the run's phases reach the progress callback and phases.json in order."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from contract.protocol import JobProgress
from contract.tracks import BUILTIN_TRACKS
from submissions.inputs import DIGESTS_FILE, inputs_root
from submissions.runner import PHASES_FILE, PROCESS_LOG_FILE
from submissions.sandbox import sandbox_problem
from submissions.verify import verify
from tests.submissions.factories import CPU, TINY, tiny_cpu_config

pytestmark = pytest.mark.skipif(sandbox_problem() is not None, reason=f"no sandbox here: {sandbox_problem()}")

TRACK = BUILTIN_TRACKS["cpu-smoke"].model_copy(update={"max_per_task": 11})
CONFIG = tiny_cpu_config()


@dataclass(frozen=True)
class Calls:
    work: Path  # job-1/ and job-2/ of the two calls
    inputs: Path  # the verifier's inputs under that SPEEDRUN_HOME
    seen: list[JobProgress]  # the second call's progress
    recorded_ns: int  # digests.json after the first call
    after_ns: int  # and after the second


@pytest.fixture(scope="module")
def two_calls(tmp_path_factory: pytest.TempPathFactory) -> Calls:
    home = tmp_path_factory.mktemp("speedrun-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPEEDRUN_HOME", str(home))
    mp.delenv("OMP_NUM_THREADS", raising=False)
    seen: list[JobProgress] = []
    try:
        work = tmp_path_factory.mktemp("worker")
        first = verify(CONFIG, track=TRACK, runs=1, seeds=[11], out_dir=work / "job-1", fingerprint=CPU)
        assert first.runs, first.reasons
        digests = inputs_root() / DIGESTS_FILE
        recorded = digests.stat().st_mtime_ns
        second = verify(
            CONFIG,
            track=TRACK,
            runs=1,
            seeds=[12],
            out_dir=work / "job-2",
            fingerprint=CPU,
            progress=seen.append,
            threads=1,  # a worker that shares the machine with others (the demo's k workers)
        )
        assert second.runs, second.reasons
        return Calls(work, inputs_root(), seen, recorded, digests.stat().st_mtime_ns)
    finally:
        mp.undo()


def test_a_second_verification_reuses_the_verifiers_corpus(two_calls: Calls) -> None:
    assert two_calls.recorded_ns == two_calls.after_ns  # nothing rebuilt, nothing re-recorded


def test_training_reads_the_verifiers_corpus_and_builds_none(two_calls: Calls) -> None:
    run = two_calls.work / "job-2" / "run-0"
    argv = (run / PROCESS_LOG_FILE).read_text().splitlines()[0]
    assert f"--data-dir {two_calls.inputs / 'synthetic-0-v2048' / 'data'}" in argv
    assert not list((run / "home").rglob("manifest.json"))  # no corpus of its own in its SPEEDRUN_HOME


def test_each_cpu_step_is_given_the_free_cpus(two_calls: Calls) -> None:
    run = two_calls.work / "job-1" / "run-0"
    phases = json.loads((run / PHASES_FILE).read_text())
    assert 1 <= int(phases["train_threads"]) <= 64 and 1 <= int(phases["score_threads"]) <= 64
    assert f"{phases['train_threads']} CPU thread(s) (OMP_NUM_THREADS)" in (run / PROCESS_LOG_FILE).read_text()


def test_a_worker_with_a_thread_count_gives_it_to_every_step(two_calls: Calls) -> None:
    run = two_calls.work / "job-2" / "run-0"
    phases = json.loads((run / PHASES_FILE).read_text())
    assert (phases["train_threads"], phases["score_threads"]) == ("1", "1")
    assert "1 CPU thread(s) (OMP_NUM_THREADS)" in (run / PROCESS_LOG_FILE).read_text()


def test_phases_json_holds_the_runs_phases_in_order(two_calls: Calls) -> None:
    phases = json.loads((two_calls.work / "job-2" / "run-0" / PHASES_FILE).read_text())
    assert (phases["index"], phases["runs"], phases["seed"]) == (0, 1, 12)
    assert phases["train_start"] < phases["train_end"] <= phases["score_start"] < phases["score_end"]
    assert 0 < phases["train_clock_s"] <= phases["train_end"] - phases["train_start"]
    assert 0 < phases["score_s"] <= phases["score_end"] - phases["train_start"]


def test_progress_reports_start_training_and_scoring(two_calls: Calls) -> None:
    seen = two_calls.seen
    messages = [p.message for p in seen]
    assert messages[0] == "run 1/1 (seed 12): starting the sandbox"
    assert messages[-1] == "run 1/1 (seed 12): scoring CORE"
    assert seen[-1].step == seen[-1].steps == TINY["num_iterations"]  # the site shows "scoring CORE, run 1/1"
    assert all(p.run_index == 0 and p.runs == 1 for p in seen)


def test_the_demos_phase_table_reads_the_runs_of_both_calls(two_calls: Calls) -> None:
    from speedrun.demo import Phases, add_run_rows, run_phases

    runs = run_phases(two_calls.work, since=0.0)
    assert [r["seed"] for r in runs] == [11, 12]  # in the order they ran, one per verify() call
    phases = Phases()
    leased, done = float(runs[0]["train_start"]) - 1.0, float(runs[-1]["score_end"]) + 1.0
    add_run_rows(phases, runs, leased, done)
    doc = json.loads(json.dumps(phases.to_json()))
    per_run = [
        "{}: preparing",
        "{}: sandbox start, imports, data, save",
        "{}: training (timed steps)",
        "{}: reading the run's files",
        "{}: scoring (2 sandboxes)",
    ]
    expected = [*(p.format("run 1/2") for p in per_run), *(p.format("run 2/2") for p in per_run)]
    assert [r["phase"] for r in doc["phases"]] == [*expected, "upload and complete"]
    assert all(r["seconds"] >= 0 for r in doc["phases"])
    assert doc["phases"][0]["seconds"] == 1.0 and doc["phases"][-1]["seconds"] == 1.0
    assert "scoring (2 sandboxes)" in phases.table()


@pytest.mark.parametrize(
    ("progress", "shown"),
    [
        # a lease of the whole job: the worker's own index and k
        (
            {
                "run_index": 1,
                "runs": 3,
                "step": 40,
                "steps": 100,
                "eta_seconds": 12.4,
                "message": "run 2/3 (seed 9): training",
            },
            "run 2/3: training step 40/100, ETA 12 s",
        ),
        # a lease per run: verify() says "run 1/1", the site's fields say which of the k it is
        (
            {
                "run_index": 2,
                "runs": 3,
                "step": 100,
                "steps": 100,
                "message": "run 1/1 (seed 9): scoring CORE (2 of 3 runs in)",
            },
            "run 3/3: scoring CORE (2 of 3 runs in)",
        ),
    ],
)
def test_the_demo_shows_a_jobs_phase_from_its_progress_fields(progress: dict[str, object], shown: str) -> None:
    from speedrun.demo import JobWatcher

    assert JobWatcher.line({"status": "running", "runs": 3, "progress": progress}) == shown
    assert JobWatcher.line({"status": "queued", "runs": 3, "progress": None}) is None


def test_the_demos_phase_table_starts_overlapping_runs_from_the_lease() -> None:
    """k workers at once: each run starts from the lease (not from the run before it), and the upload
    row starts when the last run's scoring ends."""
    from speedrun.demo import Phases, add_run_rows

    runs = [
        {"train_start": 101.0, "train_end": 130.0, "train_clock_s": 29.0, "score_start": 130.0, "score_end": 150.0},
        {"train_start": 101.5, "train_end": 133.0, "train_clock_s": 31.5, "score_start": 133.0, "score_end": 148.0},
        {"train_start": 149.0, "train_end": 160.0, "train_clock_s": 11.0, "score_start": 160.0, "score_end": 165.0},
    ]
    phases = Phases()
    add_run_rows(phases, runs, leased=100.0, done=166.0)
    rows = {r["phase"]: r["seconds"] for r in phases.to_json()["phases"]}
    assert rows["run 1/3: preparing"] == 1.0 and rows["run 2/3: preparing"] == 1.5
    assert rows["run 3/3: preparing"] == 1.0  # from run 2's end at 148, the last that ended before it began
    assert rows["upload and complete"] == 1.0  # from run 3's end (165), the latest


@pytest.mark.parametrize(("runs", "cpus", "shares"), [(3, 2, (3, 1)), (3, 16, (3, 5)), (1, 2, (1, 2)), (2, 1, (2, 1))])
def test_the_demo_runs_a_worker_per_run_with_a_share_of_the_cpus(runs: int, cpus: int, shares: tuple[int, int]) -> None:
    from speedrun.demo import verifier_shares

    assert verifier_shares(runs, cpus) == shares
