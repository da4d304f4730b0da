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

Here: the pages, starting and stopping the server, each backend's run and the report; the
database in ``site_data.py``, the load generator in ``site_load.py`` (beside this file).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from site_data import ENTRIES, JOBS, RUNS_PER_ENTRY, TRACK, lookup_costs, populate
from site_load import run_phase

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
TARGET_RPS = 1000.0
TARGET_P99_MS = 50.0
POSTGRES_ADMIN_URL = os.environ.get("SPEEDRUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _say(msg: str) -> None:
    print(f"[site-bench] {msg}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
            opened = run_phase(port, path, args, args.rate, proc.pid, jar)
            result["pages"][label] = {
                "path": path if isinstance(path, str) else f"{PAGES[label]} over {len(path)} entries",
                "signed_in": bool(jar),
                "open": opened,
                "closed": run_phase(port, path, args, None, proc.pid, jar),
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
                "closed": run_phase(port, json_path, args, None, proc.pid),
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
