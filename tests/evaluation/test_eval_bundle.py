"""Bundle parsing, protocol checks, canonical digests, the synthetic bundle, and fetching over real local HTTP."""

from __future__ import annotations

import hashlib
import http.server
import json
import shutil
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from contract.core_v1 import CORE_V1_LABELS, CORE_V1_TASKS
from trainer.evaluation.bundle import (
    COMPLETE_MARKER,
    BundleError,
    LMItem,
    MCItem,
    SchemaItem,
    ensure_synthetic_bundle,
    load_bundle,
    write_synthetic_bundle,
)
from trainer.evaluation.fetch import fetch_bundle


def zip_bundle(src: Path, dest: Path, *, prefix: str = "eval_bundle/", extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file() and p.name != COMPLETE_MARKER:
                zf.write(p, prefix + p.relative_to(src).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


@pytest.fixture
def bundle_copy(synth_bundle_dir: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "bundle"
    shutil.copytree(synth_bundle_dir, dest)
    return dest


@pytest.fixture
def http_dir(tmp_path: Path, free_port: int) -> Iterator[tuple[str, Path, Callable[[], None]]]:
    """A real HTTP server on 127.0.0.1 serving a fresh directory: (base URL, directory, stop)."""
    root = tmp_path / "www"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if not stopped:
            server.shutdown()
            server.server_close()
            stopped = True

    yield f"http://127.0.0.1:{free_port}", root, stop
    stop()


# -- the synthetic bundle through the real loader -----------------------------------------------


def test_synthetic_bundle_has_the_22_core_v1_tasks(synth_bundle_dir: Path) -> None:
    b = load_bundle(synth_bundle_dir)
    assert [t.label for t in b.tasks] == list(CORE_V1_LABELS)
    assert [t.spec for t in b.tasks] == list(CORE_V1_TASKS)
    assert all(len(t.items) == 40 for t in b.tasks)
    assert b.task("hellaswag").items == b.task("hellaswag_zeroshot").items  # one file, as in the public bundle
    assert isinstance(b.task("copa").items[0], MCItem) and isinstance(b.task("winograd").items[0], SchemaItem)
    assert len(b.task("bigbench_language_identification").items[0].choices) > 2  # type: ignore[union-attr]


def test_synthetic_bundle_is_deterministic(synth_bundle_dir: Path, tmp_path: Path) -> None:
    again = write_synthetic_bundle(tmp_path / "again", seed=0)
    other = write_synthetic_bundle(tmp_path / "other", seed=1)
    assert load_bundle(again).sha256 == load_bundle(synth_bundle_dir).sha256
    assert load_bundle(other).sha256 != load_bundle(synth_bundle_dir).sha256


def test_ensure_synthetic_bundle_builds_once(tmp_path: Path) -> None:
    first = ensure_synthetic_bundle(tmp_path, seed=0)
    marker = (first / COMPLETE_MARKER).stat().st_mtime_ns
    assert ensure_synthetic_bundle(tmp_path, seed=0) == first
    assert (first / COMPLETE_MARKER).stat().st_mtime_ns == marker
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [first.name]


def test_write_synthetic_bundle_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not an empty directory"):
        write_synthetic_bundle(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# -- digests ------------------------------------------------------------------------------------


def test_a_zip_and_its_directory_have_the_same_digest(synth_bundle_dir: Path, tmp_path: Path) -> None:
    z = zip_bundle(synth_bundle_dir, tmp_path / "b.zip", extra={"__MACOSX/._core.yaml": b"junk"})
    from_zip = load_bundle(z)
    assert from_zip.sha256 == load_bundle(synth_bundle_dir).sha256
    assert from_zip.tasks == load_bundle(synth_bundle_dir).tasks
    flat = zip_bundle(synth_bundle_dir, tmp_path / "flat.zip", prefix="")
    assert load_bundle(flat).sha256 == from_zip.sha256


def test_digest_covers_the_task_files_and_nothing_else(bundle_copy: Path) -> None:
    before = load_bundle(bundle_copy).sha256
    (bundle_copy / "README.txt").write_text("not read by the protocol")
    assert load_bundle(bundle_copy).sha256 == before
    path = bundle_copy / "eval_data" / "commonsense_reasoning" / "copa.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[1:] + lines[:1]))  # same records, other order
    assert load_bundle(bundle_copy).sha256 != before


# -- malformed bundles are rejected with the file (and line) named -------------------------------


def _edit_yaml(root: Path, edit: Callable[[list[dict]], None]) -> None:
    doc = yaml.safe_load((root / "core.yaml").read_text())
    edit(doc["icl_tasks"])
    (root / "core.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))


def _set(index: int, key: str, value: object) -> Callable[[list[dict]], None]:
    def edit(tasks: list[dict]) -> None:
        tasks[index][key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda ts: ts.pop(5), r"core\.yaml: core-v1 task\(s\) missing: copa"),
        (lambda ts: ts.append({**ts[0], "label": "mmlu"}), r"core\.yaml: task\(s\) not in core-v1: mmlu"),
        (lambda ts: ts.append(dict(ts[0])), r"core\.yaml: icl_tasks\[22\]: task 'hellaswag_zeroshot' is listed twice"),
        (_set(3, "num_fewshot", [5]), r"core\.yaml: icl_tasks\[3\] \(arc_easy\): num_fewshot is 5, core-v1 says 10"),
        (_set(7, "continuation_delimiter", " "), r"icl_tasks\[7\] \(piqa\): continuation_delimiter is ' '"),
        (_set(11, "icl_task_type", "multiple_choice"), r"\(winograd\): icl_task_type is 'multiple_choice'"),
        (_set(0, "dataset_uri", "../../etc/passwd"), r"\(hellaswag_zeroshot\): dataset_uri '\.\./\.\./etc/passwd'"),
    ],
)
def test_core_yaml_that_disagrees_with_core_v1_is_rejected(bundle_copy: Path, edit, message: str) -> None:
    _edit_yaml(bundle_copy, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_a_v2_baseline_in_the_csv_is_rejected_with_its_line(bundle_copy: Path) -> None:
    csv_path = bundle_copy / "eval_meta_data.csv"
    lines = csv_path.read_text().splitlines()
    n = next(i for i, line in enumerate(lines) if line.startswith("bigbench_language_identification,"))
    lines[n] = lines[n].rsplit(",", 1)[0] + ",25"
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        BundleError,
        match=rf"eval_meta_data\.csv:{n + 1}: Random baseline of bigbench_language_identification is 25\.0, core-v1 says 9\.1",
    ):
        load_bundle(bundle_copy)


def test_a_csv_without_a_task_or_a_column_is_rejected(bundle_copy: Path) -> None:
    csv_path = bundle_copy / "eval_meta_data.csv"
    original = csv_path.read_text()
    csv_path.write_text("\n".join(line for line in original.splitlines() if not line.startswith("copa,")) + "\n")
    with pytest.raises(BundleError, match=r"eval_meta_data\.csv: no Random baseline for task\(s\): copa"):
        load_bundle(bundle_copy)
    csv_path.write_text(original.replace("Random baseline", "Baseline"))
    with pytest.raises(BundleError, match=r"eval_meta_data\.csv: no column 'Random baseline'"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"copa\.jsonl:3: malformed multiple_choice record"),
        ('{"query": "q", "choices": ["a", "b"], "gold": 2}', r"copa\.jsonl:3: .*'gold' must be an integer in \[0, 2\)"),
        ('{"query": "q", "choices": [], "gold": 0}', r"copa\.jsonl:3: .*'choices' must be a non-empty list"),
        ('{"choices": ["a"], "gold": 0}', r"copa\.jsonl:3: .*'query' must be a string"),
        ("", r"copa\.jsonl:3: malformed"),
        ("[1, 2]", r"copa\.jsonl:3: .*expected a JSON object"),
    ],
)
def test_a_malformed_record_is_rejected_with_file_and_line(bundle_copy: Path, line: str, message: str) -> None:
    path = bundle_copy / "eval_data" / "commonsense_reasoning" / "copa.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match=message):
        load_bundle(bundle_copy)


def test_missing_files_are_named(bundle_copy: Path, tmp_path: Path) -> None:
    (bundle_copy / "eval_data" / "reading_comprehension" / "squad.jsonl").unlink()
    with pytest.raises(BundleError, match=r"eval_data/reading_comprehension/squad\.jsonl: missing from the bundle"):
        load_bundle(bundle_copy)
    (bundle_copy / "core.yaml").unlink()
    with pytest.raises(BundleError, match=r"core\.yaml: missing from the bundle"):
        load_bundle(bundle_copy)
    with pytest.raises(BundleError, match="no such bundle"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(BundleError, match="not a directory and not a zip"):
        load_bundle(tmp_path / "plain.txt")


# -- fetching over HTTP -------------------------------------------------------------------------


def test_fetch_downloads_verifies_and_unpacks_then_works_offline(
    synth_bundle_dir: Path, tmp_path: Path, http_dir
) -> None:
    base, www, stop = http_dir
    z = zip_bundle(synth_bundle_dir, www / "eval_bundle.zip")
    digest = hashlib.sha256(z.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    path = fetch_bundle(f"{base}/eval_bundle.zip", cache, sha256=digest, progress=False)
    assert path == cache / "eval_bundle"
    assert load_bundle(path).sha256 == load_bundle(synth_bundle_dir).sha256
    assert (cache / "eval_bundle.zip.sha256").read_text().split()[0] == digest
    assert not list(cache.glob("*.part")) and not list(cache.glob(".eval_bundle.tmp-*"))
    stop()
    assert fetch_bundle(f"{base}/eval_bundle.zip", cache, sha256=digest, progress=False) == path  # no network now


def test_fetch_rejects_a_digest_mismatch_and_leaves_nothing(synth_bundle_dir: Path, tmp_path: Path, http_dir) -> None:
    base, www, _ = http_dir
    zip_bundle(synth_bundle_dir, www / "eval_bundle.zip")
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match=r"sha256 [0-9a-f]{64} does not match the pinned 0{64}"):
        fetch_bundle(f"{base}/eval_bundle.zip", cache, sha256="0" * 64, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == ["eval_bundle.lock"]


def test_fetch_reports_http_errors_and_bad_pins(tmp_path: Path, http_dir) -> None:
    base, _, _ = http_dir
    with pytest.raises(BundleError, match="HTTP 404"):
        fetch_bundle(f"{base}/missing.zip", tmp_path / "c", sha256=None, progress=False)
    with pytest.raises(ValueError, match="sha256: expected 64 lowercase hex"):
        fetch_bundle(f"{base}/missing.zip", tmp_path / "c", sha256="ABC", progress=False)


def test_fetch_rejects_unsafe_or_malformed_zips_atomically(synth_bundle_dir: Path, tmp_path: Path, http_dir) -> None:
    base, www, _ = http_dir
    zip_bundle(synth_bundle_dir, www / "evil.zip", extra={"../escape.txt": b"x"})
    cache = tmp_path / "cache"
    with pytest.raises(BundleError, match=r"unsafe member path '\.\./escape\.txt'"):
        fetch_bundle(f"{base}/evil.zip", cache, sha256=None, progress=False)
    assert not (tmp_path / "escape.txt").exists() and not (cache / "eval_bundle").exists()

    broken = tmp_path / "broken"
    shutil.copytree(synth_bundle_dir, broken)
    (broken / "eval_data" / "commonsense_reasoning" / "piqa.jsonl").write_text("{oops\n")
    zip_bundle(broken, www / "broken.zip")
    cache2 = tmp_path / "cache2"
    with pytest.raises(BundleError, match=r"piqa\.jsonl:1: malformed"):
        fetch_bundle(f"{base}/broken.zip", cache2, sha256=None, progress=False)
    assert not (cache2 / "eval_bundle").exists() and not list(cache2.glob(".eval_bundle.tmp-*"))


def test_records_split_on_newlines_only_like_a_text_file(bundle_copy: Path) -> None:
    path = bundle_copy / "eval_data" / "reading_comprehension" / "coqa.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = json.dumps(
        {"context": "A line\u2028separator and\x0ca form feed are text", "continuation": "ok"}, ensure_ascii=False
    )
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    items = load_bundle(bundle_copy).task("coqa").items
    assert len(items) == 40
    assert items[0] == LMItem("A line\u2028separator and\x0ca form feed are text", "ok")
