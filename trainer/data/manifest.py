"""The data manifest: which shards a data directory holds, their sha256, and which one is validation.

``manifest.json`` in the data directory is what a run result records (``Digests.shards`` and
``Digests.data_manifest_sha256``), so a reproduction can prove it trained on the same bytes.
Its own digest is the sha256 of its canonical JSON serialization.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "speedrun-data-manifest-v1"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(ValueError):
    """A manifest is missing, corrupt, or does not match the files next to it."""


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in chunks (shards, checkpoints and logs can be large)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name in (".", "..") or name == MANIFEST_NAME:
        raise ManifestError(f"invalid shard name {name!r} in manifest")


@dataclass(frozen=True)
class Manifest:
    shards: dict[str, str]  # shard file name -> sha256 of its bytes
    val_shard: str
    sizes_bytes: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.shards:
            raise ManifestError("manifest lists no shards")
        for name, digest in self.shards.items():
            _check_name(name)
            if not _SHA256_RE.match(digest):
                raise ManifestError(f"shard {name}: sha256 {digest!r} is not 64 lowercase hex digits")
        if self.val_shard not in self.shards:
            raise ManifestError(f"validation shard {self.val_shard!r} is not among the manifest's shards")
        if set(self.sizes_bytes) - set(self.shards):
            raise ManifestError("sizes_bytes names shards that the manifest does not list")

    @property
    def train_shards(self) -> list[str]:
        """The training shards in name order (every shard but the validation one)."""
        return sorted(name for name in self.shards if name != self.val_shard)

    def to_json(self) -> str:
        body = {
            "format": MANIFEST_FORMAT,
            "val_shard": self.val_shard,
            "shards": {
                name: {"sha256": self.shards[name], "size_bytes": self.sizes_bytes.get(name)}
                for name in sorted(self.shards)
            },
        }
        return json.dumps(body, sort_keys=True, indent=2) + "\n"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            body = json.loads(text)
        except json.JSONDecodeError as e:
            raise ManifestError(f"manifest is not valid JSON: {e}") from None
        if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"manifest format is not {MANIFEST_FORMAT!r}")
        entries = body.get("shards")
        val_shard = body.get("val_shard")
        if not isinstance(entries, dict) or not isinstance(val_shard, str):
            raise ManifestError("manifest needs a 'shards' object and a 'val_shard' string")
        shards: dict[str, str] = {}
        sizes: dict[str, int] = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
                raise ManifestError(f"manifest entry for {name!r} has no sha256")
            shards[name] = entry["sha256"]
            size = entry.get("size_bytes")
            if size is not None:
                if not isinstance(size, int) or size < 0:
                    raise ManifestError(f"manifest entry for {name!r} has an invalid size_bytes")
                sizes[name] = size
        return cls(shards=shards, val_shard=val_shard, sizes_bytes=sizes)

    def save(self, data_dir: Path | str) -> Path:
        """Write ``manifest.json`` atomically."""
        path = Path(data_dir) / MANIFEST_NAME
        tmp = path.with_name(f".{MANIFEST_NAME}.tmp-{os.getpid()}")
        tmp.write_text(self.to_json())
        os.replace(tmp, path)
        return path

    def check_files(
        self, data_dir: Path | str, *, hash_files: bool = False, names: Iterable[str] | None = None
    ) -> None:
        """Raise ManifestError naming the first shard that is missing, has the wrong size or (with
        ``hash_files``) the wrong sha256; ``names``: only these shards (None: every shard)."""
        root = Path(data_dir)
        for name in sorted(self.shards if names is None else names):
            path = root / name
            if not path.is_file():
                raise ManifestError(f"shard {name} listed in the manifest is missing from {root}")
            expected_size = self.sizes_bytes.get(name)
            if expected_size is not None and path.stat().st_size != expected_size:
                raise ManifestError(
                    f"shard {name} has {path.stat().st_size} bytes, the manifest says {expected_size}: "
                    "truncated or replaced; re-download it"
                )
            if hash_files and file_sha256(path) != self.shards[name]:
                raise ManifestError(f"shard {name} does not match its sha256 in the manifest; re-download it")


def build_manifest(data_dir: Path | str, names: Iterable[str], *, val_shard: str) -> Manifest:
    """Hash the named files of ``data_dir`` into a Manifest (not saved)."""
    root = Path(data_dir)
    shards: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for name in names:
        _check_name(name)
        path = root / name
        if not path.is_file():
            raise ManifestError(f"shard {name} is missing from {root}")
        shards[name] = file_sha256(path)
        sizes[name] = path.stat().st_size
    return Manifest(shards=shards, val_shard=val_shard, sizes_bytes=sizes)


def write_manifest(data_dir: Path | str, names: Iterable[str], *, val_shard: str) -> Manifest:
    manifest = build_manifest(data_dir, names, val_shard=val_shard)
    manifest.save(data_dir)
    return manifest


def read_manifest(data_dir: Path | str) -> Manifest:
    """Read ``data_dir/manifest.json``; a clear ManifestError if it is missing or corrupt."""
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST_NAME} in {data_dir}: run `speedrun data download` or `speedrun data synth` first"
        )
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"cannot read {path}: {e}") from None
    try:
        return Manifest.from_json(text)
    except ManifestError as e:
        raise ManifestError(f"{path}: {e}") from None
