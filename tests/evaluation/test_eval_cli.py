"""`speedrun eval`: synth-bundle, fetch, and core on a real trainer checkpoint, in process."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest
import torch

from contract.core_v1 import CORE_V1_LABELS
from speedrun.cli import main
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bundle import COMPLETE_MARKER, load_bundle


def test_eval_group_lists_its_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("core", "synth-bundle", "fetch"):
        assert cmd in out


def test_synth_bundle_command_writes_a_loadable_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "synth-bundle", "--out", str(tmp_path / "b"), "--seed", "3"]) == 0
    bundle = load_bundle(tmp_path / "b")
    assert f"sha256 {bundle.sha256}" in capsys.readouterr().out
    assert [t.label for t in bundle.tasks] == list(CORE_V1_LABELS)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert main(["eval", "synth-bundle", "--out", str(tmp_path / "taken")]) == 2
    assert "not an empty directory" in capsys.readouterr().err


def test_fetch_command_unpacks_from_a_local_server(
    synth_bundle_dir: Path, tmp_path: Path, free_port: int, capsys
) -> None:
    import http.server
    import threading

    www = tmp_path / "www"
    www.mkdir()
    with zipfile.ZipFile(www / "b.zip", "w") as zf:
        for p in sorted(synth_bundle_dir.rglob("*")):
            if p.is_file() and p.name != COMPLETE_MARKER:
                zf.write(p, "eval_bundle/" + p.relative_to(synth_bundle_dir).as_posix())
    digest = hashlib.sha256((www / "b.zip").read_bytes()).hexdigest()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{free_port}/b.zip"
        assert main(["eval", "fetch", "--url", url, "--cache-dir", str(tmp_path / "c"), "--sha256", "1" * 64]) == 2
        assert "does not match the pinned" in capsys.readouterr().err
        assert main(["eval", "fetch", "--url", url, "--cache-dir", str(tmp_path / "c"), "--sha256", digest]) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert f"bundle sha256 {load_bundle(synth_bundle_dir).sha256}" in capsys.readouterr().out


def test_core_command_rejects_a_directory_without_a_run(tmp_path: Path, synth_bundle_dir: Path, capsys) -> None:
    code = main(["eval", "core", "--checkpoint", str(tmp_path), "--bundle", str(synth_bundle_dir), "--no-progress"])
    assert code == 2
    assert "neither model.pt" in capsys.readouterr().err


@pytest.fixture
def checkpoint_dir(tmp_path: Path, tokenizer: Tokenizer) -> Path:
    """A real trainer checkpoint (trainer.checkpoint.save_checkpoint) of a depth-2 cpu_smoke GPT."""
    from trainer.checkpoint import mark_latest, save_checkpoint
    from trainer.config import cpu_smoke
    from trainer.model import GPTConfig, build_model

    tokenizer.save(tmp_path / "tokenizer")
    config = cpu_smoke().replace(
        **{
            "model.depth": 2,
            "model.vocab_size": tokenizer.vocab_size,
            "data.synthetic_vocab_size": tokenizer.vocab_size,
            "data.tokenizer_dir": str(tmp_path / "tokenizer"),
        }
    )
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(config), torch.device("cpu"), torch.float32)
    with torch.no_grad():
        model.lm_head.weight.normal_(0.0, 0.3)
    out = tmp_path / "run"
    save_checkpoint(
        out,
        step=3,
        model=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        loader_state={},
        clock_state={},
        config=config.to_dict(),
    )
    mark_latest(out, 3)
    return out


def test_core_command_scores_a_checkpoint_as_json(checkpoint_dir: Path, synth_bundle_dir: Path, capsys) -> None:
    args = ["eval", "core", "--checkpoint", str(checkpoint_dir), "--bundle", str(synth_bundle_dir)]
    assert main([*args, "--max-per-task", "11", "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "core-v1" and out["bundle_sha256"] == load_bundle(synth_bundle_dir).sha256
    assert list(out["tasks"]) == list(CORE_V1_LABELS)
    assert all(set(t) == {"accuracy", "centered", "n"} and t["n"] == 11 for t in out["tasks"].values())
    assert out["core"] == pytest.approx(sum(t["centered"] for t in out["tasks"].values()) / 22)
    assert out["max_per_task"] == 11


def test_core_table_lists_every_task_and_the_aggregate() -> None:
    from contract.core_v1 import TASKS_BY_LABEL, centered_accuracy
    from trainer.evaluation.cli import format_table
    from trainer.evaluation.core import TaskOutcome, core_result

    outcomes = [
        TaskOutcome(
            label,
            0.5,
            centered_accuracy(0.5, TASKS_BY_LABEL[label].baseline_v1_percent),
            40,
            0.25,
            (True,) * 20 + (False,) * 20,
        )
        for label in CORE_V1_LABELS
    ]
    result = core_result(outcomes, bundle_sha256="ab" * 32, max_per_task=None, seconds=5.5)
    lines = format_table(outcomes, result).splitlines()
    assert len(lines) == 1 + 22 + 1
    assert lines[1].split() == ["hellaswag_zeroshot", "multiple_choice", "0", "0.5000", "0.3333", "40", "0.25"]
    assert lines[-1].startswith(f"CORE (core-v1) = {result.core:.6f}")
