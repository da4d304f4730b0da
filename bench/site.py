"""Leaderboard site throughput: every public page and its JSON twin with 10,000 entries.

Fills a fresh database (SQLite, then PostgreSQL when reachable) with 10,000 entries, 100,000 runs
and 300 verification jobs (finished ones with their verdicts, queued and running ones with
progress) on the gpt2-8xh100 track, starts ``speedrun serve`` on 127.0.0.1, and drives each page
of ``PAGES`` (the board, an entry, the queue, the progression and the rules, HTML and JSON; the
entry pages cycle over the 50 best entries) over 50 keep-alive connections:

- ``open``: an open loop at the target rate (1,000 requests/s over the 50 connections, each request
  timed from its scheduled start, so a stall is not hidden by the client waiting): achieved
  requests/s, p50, p99.
- ``closed``: each connection sends its next request as soon as the last one is answered:
  the most requests/s the server gives, with its p50 and p99 (latency ~ 50 / throughput).

Each phase also reports the CPU seconds the load generator (this process: one asyncio loop, on
uvloop when installed, parsing only the status line and Content-Length) and the server process
used during it, as ``client_cpu_s`` / ``server_cpu_s`` and as shares of all cores
(``*_share_of_cores`` = CPU seconds / (wall seconds x cores)): both run on the same cores, so the
client's share is CPU the server did not get. Latencies use ``time.perf_counter`` (uvloop's own
clock ticks in whole milliseconds).

Reference in the same run: the same JSON twin with the read cache off (``cache_ttl_seconds=0``),
and the issue's targets (p99 <= 50 ms at >= 1,000 requests/s for every page, SQLite). Prints one
JSON object; ``--pages`` picks some of ``PAGES`` by name.

    python bench/site.py [--seconds 5] [--rate 1000] [--connections 50] [--workers 1] [--no-postgres]
                         [--pages board_html,queue_json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ENTRIES = 10_000
RUNS_PER_ENTRY = 10
TRACK = "gpt2-8xh100"
JOBS = 300
# name -> path; "{entry}" cycles over the ids of the best entries
PAGES = {
    "board_html": "/",
    "board_json": f"/api/tracks/{TRACK}/leaderboard",
    "entry_html": "/entries/{entry}",
    "entry_json": "/api/entries/{entry}",
    "queue_html": "/queue",
    "queue_json": "/api/queue",
    "progression_html": f"/progression?track={TRACK}",
    "progression_json": f"/api/tracks/{TRACK}/progression",
    "about_html": "/about",
    "tracks_json": "/api/tracks",
    # signed in (issue 20): a reader's session cookie on every request; /me is one person's page
    "board_html_signed_in": "/",
    "entry_html_signed_in": "/entries/{entry}",
    "me_html": "/me",
}
SIGNED_IN = frozenset({"board_html_signed_in", "entry_html_signed_in", "me_html"})
ENTRY_PAGES = 50
TARGET_RPS = 1000.0
TARGET_P99_MS = 50.0
POSTGRES_ADMIN_URL = os.environ.get("SPEEDRUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _say(msg: str) -> None:
    print(f"[site-bench] {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- data


def populate(database_url: str, home: Path) -> dict[str, Any]:
    """Migrate, seed, then add ENTRIES entries, ENTRIES * RUNS_PER_ENTRY runs and JOBS jobs; ranks
    recomputed. Returns the counts and the ids of the best entries (for the entry pages)."""
    from sqlalchemy import func, insert, select

    from leaderboard.app import open_database
    from leaderboard.db import session_scope
    from leaderboard.entries.models import Entry, EntryStatus, Run, RunKind, Verification
    from leaderboard.entries.standing import recompute_ranks
    from leaderboard.jobs.models import Job, JobStatus
    from leaderboard.revision import bump_revision
    from leaderboard.settings import Settings
    from leaderboard.tracks.models import Track

    rng = random.Random(0)
    db = open_database(Settings(home=home, database_url=database_url, secret_key="bench"))
    from contract.core_v1 import CORE_V1_LABELS

    tasks = list(CORE_V1_LABELS)  # the protocol's names: the entry page lists only those
    with session_scope(db.sessionmaker) as session:
        track_id = session.scalar(select(Track.id).where(Track.slug == TRACK))
        statuses = [EntryStatus.verified] * 7 + [EntryStatus.pending, EntryStatus.failed, EntryStatus.inconclusive]
        now = datetime.now(UTC)
        rows = []
        for i in range(ENTRIES):
            hours = rng.uniform(1.2, 4.0)
            core = rng.uniform(0.257, 0.275)
            rows.append(
                {
                    "track_id": track_id,
                    "status": rng.choice(statuses),
                    "title": f"bench entry {i}: d{rng.choice([20, 22, 24, 26])} <variant {i % 97}>",
                    "description": "synthetic entry for bench/site.py",
                    "contributors": [f"@user{rng.randrange(500)}"],
                    "run_config": {"recipe": "gpt2_speedrun", "hardware_class": "h100-sxm", "gpus_per_node": 8},
                    "trainer": "reference@0.1.0",
                    "recipe": "gpt2_speedrun",
                    "hardware_class": "h100-sxm",
                    "gpus_per_node": 8,
                    "nodes": 1,
                    "rules_version": "speedrun-v1",
                    "record_date": date(2026, 4, 1) + timedelta(days=i % 200),
                    "claimed_hours": hours * 0.98,
                    "claimed_core": core,
                    "claimed_runs": 3,
                    "hours": hours,
                    "hours_std": 0.01,
                    "core_mean": core,
                    "core_std": 0.004,
                    "core_n": 3,
                    "p_value": 0.01,
                    "val_bpb": 0.72,
                    "flops": 3e19,
                    "cost_usd": hours * 8 * 3.0,
                    "price_usd_per_gpu_hour": 3.0,
                    "price_sku": "h100-sxm",
                    "verified_at": now,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        session.execute(insert(Entry), rows)
        ids = list(
            session.scalars(select(Entry.id).where(Entry.track_id == track_id, Entry.rules_version == "speedrun-v1"))
        )
        runs = []
        for entry_id in ids:
            for k in range(RUNS_PER_ENTRY):
                runs.append(
                    {
                        "entry_id": entry_id,
                        "kind": RunKind.claimed if k < 3 else RunKind.verified,
                        "run_id": f"r{entry_id}-{k}",
                        "seed": k,
                        "training_seconds": rng.uniform(4000, 14000),
                        "core": rng.uniform(0.25, 0.28),
                        "core_tasks": {t: rng.random() for t in tasks},
                        "val_bpb": 0.72,
                        "created_at": now,
                    }
                )
        for start in range(0, len(runs), 20_000):
            session.execute(insert(Run), runs[start : start + 20_000])
        recompute_ranks(session, track_id)
        _add_jobs(session, rng, track_id, ids[:JOBS], now, Job, JobStatus, Verification)
        bump_revision(session)
        best = list(
            session.scalars(
                select(Entry.id)
                .where(Entry.track_id == track_id, Entry.rank_time.is_not(None))
                .order_by(Entry.rank_time)
                .limit(ENTRY_PAGES)
            )
        )
        counts: dict[str, Any] = {
            "cookie": _reader_cookie(session, ids[:5]),
            "entries": int(session.scalar(select(func.count(Entry.id))) or 0),
            "runs": int(session.scalar(select(func.count(Run.id))) or 0),
            "jobs": int(session.scalar(select(func.count(Job.id))) or 0),
            "entry_ids": best,
        }
    db.engine.dispose()
    return counts


def lookup_costs(database_url: str, home: Path, cookie: str, repeats: int = 3000) -> dict[str, Any]:
    """What the signed-in fast path reads per request, each timed alone on its dedicated connection
    (median and p99 of ``repeats`` reads, microseconds): the board revision (every cached page
    reads it) and the session (issue 20: ``SessionReader``, one indexed read of a session joined
    with its token and user). A per-process cache of sessions keyed on a "sessions revision" would
    save the difference and no more: it too reads one row per request."""
    from leaderboard.app import open_database
    from leaderboard.revision import RevisionReader
    from leaderboard.settings import Settings
    from web import security

    try:
        from leaderboard.users.sessions import SessionReader
    except ImportError:  # a commit before issue 20's fast path
        return {"skipped": "no SessionReader in this commit"}
    db = open_database(Settings(home=home, database_url=database_url, secret_key="bench"))
    signed = cookie.split(";")[0].split("=", 1)[1]
    sid = security.unsign(signed, secret="bench", purpose="session", max_age_s=86_400)
    revision, sessions = RevisionReader(db.engine), SessionReader(db.engine)
    out: dict[str, Any] = {"repeats": repeats}
    try:
        assert sessions.read(sid) is not None
        for name, read in (("revision", revision.read), ("session", lambda: sessions.read(sid))):
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                read()
                times.append(time.perf_counter() - t0)
            times.sort()
            out[f"{name}_read_us"] = {
                "p50": round(1e6 * times[len(times) // 2], 1),
                "p99": round(1e6 * times[int(0.99 * len(times))], 1),
            }
    finally:
        revision.close()
        sessions.close()
        db.engine.dispose()
    return out


def _reader_cookie(session: Any, own: list[int]) -> str:
    """A signed-in reader who owns a few entries: the ``Cookie`` header of their web session."""
    from sqlalchemy import update

    from leaderboard.entries.models import Entry
    from leaderboard.users.models import Role
    from leaderboard.users.repository import user_by_name
    from leaderboard.users.schemas import UserCreate
    from leaderboard.users.service import Principal, create_user
    from leaderboard.users.sessions import start_session
    from web import security

    issued = create_user(session, UserCreate(name="bench-reader", role=Role.submitter))
    user = user_by_name(session, "bench-reader")
    assert user is not None
    session.execute(update(Entry).where(Entry.id.in_(own)).values(owner_id=user.id))
    sid = start_session(session, Principal(user=user, token_id=issued.token_id), ttl_seconds=86_400)
    # and the CSRF nonce cookie a browser holds from the page it lands on after signing in
    # (``/submit``): the forms' tokens on its pages are made from it
    signed = security.sign(sid, secret="bench", purpose="session")
    return f"{security.SESSION_COOKIE}={signed}; {security.CSRF_COOKIE}={security.new_csrf_nonce()}"


def _add_jobs(
    session: Any, rng: random.Random, track_id: int, entry_ids: list[int], now: datetime, *models: Any
) -> None:
    """JOBS jobs: most finished (each with its verification's verdict), some queued, a few running."""
    from sqlalchemy import insert

    job_model, job_status, verification_model = models
    jobs = []
    for i, entry_id in enumerate(entry_ids):
        status = job_status.running if i < 5 else job_status.queued if i < 40 else job_status.succeeded
        started = now - timedelta(hours=2) if status != job_status.queued else None
        jobs.append(
            {
                "entry_id": entry_id,
                "track_id": track_id,
                "status": status,
                "reason": "submission",
                "runs": 3,
                "attempts": 0 if status == job_status.queued else 1,
                "max_attempts": 3,
                "progress": {
                    "run_index": 1,
                    "runs": 3,
                    "step": 2000,
                    "steps": 5000,
                    "eta_seconds": 3000.0,
                    "message": "",
                }
                if status == job_status.running
                else None,
                "lease_owner": "gpu-box-1" if status == job_status.running else None,
                "created_at": now - timedelta(hours=3),
                "started_at": started,
                "finished_at": now - timedelta(minutes=5) if status == job_status.succeeded else None,
            }
        )
    session.execute(insert(job_model), jobs)
    finished = session.execute(select_jobs(job_model).where(job_model.status == job_status.succeeded)).all()
    session.execute(
        insert(verification_model),
        [
            {
                "entry_id": entry_id,
                "job_id": job_id,
                "verifier_id": "gpu-box-1",
                "reported_verdict": verdict,
                "verdict": verdict,
                "reasons": ["synthetic"],
                "p_value": rng.uniform(0.001, 0.9),
                "report": {},
                "created_at": now,
            }
            for job_id, entry_id in finished
            for verdict in [rng.choice(["verified", "failed", "inconclusive"])]
        ],
    )


def select_jobs(job_model: Any) -> Any:
    from sqlalchemy import select

    return select(job_model.id, job_model.entry_id)


# ----------------------------------------------------------------------------- load


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off the connection; its status. Kept cheap: the client shares the 2 cores."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 17)
        await reader.readexactly(int(head[at + 17 : end]))
    elif b"\r\ntransfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


def _cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of process ``pid`` (from /proc)."""
    if pid is None:
        return time.process_time()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run_phase(
    port: int, path: str | list[str], args: argparse.Namespace, rate: float | None, server_pid: int, cookie: str = ""
) -> dict[str, Any]:
    """One load phase, with the CPU the client (this process) and the server used during it."""
    client0, server0, wall0 = _cpu_seconds(), _cpu_seconds(server_pid), time.monotonic()
    result = _run_loop(_drive(port, path, args.seconds, args.connections, rate, cookie))
    wall = time.monotonic() - wall0
    client, server = _cpu_seconds() - client0, _cpu_seconds(server_pid) - server0
    cores = os.cpu_count() or 1
    result["client_cpu_s"] = round(client, 2)
    result["server_cpu_s"] = round(server, 2)
    result["client_share_of_cores"] = round(client / (wall * cores), 3)
    result["server_share_of_cores"] = round(server / (wall * cores), 3)
    return result


def _run_loop(coro: Any) -> Any:
    """``asyncio.run`` on uvloop when it is installed (a cheaper client), else the default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


async def _drive(
    port: int, path: str | list[str], seconds: float, connections: int, rate: float | None, cookie: str = ""
) -> dict[str, Any]:
    """``connections`` keep-alive connections for ``seconds``; open loop at ``rate`` req/s, else closed.
    ``path``: one path, or several that each connection cycles through."""
    clock = time.perf_counter  # not loop.time(): uvloop's clock ticks in whole milliseconds
    latencies: list[float] = []
    errors = 0
    last_done = 0.0
    paths = [path] if isinstance(path, str) else path
    extra = f"Cookie: {cookie}\r\n" if cookie else ""
    requests = [
        f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Connection: keep-alive\r\n\r\n".encode() for p in paths
    ]
    start = clock() + 0.2
    stop = start + seconds

    async def one(i: int) -> None:
        nonlocal errors, last_done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        interval = connections / rate if rate else 0.0
        scheduled = start + (interval * i / connections if rate else 0.0)
        sent = i
        try:
            while True:
                now = clock()
                if rate:
                    if scheduled > now:
                        await asyncio.sleep(scheduled - now)
                    t0 = scheduled  # latency counts from the scheduled start (no coordinated omission)
                    scheduled += interval
                else:
                    t0 = max(now, start)
                    if now < start:
                        await asyncio.sleep(start - now)
                if t0 >= stop:
                    return
                writer.write(requests[sent % len(requests)])
                sent += 1
                status = await _read_response(reader)
                if status != 200:
                    errors += 1
                done = clock()
                latencies.append(done - t0)
                last_done = max(last_done, done)
        finally:
            writer.close()

    await asyncio.gather(*(one(i) for i in range(connections)))
    latencies.sort()
    n = len(latencies)

    def pct(q: float) -> float:
        return round(1000 * latencies[min(n - 1, int(q * n))], 2) if n else float("nan")

    return {
        "requests": n,
        "errors": errors,
        "requests_per_s": round(n / max(seconds, last_done - start), 1),  # achieved: until the last answer
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(1000 * latencies[-1], 2) if n else None,
    }


def _serve(
    database_url: str, home: Path, port: int, workers: int, cache_ttl: float | None, warm: list[str]
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPEEDRUN_SECRET_KEY": "bench"}
    if cache_ttl is not None:
        env["SPEEDRUN_CACHE_TTL_SECONDS"] = str(cache_ttl)
    cmd = [sys.executable, "-m", "speedrun", "serve", "--port", str(port), "--home", str(home)]
    cmd += ["--database-url", database_url, "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("speedrun serve exited")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    else:
        raise RuntimeError("speedrun serve did not start")
    for path in warm:  # warm the caches and the connection pool
        for _ in range(3):
            httpx.get(f"http://127.0.0.1:{port}{path}", timeout=30)
    return proc


def _warm_signed_in(port: int, pages: dict[str, str | list[str]], cookie: str) -> None:
    """The signed-in pages once each with the reader's cookies, as ``_serve`` warms the others."""
    import httpx

    for path in pages.values():
        for p in [path] if isinstance(path, str) else path:
            httpx.get(f"http://127.0.0.1:{port}{p}", headers={"Cookie": cookie}, timeout=30)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _paths(template: str, entry_ids: list[int]) -> str | list[str]:
    return [template.format(entry=i) for i in entry_ids] if "{entry}" in template else template


def bench_backend(name: str, database_url: str, home: Path, args: argparse.Namespace) -> dict[str, Any]:
    _say(f"{name}: filling {ENTRIES} entries / {ENTRIES * RUNS_PER_ENTRY} runs / {JOBS} jobs")
    t0 = time.perf_counter()
    counts = populate(database_url, home)
    entry_ids = counts.pop("entry_ids")
    cookie = counts.pop("cookie")
    result: dict[str, Any] = {**counts, "fill_seconds": round(time.perf_counter() - t0, 1), "pages": {}}
    result["fast_path_reads"] = lookup_costs(database_url, home, cookie)
    pages = {k: _paths(v, entry_ids) for k, v in PAGES.items() if not args.pages or k in args.pages}
    warm = [p for v in pages.values() for p in ([v] if isinstance(v, str) else v)]
    port = _free_port()
    proc = _serve(database_url, home, port, args.workers, None, warm)
    try:
        _warm_signed_in(port, {k: v for k, v in pages.items() if k in SIGNED_IN}, cookie)
        for label, path in pages.items():
            _say(f"{name} {label}: open loop at {args.rate:.0f} req/s, then closed loop, {args.seconds:.0f} s each")
            jar = cookie if label in SIGNED_IN else ""
            opened = _run_phase(port, path, args, args.rate, proc.pid, jar)
            result["pages"][label] = {
                "path": path if isinstance(path, str) else f"{PAGES[label]} over {len(path)} entries",
                "signed_in": bool(jar),
                "open": opened,
                "closed": _run_phase(port, path, args, None, proc.pid, jar),
                "meets_target": bool(
                    opened["requests_per_s"] >= 0.97 * args.rate
                    and opened["p99_ms"] <= TARGET_P99_MS
                    and not opened["errors"]
                ),
            }
    finally:
        _stop(proc)
    if args.reference:
        json_path = PAGES["board_json"]
        port = _free_port()
        proc = _serve(database_url, home, port, args.workers, 0.0, [json_path])
        try:
            _say(f"{name}: reference, the board's JSON twin with the read cache off (closed loop)")
            result["board_json_uncached_reference"] = {
                "path": json_path,
                "closed": _run_phase(port, json_path, args, None, proc.pid),
            }
        finally:
            _stop(proc)
    result["all_pages_meet_target"] = all(p["meets_target"] for p in result["pages"].values())
    return result


def _postgres_db() -> tuple[str, str] | None:
    try:
        import psycopg

        name = f"speedrun_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # no server: the PostgreSQL half is reported as skipped
        _say(f"PostgreSQL unavailable: {exc}")
        return None
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}", name


def _drop_postgres(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="duration of each load phase")
    p.add_argument("--rate", type=float, default=TARGET_RPS, help="open-loop target, requests/s")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--no-postgres", action="store_true")
    p.add_argument("--pages", type=lambda v: v.split(","), default=None, help=f"some of: {', '.join(PAGES)}")
    p.add_argument("--reference", action="store_true", help="also the board JSON with the read cache off")
    args = p.parse_args()
    out: dict[str, Any] = {
        "bench": "site",
        "entries": ENTRIES,
        "runs": ENTRIES * RUNS_PER_ENTRY,
        "connections": args.connections,
        "seconds_per_phase": args.seconds,
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "target": {"requests_per_s": TARGET_RPS, "p99_ms": TARGET_P99_MS, "page": "every page, SQLite"},
    }
    with tempfile.TemporaryDirectory(prefix="speedrun-bench-") as tmp:
        home = Path(tmp) / "sqlite"
        out["sqlite"] = bench_backend("sqlite", f"sqlite:///{home / 'bench.db'}", home, args)
        if not args.no_postgres:
            pg = _postgres_db()
            if pg is None:
                out["postgresql"] = {"skipped": "server unreachable"}
            else:
                try:
                    out["postgresql"] = bench_backend("postgresql", pg[0], Path(tmp) / "pg", args)
                finally:
                    _drop_postgres(pg[1])
    out["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
