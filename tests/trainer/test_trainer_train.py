"""The loop end to end on CPU: cpu_smoke learns, resume is bit-identical, seeds matter, the CLI writes a result."""

from __future__ import annotations

import collections
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from contract import LOG_FILE, METRICS_FILE, MODEL_FILE, RESULT_FILE
from contract.schema import RunResult
from trainer.config import TrainConfig, build_config
from trainer.sinks import ListSink, NullSink
from trainer.train import train

TIMING_KEYS = {"tokens_per_s", "training_seconds", "eta_seconds", "step_seconds", "mfu"}


def tiny_config(out: Path, **changes: Any) -> TrainConfig:
    """cpu_smoke shrunk to seconds: depth 2, T 64, 8 steps, no CORE."""
    cfg = build_config(
        "cpu_smoke",
        {"depth": 2, "sequence_len": 64, "device_batch_size": 4, "total_batch_size": 256, "num_iterations": 8},
    )
    return cfg.replace(
        **{"out_dir": str(out), "eval.core_at_end": False, "eval.eval_tokens": 512, "log.progress": False, **changes}
    )


def unigram_entropy_nats(config: TrainConfig) -> float:
    from trainer.data.loader import DataLoader
    from trainer.data.prepare import ensure_synthetic_dataset

    ds = ensure_synthetic_dataset(seed=config.data.synthetic_seed, vocab_size=config.data.synthetic_vocab_size)
    counts: collections.Counter[int] = collections.Counter()
    with DataLoader(ds.data_dir, ds.load_tokenizer(), batch_size=16, seq_len=256) as loader:
        for _ in range(20):
            _, targets = next(loader)
            counts.update(targets.flatten().tolist())
    n = sum(counts.values())
    return -sum(c / n * math.log(c / n) for c in counts.values())


@pytest.mark.slow
def test_cpu_smoke_learns_the_corpus_and_writes_a_valid_result(tmp_path: Path) -> None:
    config = build_config("cpu_smoke", {}).replace(out_dir=str(tmp_path), **{"log.progress": False})
    sink = ListSink()
    result = train(config, sink)

    entropy = unigram_entropy_nats(config)
    final = sum(r["loss"] for r in sink.train_records[-5:]) / 5
    assert final < 0.5 * entropy, (final, entropy)
    assert sink.train_records[0]["loss"] > 0.9 * entropy  # it started from knowing nothing

    on_disk = RunResult.model_validate_json((tmp_path / RESULT_FILE).read_text())
    assert on_disk == result
    assert result.steps == config.horizon.num_iterations
    assert result.tokens == result.steps * config.data.total_batch_size == result.steps * 512
    assert result.val_bpb is not None and 0 < result.val_bpb < 2
    assert result.core is not None and len(result.core.tasks) == 22
    assert result.core.core > 0.05  # the cpu-smoke track's bar
    assert result.hardware.sku == "cpu" and result.mfu is None and result.attention_backend == "sdpa"
    assert result.software["attention"].startswith("sdpa ") and "auto" in result.software["attention_reason"]
    assert "0.05%" in result.software["val_bpb"]  # the byte convention against the record's, said in the result
    assert result.digests.tokenizer_sha256 and result.digests.data_manifest_sha256 and result.digests.shards
    assert result.digests.eval_bundle_sha256 == result.core.bundle_sha256

    lines = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    train_lines = [line for line in lines if "loss" in line]
    assert [line["step"] for line in train_lines] == list(range(1, result.steps + 1))
    for key in ("step", "num_iterations", "loss", "lr_scale", "tokens_per_s", "mfu", "training_seconds", "eta_seconds"):
        assert key in train_lines[0]
    assert lines[-1]["val_bpb"] == result.val_bpb and lines[-1]["core"] == result.core.core
    import hashlib

    assert result.digests.metrics_log_sha256 == hashlib.sha256((tmp_path / METRICS_FILE).read_bytes()).hexdigest()
    assert "val_bpb" in (tmp_path / LOG_FILE).read_text()


class StopAt(NullSink):
    """Interrupts the run after `step` completed steps, as a crash would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def train(self, record: dict[str, Any]) -> None:
        if record["step"] == self.step:
            raise KeyboardInterrupt(f"interrupted after step {self.step}")


def _strip_timing(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in line.items() if k not in TIMING_KEYS} for line in lines]


@pytest.mark.slow
def test_resume_is_bit_identical(tmp_path: Path) -> None:
    straight = tmp_path / "straight"
    result_a = train(tiny_config(straight, **{"checkpoint.every_steps": 3}))

    broken = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config(broken, **{"checkpoint.every_steps": 3}), StopAt(5))
    assert not (broken / RESULT_FILE).exists()
    result_b = train(tiny_config(broken, **{"checkpoint.every_steps": 3, "checkpoint.resume": True}))

    a = torch.load(straight / MODEL_FILE, weights_only=True)
    b = torch.load(broken / MODEL_FILE, weights_only=True)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    assert result_a.final_loss == result_b.final_loss and result_a.val_bpb == result_b.val_bpb
    read = lambda d: [json.loads(x) for x in (d / METRICS_FILE).read_text().splitlines()]  # noqa: E731
    assert _strip_timing(read(straight)) == _strip_timing(read(broken))


@pytest.mark.slow
def test_untimed_warmup_steps_leave_no_trace(tmp_path: Path) -> None:
    plain = train(tiny_config(tmp_path / "plain", **{"horizon.num_iterations": 3}))
    warmed = train(tiny_config(tmp_path / "warm", **{"horizon.num_iterations": 3, "runtime.compile_warmup_steps": 2}))
    assert plain.final_loss == warmed.final_loss and plain.val_bpb == warmed.val_bpb
    a = torch.load(tmp_path / "plain" / MODEL_FILE, weights_only=True)
    b = torch.load(tmp_path / "warm" / MODEL_FILE, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert "warm-up: 2 untimed steps" in (tmp_path / "warm" / LOG_FILE).read_text()


@pytest.mark.slow
def test_seed_decides_the_init(tmp_path: Path) -> None:
    # the data stream is the record's (seed-free, data.order="record"); the seed still decides the init
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        sink = ListSink()
        train(tiny_config(tmp_path / name, **{"horizon.num_iterations": 2, "seed": seed}), sink)
        runs[name] = ([r["loss"] for r in sink.train_records], torch.load(tmp_path / name / MODEL_FILE))
    assert runs["a"][0] == runs["b"][0]
    assert all(torch.equal(runs["a"][1][k], runs["b"][1][k]) for k in runs["a"][1])
    assert runs["a"][0][0] != runs["c"][0][0]
    assert not torch.equal(runs["a"][1]["wte.weight"], runs["c"][1]["wte.weight"])


@pytest.mark.slow
def test_cli_train_writes_result_and_fails_clearly(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--out", str(out), "--no-progress"]
    overrides = json.dumps(
        {
            "depth": 2,
            "sequence_len": 64,
            "device_batch_size": 4,
            "total_batch_size": 256,
            "num_iterations": 3,
            "core_max_per_task": 11,
        }
    )
    done = subprocess.run([*cmd, "--overrides", overrides, "--seed", "3"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    result = RunResult.model_validate_json((out / RESULT_FILE).read_text())
    assert result.seed == 3 and result.overrides["num_iterations"] == 3 and result.steps == 3
    assert result.core is not None  # cpu_smoke evaluates CORE at the end

    bad = subprocess.run([*cmd, "--overrides", '{"data_dir": "/x"}'], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "overrides.data_dir" in bad.stderr
    gpu = subprocess.run(
        [sys.executable, "-m", "speedrun", "train", "--recipe", "d12", "--out", str(tmp_path / "gpu")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if not torch.cuda.is_available():
        assert gpu.returncode == 1 and "CUDA" in gpu.stderr


@pytest.mark.slow
def test_no_eval_never_opens_the_validation_shard_or_the_bundle(tmp_path: Path) -> None:
    import os
    import shutil

    from trainer.data.manifest import read_manifest
    from trainer.data.prepare import ensure_synthetic_dataset

    ds = ensure_synthetic_dataset(seed=0, vocab_size=2048)  # cpu_smoke's corpus
    data = tmp_path / "data"
    shutil.copytree(ds.data_dir, data)
    val = data / read_manifest(data).val_shard
    val.unlink()
    os.symlink("/dev/null", val)  # as the sealed verifier masks it: reading it would fail
    config = tiny_config(
        tmp_path / "run",
        **{
            "data.data_dir": str(data),
            "data.tokenizer_dir": str(ds.tokenizer_dir),
            "eval.enabled": False,
            "eval.core_at_end": True,
            "eval.bundle": str(tmp_path / "no-such-bundle"),  # would fail if opened
        },
    )
    result = train(config, NullSink())
    assert result.val_bpb is None and result.core is None
    assert (tmp_path / "run" / MODEL_FILE).is_file() and (tmp_path / "run" / RESULT_FILE).is_file()
    lines = (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    assert lines and not any("val_bpb" in line for line in lines)
