"""Issue 21: time to verdict of one 3-run cpu-smoke job with 1 worker vs 3 workers, same machine,
same config, real `speedrun worker` processes against a real site.

One local cpu_smoke training is the claim; it is submitted twice (two entries of one owner). The
first job is verified by one worker process, the second by three, each under its own worker
account, so that the site hands the job's three runs to three nodes at once. Time to verdict is
from the submission's acknowledgement to the job's end, read by polling GET /api/jobs/{id}.
Prints one JSON object. On a 2-core machine three trainings share two cores: the speed-up shows
what the protocol gives, bounded by the cores.

    python bench/parallel_runs.py [--work DIR] [--num-iterations N]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from leaderboard.app import open_database
from leaderboard.db import session_scope
from leaderboard.settings import Settings
from leaderboard.users.models import Role
from leaderboard.users.schemas import UserCreate
from leaderboard.users.service import create_user
from speedrun.site import create_app
from submissions.client import Client, submission_from_run_dir


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _users(settings: Settings, names: list[tuple[str, Role]]) -> dict[str, str]:
    db = open_database(settings)
    with session_scope(db.sessionmaker) as session:
        tokens = {name: create_user(session, UserCreate(name=name, role=role)).token for name, role in names}
    db.close()
    return tokens


def _verdict_time(base: str, job_id: int, workers: list[subprocess.Popen[str]], timeout_s: float) -> dict[str, Any]:
    t0 = time.perf_counter()
    while True:
        job = httpx.get(f"{base}/api/jobs/{job_id}", timeout=30).json()
        if job["status"] not in ("queued", "running"):
            return {"seconds": round(time.perf_counter() - t0, 1), "status": job["status"], "verdict": job["verdict"]}
        if time.perf_counter() - t0 > timeout_s or all(w.poll() is not None for w in workers):
            return {"seconds": None, "status": job["status"], "verdict": None, "phase": job.get("phase")}
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=None, help="working directory (default: a new temporary one)")
    ap.add_argument("--num-iterations", type=int, default=None, help="shorter runs (the verifier reproduces it)")
    ap.add_argument("--timeout-s", type=float, default=3600)
    args = ap.parse_args()
    work = (args.work or Path(tempfile.mkdtemp(prefix="speedrun-parallel-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    port = _port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(home=work / "site", base_url=base, lease_seconds=60)
    tokens = _users(
        settings,
        [("bench", Role.submitter)] + [(f"node-{i}", Role.worker) for i in range(3)],
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    out: dict[str, Any] = {"machine_cores": os.cpu_count(), "load_before": os.getloadavg()}
    try:
        run_dir = work / "claim"
        cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--out", str(run_dir)]
        if args.num_iterations:
            cmd += ["--num-iterations", str(args.num_iterations)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for n in (1, 3):
            sub = submission_from_run_dir(
                run_dir, track="cpu-smoke", title=f"parallel bench, {n} worker(s)", contributors=["bench"]
            )
            with Client(base, tokens["bench"]) as client:
                accepted = client.submit(sub)
            assert accepted.job_id is not None
            workers = []
            for i in range(n):
                env = {**os.environ, "SPEEDRUN_TOKEN": tokens[f"node-{i}"]}
                cmd = [sys.executable, "-m", "speedrun", "worker", "--server", base, "--poll-interval-s", "1"]
                cmd += ["--work-dir", str(work / f"w{n}-{i}"), "--worker-id", f"node-{i}", "--tracks", "cpu-smoke"]
                log = (work / f"worker-{n}-{i}.log").open("w")
                workers.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=log, text=True))
            try:
                out[f"workers_{n}"] = _verdict_time(base, accepted.job_id, workers, args.timeout_s)
            finally:
                for w in workers:
                    w.terminate()
                for w in workers:
                    w.wait(timeout=60)
        one, three = out["workers_1"]["seconds"], out["workers_3"]["seconds"]
        out["speedup"] = round(one / three, 2) if one and three else None
        out["load_after"] = os.getloadavg()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
