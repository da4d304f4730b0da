"""The load generator of bench/site.py: keep-alive connections on 127.0.0.1 driven by one asyncio
loop (uvloop when installed), open loop at a rate or closed loop, with the CPU the client and the
server used during each phase (``run_phase``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from typing import Any


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


def run_phase(
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
