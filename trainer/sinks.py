"""Metric sinks: where the loop's records go. The loop never asks which sinks are on.

Every sink takes `train(record)` (one training step), `eval(record)` (val_bpb / CORE), `text(line)`
(a human log line) and `close()`. `Sinks` fans out to several. Null objects stand in for optional
integrations (wandb when the package is missing or no project is set).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Protocol, TextIO


class Sink(Protocol):
    def train(self, record: dict[str, Any]) -> None: ...
    def eval(self, record: dict[str, Any]) -> None: ...
    def text(self, line: str) -> None: ...
    def close(self) -> None: ...


class NullSink:
    def train(self, record: dict[str, Any]) -> None:
        pass

    def eval(self, record: dict[str, Any]) -> None:
        pass

    def text(self, line: str) -> None:
        pass

    def close(self) -> None:
        pass


class ListSink(NullSink):
    """Keeps every record in memory (tests, notebooks)."""

    def __init__(self) -> None:
        self.train_records: list[dict[str, Any]] = []
        self.eval_records: list[dict[str, Any]] = []
        self.lines: list[str] = []

    def train(self, record: dict[str, Any]) -> None:
        self.train_records.append(dict(record))

    def eval(self, record: dict[str, Any]) -> None:
        self.eval_records.append(dict(record))

    def text(self, line: str) -> None:
        self.lines.append(line)


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe: non-finite floats become null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}


class JsonlSink(NullSink):
    """One JSON object per line (`metrics.jsonl`), flushed per line so a worker can tail it.

    `keep_until_step`: on resume, earlier lines with `step` beyond it are dropped first, so the file
    reads as one uninterrupted run.
    """

    def __init__(self, path: Path, *, keep_until_step: int | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if keep_until_step is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= keep_until_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif keep_until_step is None:
            self.path.write_text("")
        self._f: TextIO | None = open(self.path, "a")  # noqa: SIM115 - held open for the run

    def _write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(_clean(record), sort_keys=True) + "\n")
            self._f.flush()

    def train(self, record: dict[str, Any]) -> None:
        self._write(record)

    def eval(self, record: dict[str, Any]) -> None:
        self._write(record)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def format_train(record: dict[str, Any]) -> str:
    mfu = record.get("mfu")
    parts = [
        f"step {record['step']:>6}/{record['num_iterations']}",
        f"loss {record['loss']:.4f}",
        f"lrm {record['lr_scale']:.3f}",
        f"tok/s {record['tokens_per_s']:,.0f}",
        f"mfu {100 * mfu:.1f}%" if mfu is not None else "mfu n/a",
        f"time {record['training_seconds']:.1f}s",
        f"eta {record['eta_seconds']:.0f}s",
    ]
    return " | ".join(parts)


def format_eval(record: dict[str, Any]) -> str:
    parts = [f"step {record['step']:>6}", f"val_bpb {record['val_bpb']:.4f}"]
    if record.get("core") is not None:
        parts.append(f"CORE {record['core']:.4f}")
    return " | ".join(parts)


class LogFileSink(NullSink):
    """The human log (`train.log`): text lines and formatted records, appended."""

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f: TextIO | None = open(self.path, "a" if append else "w")  # noqa: SIM115

    def _line(self, line: str) -> None:
        if self._f is not None:
            self._f.write(line + "\n")
            self._f.flush()

    def train(self, record: dict[str, Any]) -> None:
        self._line(format_train(record))

    def eval(self, record: dict[str, Any]) -> None:
        self._line(format_eval(record))

    def text(self, line: str) -> None:
        self._line(line)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class StdoutSink(NullSink):
    """Human lines on stdout every `every_steps`, and a tqdm progress bar with ETA on stderr."""

    def __init__(self, *, every_steps: int = 1, progress: bool = True, stream: TextIO | None = None) -> None:
        self.every_steps = every_steps
        self.stream = stream or sys.stdout
        self._bar: Any = None
        self._progress = progress

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def train(self, record: dict[str, Any]) -> None:
        if self._progress:
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(
                    total=record["num_iterations"], initial=record["step"] - 1, file=sys.stderr, unit="step"
                )
            self._bar.update(record["step"] - self._bar.n)
            self._bar.set_postfix(loss=f"{record['loss']:.3f}", refresh=False)
        if record["step"] % self.every_steps == 0 or record["step"] == record["num_iterations"]:
            self._write(format_train(record))

    def eval(self, record: dict[str, Any]) -> None:
        self._write(format_eval(record))

    def text(self, line: str) -> None:
        self._write(line)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class WandbSink(NullSink):
    def __init__(self, run: Any) -> None:
        self._run = run

    def train(self, record: dict[str, Any]) -> None:
        self._run.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def eval(self, record: dict[str, Any]) -> None:
        self._run.log({f"eval/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])

    def close(self) -> None:
        self._run.finish()


def wandb_sink(project: str | None, *, run_name: str, config: dict[str, Any]) -> Sink:
    """A wandb sink, or a null sink when no project is set or wandb is not installed."""
    if project is None:
        return NullSink()
    try:
        import wandb
    except ImportError:
        print("wandb is not installed: metrics go to metrics.jsonl only", file=sys.stderr)
        return NullSink()
    return WandbSink(wandb.init(project=project, name=run_name, config=config))


class Sinks(NullSink):
    """Fan-out to several sinks."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = list(sinks)

    def train(self, record: dict[str, Any]) -> None:
        for s in self.sinks:
            s.train(record)

    def eval(self, record: dict[str, Any]) -> None:
        for s in self.sinks:
            s.eval(record)

    def text(self, line: str) -> None:
        for s in self.sinks:
            s.text(line)

    def close(self) -> None:
        for s in self.sinks:
            s.close()
