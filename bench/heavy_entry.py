"""The heavy-claim case: how big an entry page gets and what 10 concurrent viewers of it cost a
submission made meanwhile.

Two entries on one fresh SQLite site (``speedrun serve``, one process):

- ``legacy``: the issue's attack as a site that accepted it would have stored it: a claimed run
  with 100,000 CORE task names (written to the database directly; the contract now refuses it,
  and ``attack_status`` is what the API answers to that claim today);
- ``bounded``: the heaviest claim the contract allows now: 20 claimed runs, each with the 22
  tasks, a resolved config and a plan of ~60 KiB each, and 8 MiB of logs.

For each: the page's bytes, the median of 5 sequential views, then 10 viewers looping on the page
while one submission is posted: the submission's latency then, against the same submission on
an idle site (``submit_idle_s``), and the views' p50/p95. Prints one JSON object.

    python bench/heavy_entry.py [--viewers 10] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "leaderboard"))
from lb_factories import submission_json  # valid contract objects, shared with the tests
from serving import serve


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _tokens(home: Path) -> dict[str, str]:
    from leaderboard.app import open_database
    from leaderboard.db import session_scope
    from leaderboard.settings import Settings
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    db = open_database(Settings(home=home, secret_key="bench"))
    with session_scope(db.sessionmaker) as s:
        token = create_user(s, UserCreate(name="bench", role=Role.submitter)).token
    db.engine.dispose()
    return {"alice": token}


def _bounded_claim() -> dict[str, Any]:
    body = submission_json()
    first = body["claimed_results"][0]
    tasks = first["core"]["tasks"]
    task = next(iter(tasks.values()))
    first["core"]["tasks"] = {f"task_{i:02d}": task for i in range(22)}
    first["config"] = {f"k{i:04d}": "x" * 40 for i in range(1200)}  # ~60 KiB
    first["plan"] = {**first["plan"], **{f"p{i:04d}": 1.5 for i in range(4000)}}
    body["claimed_results"] = [dict(first, run_id=f"run-{i}", seed=i + 1) for i in range(20)]
    body["logs"] = [{"name": f"log{i}.txt", "content": f"step {i} loss 3.0\n" * 60_000} for i in range(7)]
    return body


def _attack_claim() -> dict[str, Any]:
    body = submission_json()
    task = next(iter(body["claimed_results"][0]["core"]["tasks"].values()))
    body["claimed_results"][0]["core"]["tasks"] = {f"task_{i}": task for i in range(100_000)}
    return body


def _plant_legacy(home: Path, entry_id: int) -> None:
    """What an unbounded contract stored: the claimed run's per-task CORE with 100,000 names."""
    from sqlalchemy import update

    from leaderboard.app import open_database
    from leaderboard.db import session_scope
    from leaderboard.entries.models import Run, RunKind
    from leaderboard.revision import bump_revision
    from leaderboard.settings import Settings

    db = open_database(Settings(home=home, secret_key="bench", migrate_on_start=False, seed_on_start=False))
    with session_scope(db.sessionmaker) as s:
        tasks = {f"task_{i}": 0.25 for i in range(100_000)}
        s.execute(update(Run).where(Run.entry_id == entry_id, Run.kind == RunKind.claimed).values(core_tasks=tasks))
        bump_revision(s)
    db.engine.dispose()


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, float, Any]:
    started = time.perf_counter()
    r = httpx.post(f"{url}/api/submissions", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=300)
    return r.status_code, time.perf_counter() - started, r.json()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


def _measure(url: str, token: str, entry_id: int, viewers: int, seconds: float) -> dict[str, Any]:
    page = f"{url}/entries/{entry_id}"
    with httpx.Client(timeout=300) as c:
        size = len(c.get(page).content)
        sequential = []
        for _ in range(5):
            t = time.perf_counter()
            c.get(page)
            sequential.append(time.perf_counter() - t)
    idle = _post(url, token, submission_json())[1]
    stop = threading.Event()
    views: list[float] = []

    def view() -> None:
        with httpx.Client(timeout=300) as c:
            while not stop.is_set():
                t = time.perf_counter()
                c.get(page)
                views.append(time.perf_counter() - t)

    threads = [threading.Thread(target=view) for _ in range(viewers)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    status, loaded, _ = _post(url, token, submission_json())
    time.sleep(seconds / 2)
    stop.set()
    for t in threads:
        t.join(timeout=600)
    return {
        "page_bytes": size,
        "view_s_sequential_median": round(statistics.median(sequential), 4),
        "views_under_load": len(views),
        "view_s_p50_under_load": _pct(views, 0.5),
        "view_s_p95_under_load": _pct(views, 0.95),
        "submit_idle_s": round(idle, 4),
        "submit_during_views_s": round(loaded, 4),
        "submit_during_views_status": status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=6.0, help="how long the viewers loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="heavy-entry-") as tmp:
        home = Path(tmp)
        token = _tokens(home)["alice"]
        port = _port()
        proc = serve(home, port, env={"SPEEDRUN_SECRET_KEY": "bench", "SPEEDRUN_SUBMIT_RATE_PER_MINUTE": "1000"})
        url = f"http://127.0.0.1:{port}"
        try:
            attack_status, attack_s, _ = _post(url, token, _attack_claim())
            legacy = _post(url, token, submission_json())[2]["entry_id"]
            bounded_status, _, bounded = _post(url, token, _bounded_claim())
            assert bounded_status == 201, bounded
            _plant_legacy(home, legacy)
            out = {
                "bench": "heavy_entry",
                "viewers": args.viewers,
                "attack_100k_tasks_status": attack_status,
                "attack_100k_tasks_refused_in_s": round(attack_s, 4),
                "legacy_100k_tasks": _measure(url, token, legacy, args.viewers, args.seconds),
                "bounded_max_claim": _measure(url, token, bounded["entry_id"], args.viewers, args.seconds),
            }
        finally:
            _stop(proc)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
