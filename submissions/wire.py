"""The pipe protocol between the verifier's scorer and a sandboxed model process.

A message is a JSON header and the raw bytes of its arrays: 4 bytes (big-endian) of header
length, the header (``{"op": ..., "arrays": [{"dtype": "int32", "shape": [..]}, ...], ...}``),
then each array's bytes in order. Only the dtypes in ``DTYPES`` are accepted and every size is
bounded before anything is allocated, so a garbage or hostile peer costs a bounded amount of
memory and time: ``read_message`` takes a deadline and raises ``WireError`` naming what was wrong
(a closed pipe, a timeout, a malformed header, an array larger than the cap).

Requests (scorer -> model process), each answered by one reply:

- ``hello``: ``{"max_positions": int | null, "vocab_size": int | null}``;
- ``losses``: token rows (``tokens`` concatenated, ``lengths``, ``starts``, ``ends``, ``groups``:
  the rows of one example share a group) -> the mean loss of each row's span ``[start, end)``;
- ``continue``: contexts (``tokens`` concatenated, ``lengths``) and how many tokens to add to
  each (``counts``) -> one round of greedy decoding: the tokens it decided after each context
  (concatenated) and how many (``1 <= n <= counts[i]``); the scorer sends the next round;
- ``token_losses``: ``inputs`` and ``targets`` ``[B, T]`` -> the per-token loss ``[B, T]``;
- ``bye``: the process exits.

A reply is ``{"ok": true, ...}`` with its arrays, or ``{"ok": false, "error": "..."}``.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any

import numpy as np

DTYPES = {"int32": np.int32, "int64": np.int64, "float32": np.float32, "float64": np.float64}
MAX_HEADER_BYTES = 64 * 1024
MAX_ARRAY_BYTES = 2 * 1024**3
MAX_ARRAYS = 8


class WireError(Exception):
    """The peer closed the pipe, timed out or sent something that is not a valid message."""


def write_message(fd: int, header: dict[str, Any], arrays: list[np.ndarray] | None = None) -> None:
    arrays = [np.ascontiguousarray(a) for a in (arrays or [])]
    specs = [{"dtype": str(a.dtype), "shape": list(a.shape)} for a in arrays]
    head = json.dumps({**header, "arrays": specs}, separators=(",", ":")).encode()
    _write_all(fd, len(head).to_bytes(4, "big") + head)
    for a in arrays:
        _write_all(fd, a.tobytes())


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BrokenPipeError as exc:
            raise WireError("the peer closed the pipe") from exc
        view = view[n:]


def _read_exact(fd: int, n: int, deadline: float | None, what: str) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WireError(f"no complete {what} within the time allowed")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
        chunk = os.readv(fd, [view[got : min(n, got + (1 << 20))]])
        if chunk == 0:
            raise WireError(f"the pipe closed after {got} of {n} bytes of a {what}")
        got += chunk
    return buf


def read_message(fd: int, *, deadline: float | None = None) -> tuple[dict[str, Any], list[np.ndarray]]:
    """One message from ``fd``; ``deadline`` is a ``time.monotonic()`` value (None: wait forever)."""
    size = int.from_bytes(_read_exact(fd, 4, deadline, "message"), "big")
    if not 0 < size <= MAX_HEADER_BYTES:
        raise WireError(f"a header of {size} bytes (at most {MAX_HEADER_BYTES})")
    try:
        header = json.loads(bytes(_read_exact(fd, size, deadline, "header")))
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireError(f"a header that is not JSON ({exc})") from exc
    if not isinstance(header, dict):
        raise WireError("a header that is not a JSON object")
    specs = header.pop("arrays", [])
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise WireError("a header with a bad array list")
    arrays = []
    for spec in specs:
        try:
            dtype = np.dtype(DTYPES[spec["dtype"]])
            shape = tuple(int(d) for d in spec["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise WireError(f"a bad array spec {spec!r}") from exc
        if any(d < 0 for d in shape) or len(shape) > 4:
            raise WireError(f"a bad array shape {shape}")
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if nbytes > MAX_ARRAY_BYTES:
            raise WireError(f"an array of {nbytes} bytes (at most {MAX_ARRAY_BYTES})")
        raw = _read_exact(fd, nbytes, deadline, "array")
        arrays.append(np.frombuffer(raw, dtype=dtype).reshape(shape))
    return header, arrays
