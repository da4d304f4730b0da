"""`speedrun demo`: the whole journey on one machine, in one command.

1. open the site's embedded SQLite database under the demo directory (migrations + seed),
   create a submitter and a worker with tokens;
2. start the site (uvicorn in a thread) on 127.0.0.1;
3. train the ``cpu_smoke`` recipe (``speedrun train`` in a subprocess);
4. submit the run with ``submissions.client``;
5. run a local ``submissions.worker.Worker``, which leases the job's runs one by one (each with
   the seed the site picked), reproduces each, uploads its artifacts and completes it; the site
   pools the runs into the verification once all are in;
6. print the URL of the entry, now verified, and keep serving until Ctrl-C (``--no-serve``: stop).
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from leaderboard.app import open_database
from leaderboard.db import session_scope
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.repository import user_by_name
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user, issue_token
from speedrun.site import create_app
from submissions.client import Client, submission_from_run_dir
from submissions.worker import Worker

DEMO_TRACK = "cpu-smoke"
DEMO_RECIPE = "cpu_smoke"


def _say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tokens(settings: Settings) -> tuple[str, str]:
    """Fresh tokens for the demo submitter and worker (users created on first use)."""
    db = open_database(settings)
    tokens = []
    with session_scope(db.sessionmaker) as session:
        for name, role in (("demo", Role.submitter), ("demo-worker", Role.worker)):
            user = user_by_name(session, name)
            if user is None:
                tokens.append(create_user(session, UserCreate(name=name, role=role, token_label="demo")).token)
            else:
                tokens.append(issue_token(session, user, label="demo").token)
    db.close()
    return tokens[0], tokens[1]


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
    settings = Settings(home=root, base_url=base_url)
    _say(f"data directory {root} (database {settings.resolved_database_url})")
    submit_token, worker_token = _tokens(settings)

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
    try:
        run_dir = root / "runs" / f"cpu-smoke-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        _say(f"training {DEMO_RECIPE} into {run_dir} (about a minute on a laptop CPU)")
        cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", DEMO_RECIPE, "--out", str(run_dir)]
        if num_iterations is not None:  # a shorter run (the verifier reproduces the same override)
            cmd += ["--num-iterations", str(num_iterations)]
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
        with Client(base_url, submit_token) as client:
            accepted = client.submit(submission)
        _say(f"submitted: entry {accepted.entry_id}, job {accepted.job_id}")
        with Client(base_url, worker_token) as worker_client:
            worker = Worker(
                worker_client,
                worker_id="demo-worker",
                work_dir=root / "worker",
                poll_interval_s=1.0,
                run_timeout_s=run_timeout_s,
            )
            _say("verifying with a local worker (it re-runs the config with distinct seeds, one run per lease)")
            state = None
            while (leased := worker.run_once()) is not None:  # run by run, until the job is decided
                state = leased
                job = httpx.get(f"{base_url}/api/jobs/{accepted.job_id}", timeout=30).json()
                if job["status"] not in ("queued", "running"):
                    break
        if state is None:
            _say("the worker found no job to run")
            return 1
        entry = httpx.get(f"{base_url}/api/entries/{accepted.entry_id}", timeout=30).json()["entry"]
        _say(f"job {accepted.job_id}: its runs done; entry status: {entry['status']}")
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
