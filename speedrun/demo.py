"""`speedrun demo`: the whole journey on one machine, in one command.

1. open the site's embedded SQLite database under the demo directory (migrations + seed),
   create a submitter and a worker with tokens;
2. start the site (uvicorn in a thread) on 127.0.0.1;
3. train the ``cpu_smoke`` recipe (``speedrun train`` in a subprocess);
4. submit the run with ``submissions.client``;
5. run k local ``submissions.worker.Worker``s at once (k = the job's runs, each with its own work
   dir and its share of the free CPUs, as k machines would), each leasing one run (with the seed
   the site picked), reproducing it sealed, uploading its artifacts and completing it; the site
   pools the runs into the verification once all are in (a site that leases the whole job: one
   lease does it all); meanwhile the demo polls
   ``GET /api/jobs/{id}`` and prints each phase the worker's heartbeat reports (run i/k: starting,
   training step s/n, scoring CORE);
6. print the phase table (also written to ``<home>/demo-phases.json``), the URL of the entry, now
   verified, and keep serving until Ctrl-C (``--no-serve``: stop).

The corpus, tokenizer and eval bundle are built before training, once per machine: the trainer's
copy in the trainer's cache, the verifier's checked copy in ``verifier-inputs/`` (both reused by
later demos while their digests match).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from contract.tracks import BUILTIN_TRACKS
from leaderboard.app import open_database
from leaderboard.db import session_scope
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.repository import user_by_name
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user, issue_token
from speedrun.site import create_app
from submissions.client import Client, submission_from_run_dir
from submissions.inputs import synthetic_inputs
from submissions.runner import PHASES_FILE
from submissions.worker import Worker
from trainer.config import RECIPES
from trainer.cpus import free_cpus
from trainer.data.prepare import ensure_synthetic_dataset
from trainer.evaluation.bundle import ensure_synthetic_bundle

DEMO_TRACK = "cpu-smoke"
DEMO_RECIPE = "cpu_smoke"
# The demo site's lease: the worker's heartbeat (lease / 4) carries the progress the demo shows, so
# a short lease means a phase shows within ~10 s; a heartbeat is retried until the lease expires,
# and 40 s still leaves the upload after the last beat ample time.
DEMO_LEASE_S = 40
POLL_S = 1.0
PHASES_JSON = "demo-phases.json"
MAX_LEASES = 12  # k = 3 runs, each retried at most a few times


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens(settings: Settings, workers: int) -> tuple[str, list[str]]:
    """Fresh tokens for the demo submitter and its ``workers`` worker accounts (one per local
    worker, as separate machines would have; users created on first use)."""
    db = open_database(settings)
    tokens = []
    names = [("demo", Role.submitter)] + [
        ("demo-worker" if i == 0 else f"demo-worker-{i + 1}", Role.worker) for i in range(workers)
    ]
    with session_scope(db.sessionmaker) as session:
        for name, role in names:
            user = user_by_name(session, name)
            if user is None:
                tokens.append(create_user(session, UserCreate(name=name, role=role, token_label="demo")).token)
            else:
                tokens.append(issue_token(session, user, label="demo").token)
    db.close()
    return tokens[0], tokens[1:]


class Phases:
    """The demo's phase table: (name, seconds) rows in order, with their start and end times."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.started = time.time()

    def add(self, name: str, start: float, end: float, **extra: Any) -> None:
        self.rows.append({"phase": name, "seconds": round(end - start, 1), "start": round(start, 3), **extra})

    def timed(self, name: str) -> _Timed:
        return _Timed(self, name)

    def table(self) -> str:
        width = max(len(r["phase"]) for r in self.rows)
        lines = [f"{'phase'.ljust(width)}  seconds"]
        for r in self.rows:
            note = f"  ({r['note']})" if r.get("note") else ""
            lines.append(f"{r['phase'].ljust(width)}  {r['seconds']:7.1f}{note}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"started": self.started, "phases": self.rows}


class _Timed:
    def __init__(self, phases: Phases, name: str) -> None:
        self.phases, self.name = phases, name

    def __enter__(self) -> None:
        self.start = time.time()

    def __exit__(self, *exc: object) -> None:
        self.phases.add(self.name, self.start, time.time())


class JobWatcher(threading.Thread):
    """Polls ``GET /api/jobs/{id}`` and reports each new phase of the job (the worker's heartbeat
    progress: run i/k, its message, training step s/n and ETA) to ``show``; remembers when each
    message was first seen."""

    def __init__(self, base_url: str, job_id: int, show: Callable[[str], None], poll_s: float = POLL_S) -> None:
        super().__init__(name=f"watch-job-{job_id}", daemon=True)
        self.url = f"{base_url}/api/jobs/{job_id}"
        self.show, self.poll_s = show, poll_s
        self.stop = threading.Event()
        self.seen: list[tuple[float, str]] = []  # (first seen, line) of every line shown
        self.leased_at: float | None = None

    @staticmethod
    def line(job: dict[str, Any]) -> str | None:
        """``run i/k: <phase>[ step s/n, ETA e s]`` of a running job, from its progress fields (a
        run verified on its own says "run 1/1" in its message: the index and k come from the
        fields, which the site sets for the verification)."""
        p = job.get("progress") or {}
        if job.get("status") != "running" or not p:
            return None
        message = str(p.get("message") or job.get("phase") or "running")
        phase = message.split(": ", 1)[1] if message.startswith("run ") and ": " in message else message
        text = f"run {int(p.get('run_index') or 0) + 1}/{p.get('runs') or job.get('runs')}: {phase}"
        step, steps = p.get("step"), p.get("steps")
        if phase.startswith("training") and isinstance(step, int) and isinstance(steps, int):
            text += f" step {step}/{steps}"
            if isinstance(p.get("eta_seconds"), int | float):
                text += f", ETA {p['eta_seconds']:.0f} s"
        return text

    def run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self.stop.wait(self.poll_s):
                try:
                    job = http.get(self.url).json()
                except (httpx.HTTPError, ValueError):
                    continue
                if job.get("status") == "running" and self.leased_at is None:
                    self.leased_at = time.time()
                text = self.line(job)
                if text is not None and (not self.seen or self.seen[-1][1] != text):
                    self.seen.append((time.time(), text))
                    self.show(text)


def run_phases(work_dir: Path, since: float) -> list[dict[str, Any]]:
    """The verifier's own phase figures of each run (``run-*/phases.json`` under the worker's work
    dir) written after ``since``, in the order the runs started; with the trainer's timed region
    from the run's result.json."""
    found = []
    for path in work_dir.rglob(PHASES_FILE):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            result = json.loads((path.parent / "out" / "result.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or float(data.get("train_start", 0)) < since:
            continue
        data["timed_steps_s"] = result.get("training_seconds")
        found.append(data)
    return sorted(found, key=lambda d: float(d["train_start"]))


def add_run_rows(phases: Phases, runs: list[dict[str, Any]], leased: float, done: float) -> None:
    """Per run: start-up (sandbox, imports, data) + save, the timed steps, scoring; then upload.
    Runs that overlap (several workers) each start from the lease or the end of the run before them."""
    ends: list[float] = []
    previous = leased
    for i, r in enumerate(runs):  # a run verified on its own (a lease per run) says index 0 of 1
        where = f"run {i + 1}/{len(runs)}"
        start = float(r["train_start"])
        previous = max([leased, *(e for e in ends if e <= start)])
        previous = min(previous, start)  # the lease is seen by polling, up to POLL_S late
        phases.add(f"{where}: preparing", previous, start)
        clock, timed = float(r["train_clock_s"]), r.get("timed_steps_s")
        threads = f"{r.get('train_threads') or 'default'} thread(s)"
        if isinstance(timed, int | float):
            start = float(r["train_start"])
            phases.add(f"{where}: sandbox start, imports, data, save", start, start + clock - timed, note=threads)
            phases.add(f"{where}: training (timed steps)", start, start + timed, note=f"clock {clock:.1f} s")
        else:
            phases.add(f"{where}: training (clock)", float(r["train_start"]), float(r["train_end"]), note=threads)
        if "score_start" in r and "score_end" in r:
            phases.add(f"{where}: reading the run's files", float(r["train_end"]), float(r["score_start"]))
            phases.add(
                f"{where}: scoring (2 sandboxes)",
                float(r["score_start"]),
                float(r["score_end"]),
                note=f"{r.get('score_threads') or 'default'} thread(s)",
            )
            ends.append(float(r["score_end"]))
    phases.add("upload and complete", max([previous, *ends]), done)


def _lease_until_decided(worker: Worker, base_url: str, job_id: int, leased: list[bool]) -> None:
    """One worker's loop: lease and run until nothing is left to lease or the job is decided."""
    for _ in range(MAX_LEASES):
        if worker.run_once() is None:
            return
        leased.append(True)
        status = str(httpx.get(f"{base_url}/api/jobs/{job_id}", timeout=30).json()["status"])
        if status not in ("queued", "running"):
            return


def _verify_locally(workers: list[Worker], base_url: str, job_id: int) -> str | None:
    """The workers lease at once until the job is decided: each takes one run of it (a site that
    leases a job run by run), or one of them the whole job. The job's final status, or None when
    nothing could be leased."""
    leased: list[bool] = []
    loops = [
        threading.Thread(target=_lease_until_decided, args=(w, base_url, job_id, leased), name=w.worker_id)
        for w in workers
    ]
    for t in loops:
        t.start()
        time.sleep(0.2)  # staggered: each lease is a write to the demo's SQLite database
    for t in loops:
        t.join()
    if not leased:
        return None
    return str(httpx.get(f"{base_url}/api/jobs/{job_id}", timeout=30).json()["status"])


def verifier_shares(runs: int, cpus: int) -> tuple[int, int]:
    """(workers, CPU threads each) for verifying ``runs`` runs on ``cpus`` free CPUs: a worker per
    run, all at once, the CPUs shared out (at least one thread each). Tiny steps use one thread
    better than two, and the runs' start-up, scoring and upload overlap."""
    workers = max(1, runs)
    return workers, max(1, cpus // workers)


def run_demo(
    *,
    home: str | None = None,
    port: int | None = None,
    keep_serving: bool = True,
    run_timeout_s: float | None = None,
    num_iterations: int | None = None,
) -> int:
    root = Path(home or "speedrun-demo").expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    port = port or _free_port()
    base_url = f"http://127.0.0.1:{port}"
    settings = Settings(home=root, base_url=base_url, lease_seconds=DEMO_LEASE_S)
    _say(f"data directory {root} (database {settings.resolved_database_url})")
    phases = Phases()
    site_start = time.time()
    submit_token, worker_tokens = _tokens(settings, BUILTIN_TRACKS[DEMO_TRACK].min_runs)

    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="speedrun-site", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            _say("the site did not start")
            return 1
        time.sleep(0.05)
    _say(f"site up on {base_url}")
    phases.add("site start (database, migrations, uvicorn)", site_start, time.time())
    try:
        with phases.timed("corpus, tokenizer, eval bundle (trainer's and verifier's copies)"):
            _say("building the synthetic corpus, tokenizer and eval bundle (once per machine)")
            data = RECIPES[DEMO_RECIPE]().data
            ensure_synthetic_dataset(seed=data.synthetic_seed, vocab_size=data.synthetic_vocab_size)
            ensure_synthetic_bundle(seed=data.synthetic_seed)
            synthetic_inputs(seed=data.synthetic_seed, vocab_size=data.synthetic_vocab_size, bundle=True)
        run_dir = root / "runs" / f"cpu-smoke-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        _say(f"training {DEMO_RECIPE} into {run_dir} (about 20 s on 2 idle cores)")
        cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", DEMO_RECIPE, "--out", str(run_dir)]
        if num_iterations is not None:  # a shorter run (the verifier reproduces the same override)
            cmd += ["--num-iterations", str(num_iterations)]
        with phases.timed("training (speedrun train, unsealed)"):
            proc = subprocess.run(cmd, check=False)
        if proc.returncode != 0:
            _say(f"training failed with exit code {proc.returncode}: {' '.join(cmd)}")
            return 1
        submission = submission_from_run_dir(
            run_dir,
            track=DEMO_TRACK,
            title=f"cpu_smoke demo run {run_dir.name}",
            contributors=["demo"],
            description="Trained, submitted and verified by `speedrun demo`.",
        )
        with phases.timed("submission"), Client(base_url, submit_token) as client:
            accepted = client.submit(submission)
        _say(f"submitted: entry {accepted.entry_id}, job {accepted.job_id}")
        submitted = time.time()
        if accepted.job_id is None:
            _say("the site queued no verification job for the entry")
            return 1
        watcher = JobWatcher(base_url, accepted.job_id, show=_say)
        watcher.start()
        job = httpx.get(f"{base_url}/api/jobs/{accepted.job_id}", timeout=30).json()
        count, threads = verifier_shares(min(int(job.get("runs") or 1), len(worker_tokens)), free_cpus())
        with contextlib.ExitStack() as stack:
            workers = [
                Worker(
                    stack.enter_context(Client(base_url, worker_tokens[i])),
                    worker_id=f"demo-worker-{i + 1}",
                    work_dir=root / "worker" / str(i + 1),
                    poll_interval_s=1.0,
                    run_timeout_s=run_timeout_s,
                    threads=threads,
                )
                for i in range(count)
            ]
            _say(
                f"verifying with {count} local worker(s) at once, {threads} CPU thread(s) each (they re-run "
                "the config with distinct seeds, sealed)"
            )
            verifying = time.time()
            try:
                state = _verify_locally(workers, base_url, accepted.job_id)
            finally:
                watcher.stop.set()
                watcher.join(timeout=10)
        done = time.time()
        leased = watcher.leased_at or verifying
        phases.add("queue wait (submitted -> leased)", submitted, min(leased, done))
        add_run_rows(phases, run_phases(root / "worker", since=verifying), min(leased, done), done)
        phases.add("total", phases.started, done)
        (root / PHASES_JSON).write_text(json.dumps(phases.to_json(), indent=2), encoding="utf-8")
        print(phases.table(), file=sys.stderr, flush=True)
        if state is None:
            _say("the worker found no job to run")
            return 1
        entry = httpx.get(f"{base_url}/api/entries/{accepted.entry_id}", timeout=30).json()["entry"]
        _say(f"job {accepted.job_id}: {state}; entry status: {entry['status']}")
        print(accepted.url, flush=True)
        if entry["status"] != "verified":
            _say("the entry was not verified; see the verification history on its page")
            return 1
        if keep_serving:
            _say(f"serving {base_url} until Ctrl-C")
            while thread.is_alive():
                thread.join(timeout=0.5)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        server.should_exit = True
        thread.join(timeout=10)
