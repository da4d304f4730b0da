"""Shard downloads against a real local HTTP server: resume, retries, corrupt files re-fetched, the manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from trainer.data.download import DownloadError, download_shards
from trainer.data.loader import DataLoader
from trainer.data.manifest import Manifest, read_manifest
from trainer.data.tokenizer import Tokenizer


class ShardServer:
    """A real HTTP server on 127.0.0.1 serving a directory of shards, with injectable faults.

    ``faults[name]`` is a list consumed one per request of that file: "500" (an error answer),
    "drop" (half the body, then the connection closes), "corrupt" (full length, bytes flipped),
    "truncate" (a complete answer of only the first half). Range requests (``bytes=N-``) are honored.
    """

    def __init__(self, root: Path) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.root = root
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.send_sha256 = False
        self.redirect = False  # like Hugging Face: 302 (with X-Linked-Etag) to a CDN path with its own ETag
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                import hashlib

                name = self.path.lstrip("/")
                if owner.redirect and not name.startswith("cdn/"):
                    owner.requests.append(("302:" + name, self.headers.get("Range")))
                    self.send_response(302)
                    self.send_header("Location", f"/cdn/{name}")
                    if owner.send_sha256 and (owner.root / name).is_file():
                        digest = hashlib.sha256((owner.root / name).read_bytes()).hexdigest()
                        self.send_header("X-Linked-Etag", f'"{digest}"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                name = name.removeprefix("cdn/")
                range_header = self.headers.get("Range")
                owner.requests.append((name, range_header))
                pending = owner.faults.get(name)
                fault = pending.pop(0) if pending else None
                path = owner.root / name
                if fault == "500" or not path.is_file():
                    self.send_response(500 if fault == "500" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = path.read_bytes()
                digest = hashlib.sha256(body).hexdigest()
                if fault == "corrupt":
                    flipped = bytearray(body)
                    for i in range(len(flipped) // 4, 3 * len(flipped) // 4, 101):
                        flipped[i] ^= 0xA5
                    body = bytes(flipped)
                elif fault == "truncate":
                    body = body[: len(body) // 2]
                start = int(range_header.removeprefix("bytes=").rstrip("-")) if range_header else 0
                if start >= len(body) and start > 0:
                    self.send_response(416)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = body[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(payload)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                if owner.redirect:  # a CDN's own 64-hex hash that is not the content's sha256
                    self.send_header("ETag", f'"{hashlib.sha256(b"cdn" + body).hexdigest()}"')
                elif owner.send_sha256:
                    self.send_header("ETag", f'"{digest}"')
                self.end_headers()
                if fault == "drop":
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests_for(self, name: str) -> list[str | None]:
        return [r for n, r in self.requests if n == name]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def shard_server(tiny_data: Path, tmp_path: Path) -> Iterator[ShardServer]:
    """Serves tiny synthetic shards in the ClimbMix naming: shard_00000, shard_00001 and shard_06542 (validation)."""
    import shutil

    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(tiny_data / "shard_00000.parquet", served / "shard_00000.parquet")
    shutil.copy(tiny_data / "shard_00001.parquet", served / "shard_00001.parquet")
    shutil.copy(tiny_data / "shard_00002.parquet", served / "shard_06542.parquet")
    server = ShardServer(served)
    yield server
    server.close()


NAMES = ["shard_00000.parquet", "shard_00001.parquet", "shard_06542.parquet"]


def _download(server: ShardServer, out: Path, **kw: object) -> Manifest:
    args: dict[str, object] = {"out_dir": out, "base_url": server.url, "workers": 2, "backoff_s": 0.001}
    args.update({"progress": False, **kw})
    return download_shards(2, **args)  # type: ignore[arg-type]


def _same_files(server: ShardServer, out: Path) -> bool:
    return all((server.root / n).read_bytes() == (out / n).read_bytes() for n in NAMES)


def test_downloads_train_and_validation_shards_with_their_digests(
    shard_server: ShardServer, tmp_path: Path, small_tokenizer: Tokenizer
) -> None:
    out = tmp_path / "data"
    manifest = _download(shard_server, out)
    assert _same_files(shard_server, out)
    assert read_manifest(out) == manifest
    assert manifest.val_shard == "shard_06542.parquet"
    for name in NAMES:
        assert manifest.shards[name] == hashlib.sha256((out / name).read_bytes()).hexdigest()
    assert not list(out.glob(".*.part"))
    with DataLoader(out, small_tokenizer, batch_size=2, seq_len=64) as loader:  # the real consumer reads them
        inputs, _ = next(loader)
    assert inputs.shape == (2, 64)


def test_what_is_already_there_is_not_fetched_again(shard_server: ShardServer, tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = _download(shard_server, out)
    shard_server.requests.clear()
    assert _download(shard_server, out) == first
    assert shard_server.requests == []


def test_resumes_a_partial_file_with_a_range_request(shard_server: ShardServer, tmp_path: Path) -> None:
    out = tmp_path / "data"
    out.mkdir()
    body = (shard_server.root / NAMES[0]).read_bytes()
    (out / f".{NAMES[0]}.part").write_bytes(body[:1000])
    _download(shard_server, out)
    assert shard_server.requests_for(NAMES[0]) == ["bytes=1000-"]
    assert _same_files(shard_server, out)


def test_retries_after_server_errors(shard_server: ShardServer, tmp_path: Path) -> None:
    shard_server.faults[NAMES[1]] = ["500", "500"]
    _download(shard_server, tmp_path / "data")
    assert len(shard_server.requests_for(NAMES[1])) == 3
    assert _same_files(shard_server, tmp_path / "data")


def test_a_dropped_connection_resumes_where_it_stopped(shard_server: ShardServer, tmp_path: Path) -> None:
    shard_server.faults[NAMES[0]] = ["drop"]
    _download(shard_server, tmp_path / "data")
    first, second = shard_server.requests_for(NAMES[0])
    assert first is None and second is not None and second.startswith("bytes=")
    assert _same_files(shard_server, tmp_path / "data")


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
def test_a_bad_file_is_reported_by_name_and_refetched(
    shard_server: ShardServer, tmp_path: Path, fault: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shard_server.faults[NAMES[1]] = [fault]
    _download(shard_server, tmp_path / "data")
    assert shard_server.requests_for(NAMES[1]) == [None, None]  # the bad file was discarded, not resumed
    assert _same_files(shard_server, tmp_path / "data")
    assert "shard_00001.parquet" in capsys.readouterr().err


def test_the_servers_sha256_is_checked(
    shard_server: ShardServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shard_server.send_sha256 = True
    shard_server.faults[NAMES[2]] = ["corrupt"]
    _download(shard_server, tmp_path / "data")
    assert len(shard_server.requests_for(NAMES[2])) == 2
    assert "sha256" in capsys.readouterr().err
    assert _same_files(shard_server, tmp_path / "data")


def test_the_linked_sha256_of_a_redirect_is_checked_and_a_cdn_etag_ignored(
    shard_server: ShardServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shard_server.redirect = shard_server.send_sha256 = True
    shard_server.faults[NAMES[0]] = ["corrupt"]
    _download(shard_server, tmp_path / "data")
    assert len(shard_server.requests_for(NAMES[0])) == 2
    assert len(shard_server.requests_for(NAMES[1])) == 1  # its CDN ETag is not a content sha256: not used
    assert "sha256" in capsys.readouterr().err
    assert _same_files(shard_server, tmp_path / "data")


def test_a_corrupt_local_shard_is_refetched(shard_server: ShardServer, tmp_path: Path) -> None:
    out = tmp_path / "data"
    _download(shard_server, out)
    body = bytearray((out / NAMES[0]).read_bytes())
    body[len(body) // 2] ^= 0xFF
    (out / NAMES[0]).write_bytes(bytes(body))
    shard_server.requests.clear()
    _download(shard_server, out)
    assert shard_server.requests_for(NAMES[0]) == [None]
    assert _same_files(shard_server, out)


def test_persistent_failure_names_the_shard(shard_server: ShardServer, tmp_path: Path) -> None:
    shard_server.faults[NAMES[0]] = ["500"] * 10
    with pytest.raises(DownloadError, match=r"shard_00000\.parquet.*3 attempts.*HTTP 500"):
        _download(shard_server, tmp_path / "data", max_attempts=3)
    assert not (tmp_path / "data" / "manifest.json").exists()


def test_missing_validation_shard_is_an_error(shard_server: ShardServer, tmp_path: Path) -> None:
    (shard_server.root / NAMES[2]).unlink()
    with pytest.raises(DownloadError, match=r"shard_06542\.parquet.*HTTP 404"):
        _download(shard_server, tmp_path / "data")


def test_bad_arguments_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_shards"):
        download_shards(-1, out_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="base_url"):
        download_shards(1, out_dir=tmp_path, base_url="ftp://x", progress=False)


def test_the_download_command(shard_server: ShardServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from speedrun.cli import main

    out = tmp_path / "data"
    code = main(["data", "download", "--shards", "2", "--base-url", shard_server.url, "--dir", str(out), "--quiet"])
    assert code == 0
    body = json.loads(capsys.readouterr().out)
    assert body["train_shards"] == 2 and body["val_shard"] == "shard_06542.parquet"
    assert body["manifest_sha256"] == read_manifest(out).sha256
    shard_server.faults["shard_00000.parquet"] = ["500"] * 10
    (out / "shard_00000.parquet").unlink()
    code = main(["data", "download", "--shards", "2", "--base-url", shard_server.url, "--dir", str(out), "--quiet",
                 "--max-attempts", "2"])  # fmt: skip
    assert code == 1
    assert "shard_00000.parquet" in capsys.readouterr().err
