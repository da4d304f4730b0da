"""The submit rate limit under a burst: 60 concurrent posts from one token against two server
processes (``speedrun serve --workers 2``), limit 20 per minute, on SQLite and on PostgreSQL
(when a server answers on 127.0.0.1:5432). The limit is one database counter taken by an atomic
upsert in the request's transaction, so the expected answer is exactly 20 x 201 and 40 x 429,
and exactly 20 submissions stored. Prints one JSON object with the counts and latencies.

    python bench/rate_limit.py [--posts 60] [--limit 20] [--workers 2] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "leaderboard"))
from lb_factories import submission_json  # valid contract objects, shared with the tests
from serving import serve

POSTGRES_ADMIN_URL = os.environ.get("SPEEDRUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(home: Path, url: str) -> str:
    from leaderboard.app import open_database
    from leaderboard.db import session_scope
    from leaderboard.settings import Settings
    from leaderboard.users.models import Role
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import create_user

    db = open_database(Settings(home=home, database_url=url, secret_key="bench"))
    with session_scope(db.sessionmaker) as s:
        token = create_user(s, UserCreate(name="burst", role=Role.submitter)).token
    db.engine.dispose()
    return token


def _stored(url: str) -> int:
    from sqlalchemy import func, select

    from leaderboard.db import make_engine
    from leaderboard.entries.models import Submission

    engine = make_engine(url)
    with engine.connect() as conn:
        n = int(conn.scalar(select(func.count(Submission.id))) or 0)
    engine.dispose()
    return n


def _burst(base: str, token: str, posts: int) -> tuple[list[int], list[float], float]:
    bodies = [json.dumps(submission_json()).encode() for _ in range(posts)]
    barrier = threading.Barrier(posts)
    codes: list[int] = []
    seconds: list[float] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    def post(body: bytes) -> None:
        with httpx.Client(base_url=base, timeout=300) as client:
            barrier.wait()
            t = time.perf_counter()
            codes.append(client.post("/api/submissions", content=body, headers=headers).status_code)
            seconds.append(time.perf_counter() - t)

    threads = [threading.Thread(target=post, args=(b,)) for b in bodies]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return codes, seconds, time.perf_counter() - started


def _backend(name: str, url: str, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    token = _token(home, url)
    port = _port()
    proc = serve(
        home,
        port,
        env={"SPEEDRUN_SECRET_KEY": "bench", "SPEEDRUN_SUBMIT_RATE_PER_MINUTE": str(args.limit)},
        args=("--database-url", url, "--workers", str(args.workers)),
    )
    try:
        codes, seconds, wall = _burst(f"http://127.0.0.1:{port}", token, args.posts)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    ordered = sorted(seconds)
    return {
        "backend": name,
        "statuses": dict(sorted(Counter(codes).items())),
        "stored_submissions": _stored(url),
        "exact": Counter(codes) == {201: args.limit, 429: args.posts - args.limit},
        "burst_wall_s": round(wall, 3),
        "latency_p50_s": round(ordered[len(ordered) // 2], 4),
        "latency_max_s": round(ordered[-1], 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=60)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="server processes")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rate-limit-") as tmp:
        home = Path(tmp) / "sqlite"
        home.mkdir()
        results.append(_backend("sqlite", f"sqlite:///{home / 'site.db'}", home, args))
        if not args.no_postgres:
            import psycopg

            name = f"speedrun_bench_{uuid.uuid4().hex[:10]}"
            try:
                with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
                    conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.OperationalError as exc:
                results.append({"backend": "postgresql", "skipped": str(exc)})
            else:
                base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
                pg_home = Path(tmp) / "pg"
                pg_home.mkdir()
                try:
                    results.append(_backend("postgresql", f"{base}/{name}", pg_home, args))
                finally:
                    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    out = {"bench": "rate_limit", "posts": args.posts, "limit": args.limit, "server_processes": args.workers}
    print(json.dumps({**out, "results": results}, indent=2))


if __name__ == "__main__":
    main()
