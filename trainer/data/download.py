"""Verified downloads of ClimbMix-layout parquet shards.

Each shard streams into ``.<name>.part`` (resumed with an HTTP Range request after a dropped
connection), is checked (size, the server's sha256 ETag when it sends one, the parquet footer,
a readable string ``text`` column) and only then renamed into place. Connection errors, 5xx
answers and corrupt files are retried with exponential backoff; a 4xx is reported at once. A
shard already in the directory is re-checked, and re-fetched if it fails. The manifest written at
the end lists exactly the requested shards and the validation shard, with their sha256.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.data.manifest import Manifest, ManifestError, file_sha256, read_manifest
from trainer.data.paths import CLIMBMIX_BASE_URL, CLIMBMIX_VAL_SHARD_INDEX, default_cache_dir, shard_name

if TYPE_CHECKING:
    import httpx

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class DownloadError(RuntimeError):
    """A shard could not be fetched and verified."""


class ShardError(ValueError):
    """A shard file is truncated, corrupt or not in the ClimbMix layout."""


class _Retryable(Exception):
    pass


def default_data_dir() -> Path:
    return default_cache_dir() / "climbmix"


def verify_shard(path: Path) -> int:
    """Open a shard fully (footer, schema, every row group of ``text``); its row count, or ShardError naming it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, page_checksum_verification=True)
        schema = pf.schema_arrow
        if "text" not in schema.names:
            raise ShardError(f"shard {path.name} has no 'text' column (columns: {', '.join(schema.names)})")
        if not (pa.types.is_string(schema.field("text").type) or pa.types.is_large_string(schema.field("text").type)):
            raise ShardError(f"shard {path.name}: column 'text' is {schema.field('text').type}, not a string")
        rows = 0
        for g in range(pf.num_row_groups):
            rows += pf.read_row_group(g, columns=["text"]).num_rows
    except ShardError:
        raise
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ... for damaged files
        raise ShardError(f"shard {path.name} is truncated or corrupt: {e}") from e
    if rows != pf.metadata.num_rows:
        raise ShardError(f"shard {path.name}: read {rows} rows, the footer says {pf.metadata.num_rows}")
    return rows


def _expected_sha256(response: httpx.Response) -> str | None:
    """The sha256 a server states for the body, if it states one.

    Hugging Face answers ``resolve`` for an LFS file with a redirect whose ``X-Linked-Etag`` is the
    file's sha256; a plain ``ETag`` counts only when the origin served the file itself (a CDN's ETag
    after a redirect is its own hash, not necessarily a sha256 of the content).
    """
    candidates = [str(r.headers.get("x-linked-etag", "")) for r in [*response.history, response]]
    if not response.history:
        candidates.append(str(response.headers.get("etag", "")))
    for value in candidates:
        value = value.strip().removeprefix("W/").strip('"').lower()
        if _SHA256_RE.match(value):
            return value
    return None


class _Progress:
    """One byte-counting bar shared by the workers (total grows as responses announce their size)."""

    def __init__(self, enabled: bool) -> None:
        from tqdm import tqdm

        self._lock = threading.Lock()
        self._bar = tqdm(total=0, unit="B", unit_scale=True, unit_divisor=1024, desc="shards", disable=not enabled,
                         file=sys.stderr)  # fmt: skip

    def add_total(self, n: int) -> None:
        with self._lock:
            self._bar.total = (self._bar.total or 0) + n
            self._bar.refresh()

    def update(self, n: int) -> None:
        with self._lock:
            self._bar.update(n)

    def log(self, message: str) -> None:
        with self._lock:
            self._bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self._bar.close()


def _fetch_once(client: httpx.Client, url: str, part: Path, progress: _Progress) -> str | None:
    """One attempt: stream ``url`` into ``part`` (resuming it), returning the server-stated sha256 if any."""
    import httpx

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and have:  # the part file is already complete
                return None
            if response.status_code >= 500 or response.status_code == 429:
                raise _Retryable(f"HTTP {response.status_code}")
            if response.status_code not in (200, 206):
                raise DownloadError(f"{url}: HTTP {response.status_code}")
            expected = _expected_sha256(response)
            mode = "ab" if response.status_code == 206 else "wb"
            if mode == "wb":
                have = 0
            length = response.headers.get("content-length")
            if length is not None:
                progress.add_total(int(length))
            with open(part, mode) as f:
                for chunk in response.iter_bytes():  # as received, so a drop keeps what arrived
                    f.write(chunk)
                    progress.update(len(chunk))
            return expected
    except httpx.TransportError as e:  # refused, reset, dropped mid-body (incomplete read), timeout
        raise _Retryable(f"{type(e).__name__}: {e}") from e


def _download_one(
    client: httpx.Client,
    base_url: str,
    out_dir: Path,
    name: str,
    known_sha256: str | None,
    *,
    max_attempts: int,
    backoff_s: float,
    progress: _Progress,
) -> tuple[str, int]:
    """Make ``out_dir/name`` a verified shard; returns (sha256, size)."""
    path = out_dir / name
    if path.exists():
        try:
            verify_shard(path)
            digest = file_sha256(path)
            if known_sha256 is not None and digest != known_sha256:
                raise ShardError(f"shard {name} does not match its sha256 in the manifest")
            return digest, path.stat().st_size
        except ShardError as e:
            progress.log(f"{e}; re-fetching")
            path.unlink()
    part = out_dir / f".{name}.part"
    url = f"{base_url.rstrip('/')}/{name}"
    last_error = ""
    for attempt in range(1, max_attempts + 1):
        try:
            expected = _fetch_once(client, url, part, progress)
            try:
                if expected is not None and file_sha256(part) != expected:
                    raise ShardError(f"shard {name} does not match the sha256 the server states ({expected[:12]}...)")
                verify_shard(part)
            except ShardError as e:
                part.unlink(missing_ok=True)  # never resume from a corrupt file
                raise _Retryable(str(e)) from e
            digest, size = file_sha256(part), part.stat().st_size
            os.replace(part, path)
            return digest, size
        except _Retryable as e:
            last_error = str(e)
            if attempt < max_attempts:
                delay = min(backoff_s * 2 ** (attempt - 1), 60.0)
                progress.log(f"shard {name}: attempt {attempt} failed ({last_error}); retrying in {delay:.2g}s")
                time.sleep(delay)
    raise DownloadError(f"shard {name}: failed after {max_attempts} attempts; last error: {last_error}")


def download_shards(
    num_shards: int,
    *,
    out_dir: Path | str | None = None,
    base_url: str = CLIMBMIX_BASE_URL,
    workers: int = 8,
    val_shard_index: int = CLIMBMIX_VAL_SHARD_INDEX,
    max_attempts: int = 6,
    backoff_s: float = 1.0,
    timeout_s: float = 60.0,
    progress: bool = True,
    on_shard: Callable[[str], None] | None = None,
) -> Manifest:
    """Fetch training shards ``0..num_shards-1`` and the validation shard into ``out_dir``; write and return the manifest."""
    import httpx

    if num_shards < 0:
        raise ValueError(f"num_shards must be >= 0, got {num_shards}")
    if num_shards > val_shard_index:
        raise ValueError(f"num_shards must be <= {val_shard_index} (shard {val_shard_index} is validation)")
    for field, value in (("workers", workers), ("max_attempts", max_attempts)):
        if value < 1:
            raise ValueError(f"{field} must be >= 1, got {value}")
    if backoff_s < 0 or timeout_s <= 0:
        raise ValueError("backoff_s must be >= 0 and timeout_s > 0")
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must be an http(s) URL, got {base_url!r}")
    out = Path(out_dir) if out_dir is not None else default_data_dir()
    out.mkdir(parents=True, exist_ok=True)
    try:
        known = read_manifest(out).shards
    except ManifestError:
        known = {}
    val_name = shard_name(val_shard_index)
    names = [shard_name(i) for i in range(num_shards)] + [val_name]
    bar = _Progress(progress)
    digests: dict[str, str] = {}
    sizes: dict[str, int] = {}
    errors: list[str] = []
    try:
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=True) as client,
            ThreadPoolExecutor(max_workers=workers) as pool,
        ):
            futures = {
                name: pool.submit(
                    _download_one,
                    client,
                    base_url,
                    out,
                    name,
                    known.get(name),
                    max_attempts=max_attempts,
                    backoff_s=backoff_s,
                    progress=bar,
                )
                for name in names
            }
            for name, future in futures.items():
                try:
                    digests[name], sizes[name] = future.result()
                    if on_shard is not None:
                        on_shard(name)
                except (DownloadError, ShardError, OSError) as e:
                    errors.append(str(e))
    finally:
        bar.close()
    if errors:
        raise DownloadError("; ".join(errors))
    manifest = Manifest(shards=digests, val_shard=val_name, sizes_bytes=sizes)
    manifest.save(out)
    return manifest
