"""`speedrun doctor` on a CPU: the checks that apply run for real, the GPU parts say "no GPU"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speedrun.cli import main
from trainer.doctor.checks import FAIL, OK, SKIP, Check
from trainer.doctor.run import GPU_CHECKS, format_table, verdict


@pytest.mark.slow
def test_doctor_quick_on_cpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "doctor.json"
    assert main(["doctor", "--quick", "--compact", "--json-out", str(out)]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report == json.loads(out.read_text())
    assert report["verdict"] == "cpu only" and report["gpu"] is False
    checks = report["checks"]
    for name in ("stack", "attention", "small_model", "loader", "core"):
        assert checks[name]["status"] == OK, (name, checks[name])
    flex = checks["attention"]["figures"]["backends"]["flex"]
    assert all(w["fwd_max_abs_diff"] < 1e-4 for w in flex.values())
    assert checks["small_model"]["figures"]["tokens_per_second"] > 0
    assert checks["loader"]["figures"]["headroom"] > 0
    assert checks["core"]["figures"]["examples"] == 32 and checks["core"]["figures"]["examples_per_second"] > 0
    for name in GPU_CHECKS:
        assert checks[name]["status"] == SKIP and checks[name]["detail"].startswith("no GPU"), name
    assert "speedrun doctor: cpu only" in captured.err  # the table


def test_verdict_is_not_ready_when_any_check_failed() -> None:
    passed = Check("stack", OK, "fine")
    failed = Check("loader", FAIL, "too slow")
    skipped = Check("fp8", SKIP, "no GPU")
    assert verdict([passed, skipped], gpu=False) == "cpu only"
    assert verdict([passed, skipped], gpu=True) == "ready"
    assert verdict([passed, failed], gpu=True) == "not ready"
    table = format_table({"verdict": "not ready", "date": "d", "commit": None, "checks": {"loader": failed.to_dict()}})
    assert "loader" in table and "fail" in table and "too slow" in table


def test_a_crashing_check_becomes_a_named_failure() -> None:
    from trainer.doctor.checks import guarded

    def boom() -> Check:
        raise RuntimeError("CUDA error: an illegal memory access")

    got = guarded("attention", boom)
    assert got.status == FAIL and got.name == "attention" and "illegal memory access" in got.detail
