"""Fetching the public CORE eval bundle: download once (with progress), check the zip's sha256, unpack atomically.

The download goes to ``<cache>/eval_bundle.zip`` under a file lock; the zip's members are checked
(no absolute or ``..`` paths) and the unpacked bundle is parsed (`trainer.evaluation.bundle.load_bundle`)
before it is moved into place with a completion marker, so a cache holds a whole valid bundle or none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from trainer.evaluation.bundle import COMPLETE_MARKER, CORE_YAML, BundleError, load_bundle

DEFAULT_URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip"
# sha256 of eval_bundle.zip at DEFAULT_URL as recorded by a public download manifest (2026-06-12);
# not re-derived from this network-less build machine. A mismatch stops the fetch with both digests.
DEFAULT_ZIP_SHA256: str | None = "90a7c19e28ee7a52b4f6e1f87658deb9fde7f63deba2379045bdb1fe9ea5d200"


def _safe_members(zf: zipfile.ZipFile, where: str) -> Iterator[zipfile.ZipInfo]:
    for info in zf.infolist():
        p = PurePosixPath(info.filename)
        if p.is_absolute() or ".." in p.parts or info.filename.startswith("\\"):
            raise BundleError(f"{where}: unsafe member path {info.filename!r}")
        yield info


def unpack_bundle_zip(zip_path: Path, dest: Path) -> Path:
    """Unpack a bundle zip atomically into ``dest`` (the directory that holds ``core.yaml``)."""
    if dest.exists():
        raise BundleError(f"{dest}: already exists; refusing to overwrite")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(tmp, members=list(_safe_members(zf, str(zip_path))))
        candidates = sorted(tmp.rglob(CORE_YAML), key=lambda p: len(p.parts))
        candidates = [c for c in candidates if "__MACOSX" not in c.parts]
        if not candidates:
            raise BundleError(f"{zip_path}: the zip holds no {CORE_YAML}")
        root = candidates[0].parent
        load_bundle(root)  # reject a malformed bundle before it lands in the cache
        (root / COMPLETE_MARKER).write_text("ok\n")
        os.replace(root, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def fetch_bundle(
    url: str = DEFAULT_URL,
    cache_dir: Path | str | None = None,
    *,
    sha256: str | None = DEFAULT_ZIP_SHA256,
    progress: bool = True,
    timeout_s: float = 60.0,
) -> Path:
    """Download the bundle zip (once), check its sha256, unpack atomically; return the bundle directory.

    The result lives at ``<cache_dir>/eval_bundle`` (``cache_dir`` defaults to the speedrun cache);
    an already complete copy is returned without network access. ``sha256=None`` skips the check
    (the digest is then only recorded in ``eval_bundle.zip.sha256``).
    """
    import filelock
    import httpx

    from trainer.data.paths import default_cache_dir

    if sha256 is not None and (len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256)):
        raise ValueError(f"sha256: expected 64 lowercase hex digits, got {sha256!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    dest = cache / "eval_bundle"
    if (dest / COMPLETE_MARKER).is_file():
        return dest
    with filelock.FileLock(str(cache / "eval_bundle.lock")):
        if (dest / COMPLETE_MARKER).is_file():
            return dest
        if dest.exists():  # an incomplete leftover from an older, non-atomic writer
            shutil.rmtree(dest)
        zip_path = cache / "eval_bundle.zip"
        part = cache / "eval_bundle.zip.part"
        h = hashlib.sha256()
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=timeout_s) as response:
                if response.status_code != 200:
                    raise BundleError(f"{url}: HTTP {response.status_code} while fetching the eval bundle")
                total = int(response.headers.get("content-length", 0)) or None
                from tqdm import tqdm

                with (
                    part.open("wb") as f,
                    tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        desc="eval bundle",
                        disable=not progress,
                        file=sys.stderr,
                    ) as bar,
                ):
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
        except httpx.HTTPError as exc:
            part.unlink(missing_ok=True)
            raise BundleError(f"{url}: download failed: {exc}") from None
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            part.unlink(missing_ok=True)
            raise BundleError(
                f"{url}: sha256 {digest} does not match the pinned {sha256} (if upstream changed the bundle on "
                "purpose, fetch it with `speedrun eval fetch --sha256 <new>` or `--no-verify` and pass --bundle DIR)"
            )
        os.replace(part, zip_path)
        (cache / "eval_bundle.zip.sha256").write_text(f"{digest}  eval_bundle.zip\n")
        return unpack_bundle_zip(zip_path, dest)
