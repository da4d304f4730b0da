"""The CORE eval bundle: parse it, check it against the protocol, digest it (fetching: ``fetch``).

A bundle is a directory (or a zip holding one) with the nanochat/DCLM layout::

    core.yaml              icl_tasks: [{label, icl_task_type, dataset_uri, num_fewshot: [k], continuation_delimiter}]
    eval_meta_data.csv     columns "Eval Task" and "Random baseline" (percent)
    eval_data/<category>/<task>.jsonl

`load_bundle` checks ``core.yaml`` and ``eval_meta_data.csv`` against the ``core-v1`` protocol of
`contract.core_v1` (a bundle that disagrees is rejected with the file named), and every
JSONL record against its task type (a malformed record is rejected with file and line).

The bundle digest (`Bundle.sha256`) is canonical and covers exactly what the protocol reads: the
sha256 of the lines ``"<relative path>\\t<file sha256>\\n"`` for ``core.yaml``,
``eval_meta_data.csv`` and the task files, sorted by path. A directory and a zip of it give the same
digest on every machine.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from contract.core_v1 import CORE_V1_LABELS, CORE_V1_TASKS, TASKS_BY_LABEL, TaskSpec, TaskType

CORE_YAML = "core.yaml"
META_CSV = "eval_meta_data.csv"
DATA_DIR = "eval_data"
COMPLETE_MARKER = ".speedrun-complete"  # written last into an unpacked/generated bundle; not part of the digest


class BundleError(ValueError):
    """A bundle that is missing, malformed, or disagrees with the protocol (the message names the file)."""


# -- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MCItem:
    query: str
    choices: tuple[str, ...]
    gold: int


@dataclass(frozen=True)
class SchemaItem:
    context_options: tuple[str, ...]
    continuation: str
    gold: int


@dataclass(frozen=True)
class LMItem:
    context: str
    continuation: str


Item = MCItem | SchemaItem | LMItem


@dataclass(frozen=True)
class TaskData:
    """One task of a bundle: its protocol entry and its records in file order (unshuffled)."""

    spec: TaskSpec
    items: tuple[Item, ...]

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass(frozen=True)
class Bundle:
    """A parsed, protocol-checked bundle. ``tasks`` are in core-v1 order."""

    source: Path
    sha256: str
    tasks: tuple[TaskData, ...]

    def task(self, label: str) -> TaskData:
        for t in self.tasks:
            if t.label == label:
                return t
        raise KeyError(f"no task {label!r} in the bundle at {self.source}")

    @property
    def num_examples(self) -> int:
        return sum(len(t.items) for t in self.tasks)


# -- reading a directory or a zip ----------------------------------------------------------------


class _Files:
    """Read-only access to the files of a bundle root, in a directory or inside a zip."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._prefix = ""
        if path.is_dir():
            return
        if not path.exists():
            raise BundleError(f"{path}: no such bundle (expected a directory or a .zip)")
        if not zipfile.is_zipfile(path):
            raise BundleError(f"{path}: not a directory and not a zip file")
        self._zip = zipfile.ZipFile(path)
        roots = sorted(
            (n[: -len(CORE_YAML)] for n in self._zip.namelist() if n == CORE_YAML or n.endswith("/" + CORE_YAML)),
            key=len,
        )
        if not roots:
            raise BundleError(f"{path}: the zip holds no {CORE_YAML}")
        self._prefix = roots[0]

    def where(self, rel: str) -> str:
        return f"{self.path}!{self._prefix}{rel}" if self._zip is not None else str(self.path / rel)

    def read(self, rel: str) -> bytes:
        if self._zip is not None:
            try:
                return self._zip.read(self._prefix + rel)
            except KeyError:
                raise BundleError(f"{self.where(rel)}: missing from the bundle") from None
        p = self.path / rel
        if not p.is_file():
            raise BundleError(f"{p}: missing from the bundle")
        return p.read_bytes()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def canonical_digest(file_digests: dict[str, str]) -> str:
    """sha256 over sorted ``"<relative path>\\t<sha256>\\n"`` lines (the bundle and directory digest)."""
    h = hashlib.sha256()
    for rel in sorted(file_digests):
        h.update(f"{rel}\t{file_digests[rel]}\n".encode())
    return h.hexdigest()


def directory_digest(root: Path) -> str:
    """Canonical digest of every regular file under ``root`` (except the completion marker)."""
    digests = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != COMPLETE_MARKER:
            digests[p.relative_to(root).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return canonical_digest(digests)


# -- parsing -------------------------------------------------------------------------------------


def _parse_core_yaml(raw: bytes, where: str) -> dict[str, dict[str, Any]]:
    import yaml

    try:
        doc = yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise BundleError(f"{where}: not valid UTF-8 YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("icl_tasks"), list):
        raise BundleError(f"{where}: expected a mapping with an 'icl_tasks' list")
    entries: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(doc["icl_tasks"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("label"), str):
            raise BundleError(f"{where}: icl_tasks[{i}] is not a mapping with a string 'label'")
        label = entry["label"]
        if label in entries:
            raise BundleError(f"{where}: icl_tasks[{i}]: task {label!r} is listed twice")
        entries[label] = entry
    missing = [label for label in CORE_V1_LABELS if label not in entries]
    extra = [label for label in entries if label not in TASKS_BY_LABEL]
    if missing:
        raise BundleError(f"{where}: core-v1 task(s) missing: {', '.join(missing)}")
    if extra:
        raise BundleError(f"{where}: task(s) not in core-v1: {', '.join(extra)}")
    for i, (label, entry) in enumerate(entries.items()):
        spec = TASKS_BY_LABEL[label]
        shots = entry.get("num_fewshot")
        if isinstance(shots, list) and shots:
            shots = shots[0]
        delimiter = entry.get("continuation_delimiter", " ")
        checks = (
            ("icl_task_type", entry.get("icl_task_type"), spec.task_type.value),
            ("num_fewshot", shots, spec.num_fewshot),
            ("continuation_delimiter", delimiter, spec.continuation_delimiter),
        )
        for key, got, want in checks:
            if got != want or type(got) is not type(want):
                raise BundleError(f"{where}: icl_tasks[{i}] ({label}): {key} is {got!r}, core-v1 says {want!r}")
        uri = entry.get("dataset_uri")
        if not isinstance(uri, str) or not uri or PurePosixPath(uri).is_absolute() or ".." in PurePosixPath(uri).parts:
            raise BundleError(f"{where}: icl_tasks[{i}] ({label}): dataset_uri {uri!r} is not a relative path")
    return entries


def _parse_meta_csv(raw: bytes, where: str) -> None:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not valid UTF-8: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    fields = reader.fieldnames or []
    for column in ("Eval Task", "Random baseline"):
        if column not in fields:
            raise BundleError(f"{where}: no column {column!r} (columns: {fields})")
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        label = (row.get("Eval Task") or "").strip()
        if label not in TASKS_BY_LABEL:
            continue
        if label in seen:
            raise BundleError(f"{where}:{line}: task {label!r} listed twice (first at line {seen[label]})")
        seen[label] = line
        raw_value = row.get("Random baseline")
        try:
            value = float(raw_value or "")
        except ValueError:
            raise BundleError(f"{where}:{line}: Random baseline of {label} is {raw_value!r}, not a number") from None
        want = TASKS_BY_LABEL[label].baseline_v1_percent
        if abs(value - want) > 1e-9:
            raise BundleError(f"{where}:{line}: Random baseline of {label} is {value}, core-v1 says {want}")
    missing = [label for label in CORE_V1_LABELS if label not in seen]
    if missing:
        raise BundleError(f"{where}: no Random baseline for task(s): {', '.join(missing)}")


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):  # rendered as the reference's template would
        return str(value)
    raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")


def _texts(record: dict[str, Any], key: str) -> tuple[str, ...]:
    value = record.get(key)
    if not isinstance(value, list) or not value:
        raise ValueError(f"field {key!r} must be a non-empty list")
    return tuple(_text({key: v}, key) for v in value)


def _gold(record: dict[str, Any], num_options: int) -> int:
    gold = record.get("gold")
    if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < num_options:
        raise ValueError(f"field 'gold' must be an integer in [0, {num_options}), got {gold!r}")
    return gold


def parse_item(record: Any, task_type: TaskType) -> Item:
    """One JSONL record as a typed item (ValueError naming the field when malformed)."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if task_type is TaskType.multiple_choice:
        choices = _texts(record, "choices")
        return MCItem(_text(record, "query"), choices, _gold(record, len(choices)))
    if task_type is TaskType.schema:
        options = _texts(record, "context_options")
        return SchemaItem(options, _text(record, "continuation"), _gold(record, len(options)))
    return LMItem(_text(record, "context"), _text(record, "continuation"))


def _parse_jsonl(raw: bytes, where: str, task_type: TaskType) -> tuple[Item, ...]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(f"{where}: not valid UTF-8: {exc}") from None
    items = []
    # Lines split as a text-mode file does (\n, \r\n, \r), not str.splitlines: U+2028 may sit inside a JSON string.
    for lineno, line in enumerate(io.StringIO(text, newline=None), start=1):
        try:
            items.append(parse_item(json.loads(line), task_type))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            raise BundleError(f"{where}:{lineno}: malformed {task_type.value} record: {exc}") from None
    if not items:
        raise BundleError(f"{where}: no records")
    return tuple(items)


def load_bundle(path: Path | str) -> Bundle:
    """Parse and check a bundle directory or zip (BundleError naming the file and line on any problem)."""
    files = _Files(Path(path))
    try:
        digests: dict[str, str] = {}

        def read(rel: str) -> bytes:
            raw = files.read(rel)
            digests[rel] = hashlib.sha256(raw).hexdigest()
            return raw

        entries = _parse_core_yaml(read(CORE_YAML), files.where(CORE_YAML))
        _parse_meta_csv(read(META_CSV), files.where(META_CSV))
        parsed: dict[str, tuple[Item, ...]] = {}
        tasks = []
        for spec in CORE_V1_TASKS:
            rel = f"{DATA_DIR}/{entries[spec.label]['dataset_uri']}"
            if rel not in parsed:
                parsed[rel] = _parse_jsonl(read(rel), files.where(rel), spec.task_type)
            tasks.append(TaskData(spec, parsed[rel]))
        return Bundle(source=Path(path), sha256=canonical_digest(digests), tasks=tuple(tasks))
    finally:
        files.close()


# -- the synthetic bundle ------------------------------------------------------------------------


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")


def write_bundle_files(root: Path, records: dict[str, list[dict[str, Any]]]) -> None:
    """Write a core-v1 layout (core.yaml, eval_meta_data.csv, eval_data/...) for ``records`` by task label."""
    import yaml

    missing = [label for label in CORE_V1_LABELS if label not in records]
    if missing:
        raise ValueError(f"records: missing tasks {missing}")
    icl_tasks = []
    written: dict[str, list[dict[str, Any]]] = {}
    for spec in CORE_V1_TASKS:
        uri = spec.dataset_uri
        if uri in written:  # hellaswag and hellaswag_zeroshot share one file, as in the public bundle
            if written[uri] != records[spec.label]:
                raise ValueError(f"records: {spec.label} shares {uri} with another task but has other records")
        else:
            _write_jsonl(root / DATA_DIR / uri, records[spec.label])
            written[uri] = records[spec.label]
        icl_tasks.append(
            {
                "label": spec.label,
                "dataset_uri": uri,
                "num_fewshot": [spec.num_fewshot],
                "icl_task_type": spec.task_type.value,
                "continuation_delimiter": spec.continuation_delimiter,
            }
        )
    (root / CORE_YAML).write_text(yaml.safe_dump({"icl_tasks": icl_tasks}, sort_keys=False), encoding="utf-8")
    with (root / META_CSV).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["Eval Task", "Task Category", "Task Type", "#shots", "Random baseline"])
        for spec in CORE_V1_TASKS:
            w.writerow([spec.label, "synthetic", spec.task_type.value, spec.num_fewshot, spec.baseline_v1_percent])


def write_synthetic_bundle(out_dir: Path | str, *, seed: int = 0) -> Path:
    """Write the synthetic CORE-format bundle (22 core-v1 tasks built from `SyntheticWorld`) atomically."""
    from trainer.evaluation.synthetic import synthetic_records

    out = Path(out_dir)
    if (out / COMPLETE_MARKER).is_file():
        shutil.rmtree(out)
    elif out.exists() and any(out.iterdir()):
        raise BundleError(f"{out}: exists and is not an empty directory or a synthetic bundle")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write_bundle_files(tmp, synthetic_records(seed))
        (tmp / COMPLETE_MARKER).write_text("ok\n")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_synthetic_bundle(root: Path | str | None = None, *, seed: int = 0) -> Path:
    """The cached synthetic bundle for ``seed`` (built once, under a file lock)."""
    import filelock

    from trainer.data.paths import default_cache_dir
    from trainer.evaluation.synthetic import SYNTHETIC_VERSION

    base = Path(root) if root is not None else default_cache_dir()
    out = base / f"eval-bundle-synthetic-{seed}-v{SYNTHETIC_VERSION}"
    if (out / COMPLETE_MARKER).is_file():
        return out
    base.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(base / f".{out.name}.lock")):
        if not (out / COMPLETE_MARKER).is_file():
            if out.exists():
                shutil.rmtree(out)
            write_synthetic_bundle(out, seed=seed)
    return out
