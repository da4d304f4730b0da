"""Metric sinks, the clock and checkpoint files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from trainer.checkpoint import latest_step, load_checkpoint, mark_latest, save_checkpoint
from trainer.clock import Clock
from trainer.sinks import JsonlSink, ListSink, LogFileSink, NullSink, Sinks, StdoutSink, wandb_sink

RECORD = {
    "step": 3,
    "num_iterations": 10,
    "loss": 2.5,
    "lr_scale": 1.0,
    "tokens_per_s": 1000.0,
    "mfu": None,
    "training_seconds": 3.0,
    "eta_seconds": 7.0,
}


def test_jsonl_sink_writes_one_object_per_line_and_nulls_non_finite(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path / "m.jsonl")
    sink.train(RECORD)
    sink.eval({"step": 3, "val_bpb": float("nan")})
    sink.close()
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert lines[0] == RECORD and lines[1] == {"step": 3, "val_bpb": None}


def test_jsonl_sink_on_resume_keeps_only_lines_up_to_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    sink = JsonlSink(path)
    for step in range(1, 6):
        sink.train({**RECORD, "step": step})
    sink.close()
    resumed = JsonlSink(path, keep_until_step=3)
    resumed.train({**RECORD, "step": 4})
    resumed.close()
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2, 3, 4]
    JsonlSink(path).close()  # a fresh run starts an empty file
    assert path.read_text() == ""


def test_human_sinks_format_records(tmp_path: Path) -> None:
    out = io.StringIO()
    stdout = StdoutSink(progress=False, stream=out)
    log = LogFileSink(tmp_path / "train.log")
    both = Sinks([stdout, log, NullSink()])
    both.train(RECORD)
    both.eval({"step": 10, "val_bpb": 0.9, "core": 0.12})
    both.text("hello")
    both.close()
    text = out.getvalue()
    assert "step      3/10" in text and "loss 2.5000" in text and "mfu n/a" in text
    assert "val_bpb 0.9000 | CORE 0.1200" in text and "hello" in text
    assert (tmp_path / "train.log").read_text() == text


def test_list_sink_and_wandb_null_object() -> None:
    sink = ListSink()
    sink.train(RECORD)
    assert sink.train_records == [RECORD]
    assert isinstance(wandb_sink(None, run_name="x", config={}), NullSink)


def test_clock_accumulates_only_timed_steps_and_round_trips() -> None:
    calls: list[str] = []
    clock = Clock(lambda: calls.append("sync"))
    with clock.timed_step():
        pass
    with clock.timed_step():
        pass
    assert clock.timed_steps == 2 and calls == ["sync"] * 4 and clock.training_seconds >= 0
    other = Clock()
    other.load_state_dict(clock.state_dict())
    assert other.training_seconds == clock.training_seconds and other.timed_steps == 2
    with pytest.raises(ValueError, match="speedrun-v1"):
        Clock(rules_version="nanochat-2026")


def test_checkpoint_round_trip_and_latest_marker(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert latest_step(tmp_path) is None
    save_checkpoint(
        tmp_path, step=4, model=model, optimizer=opt, loader_state={"pos": 7}, clock_state={"t": 1}, config={"a": 1}
    )
    assert latest_step(tmp_path) is None  # not marked yet: an unmarked file is never resumed from
    mark_latest(tmp_path, 4)
    assert latest_step(tmp_path) == 4
    ckpt = load_checkpoint(tmp_path, 4)
    assert ckpt["loader"] == {"pos": 7} and torch.equal(ckpt["model"]["weight"], model.weight)
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))
    with pytest.raises(FileNotFoundError, match="world size"):
        load_checkpoint(tmp_path, 4, rank=1)
