"""The artifact store: files named by their SHA-256 under ``artifacts_dir/ab/cd/<digest>``.

Writes go to a temporary file in the same directory and are renamed into place, so a reader
never sees half a file and a crash leaves no partial artifact under its digest. The app's one
store is ``app.state.store``; a route declares it as ``StoreDep``.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from leaderboard.errors import InsufficientStorage, storage_full

_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.full: str | None = None  # why the last write failed for lack of space; None once one succeeds

    def path(self, sha256: str) -> Path:
        if not _DIGEST.match(sha256):
            raise ValueError("sha256: expected 64 lowercase hex characters")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its SHA-256 hex digest."""
        digest = hashlib.sha256(data).hexdigest()
        target = self.path(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        except OSError as exc:
            self._raise_if_full(exc)
            raise
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            self._raise_if_full(exc)
            raise
        self.full = None
        return digest

    def _raise_if_full(self, exc: BaseException) -> None:
        """A write that failed for lack of space (disk full, quota, file size limit) is a 507."""
        if storage_full(exc):
            self.full = f"{type(exc).__name__}: {exc.strerror if isinstance(exc, OSError) else exc}"
            raise InsufficientStorage("the artifact store is full; nothing was stored, try again later") from exc

    def read(self, sha256: str) -> bytes | None:
        path = self.path(sha256)
        return path.read_bytes() if path.exists() else None

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()


def artifact_store(request: Request) -> ArtifactStore:
    store: ArtifactStore = request.app.state.store
    return store


StoreDep = Annotated[ArtifactStore, Depends(artifact_store)]
