"""The contract: JSON round trips, and one rejection per rule, each naming its field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contract.protocol import JobLease
from contract.schema import (
    MAX_CLAIMED_RESULTS,
    MAX_GPUS_PER_NODE,
    MAX_LOG_FILE_BYTES,
    MAX_LOG_FILES,
    MAX_NODES,
    LogFile,
    RunConfig,
    RunResult,
    Submission,
    TrainerSource,
    VerificationReport,
    VerifierIdentity,
)
from contract.tracks import BUILTIN_TRACKS, TrackRules
from submissions.schema_export import SCHEMA_DIR, schema_documents
from submissions.stats import summarize
from tests.submissions.factories import CPU, gpu_config, run_result
from trainer.plan import config_of

SHA = "a" * 40


def submission(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "track": "gpt2-8xh100",
        "title": "d24 baseline",
        "contributors": ["@alice"],
        "run_config": gpu_config().model_dump(mode="json"),
        "claimed_results": [run_result().model_dump(mode="json")],
        "logs": [{"name": "train.log", "content": "step 1 loss 9.0\n"}],
        "idempotency_key": "key-12345678",
    }
    fields.update(changes)
    return fields


def rejects(model: type[Any], data: Any, *fragments: str) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    text = str(exc.value)
    for fragment in fragments:
        assert fragment in text, text


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        gpu_config(
            overrides={"depth": 26, "fp8": True, "ratio": 8.5, "window_pattern": "SSSL", "num_iterations": None}
        ),
        RunConfig.model_validate(
            {
                "trainer": {"kind": "git", "git_url": "https://github.com/a/b.git", "commit": SHA},
                "recipe": "d12",
                "hardware_class": "cpu",
                "gpus_per_node": 0,
            }
        ),
        run_result(),
        run_result(core_score=None, val_bpb=None, hardware=CPU),
        BUILTIN_TRACKS["gpt2-cost"],
    ],
    ids=["run_config", "git_run_config", "run_result", "cpu_result_without_eval", "track"],
)
def test_json_round_trip(obj: Any) -> None:
    again = type(obj).model_validate_json(obj.model_dump_json())
    assert again == obj
    assert json.loads(again.model_dump_json()) == json.loads(obj.model_dump_json())


def test_submission_round_trip() -> None:
    sub = Submission.model_validate(submission())
    assert Submission.model_validate_json(sub.model_dump_json()) == sub


def test_verification_report_round_trip() -> None:
    runs = [run_result(seed=1, core_score=0.30), run_result(seed=2, core_score=0.31)]
    report = VerificationReport(
        track="gpt2-8xh100",
        verifier=VerifierIdentity(id="node-1", version="0.1.0", hardware=runs[0].hardware),
        run_config=gpu_config(),
        runs=runs,
        core=summarize([0.30, 0.31]),
        core_threshold=0.256525,
        alpha=0.05,
        p_value=0.01,
        training_hours=summarize([1.0, 1.0]),
        verdict="verified",
        reasons=["ok"],
        created_at=datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert VerificationReport.model_validate_json(report.model_dump_json()) == report


def test_trainer_shorthand_is_accepted() -> None:
    assert TrainerSource.model_validate("reference@0.1.0") == TrainerSource(kind="reference", version="0.1.0")


# -- rejections, one per rule ----------------------------------------------------------------


def test_unknown_field_is_rejected() -> None:
    rejects(RunConfig, {**gpu_config().model_dump(), "learning_rate": 1}, "learning_rate", "Extra inputs")


def test_unknown_schema_version_is_rejected() -> None:
    rejects(RunConfig, {**gpu_config().model_dump(), "schema_version": 2}, "schema_version")


def test_bad_trainer_shorthand_is_rejected() -> None:
    rejects(TrainerSource, "fork@abc", "reference@")


def test_reference_trainer_needs_a_version() -> None:
    rejects(TrainerSource, {"kind": "reference"}, "trainer.version")


def test_git_trainer_needs_a_clone_url() -> None:
    rejects(TrainerSource, {"kind": "git", "git_url": "ftp://x/y", "commit": SHA}, "trainer.git_url")


def test_git_trainer_needs_the_full_commit() -> None:
    rejects(TrainerSource, {"kind": "git", "git_url": "https://x/y.git", "commit": "abcdef1"}, "trainer.commit")


def test_cpu_class_needs_zero_gpus() -> None:
    rejects(RunConfig, gpu_config(hardware_class="h100-sxm").model_dump() | {"gpus_per_node": 0}, "gpus_per_node")


def test_gpus_per_node_is_bounded() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"gpus_per_node": MAX_GPUS_PER_NODE + 1}, "gpus_per_node")


def test_nodes_are_bounded() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"nodes": MAX_NODES + 1}, "nodes")


def test_seed_is_not_an_override() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"overrides": {"seed": 3}}, "overrides.seed")


def test_seed_range_is_enforced() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"seed": 2**31}, "seed")


def test_recipe_must_be_a_slug() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"recipe": "../etc"}, "recipe")


def test_override_values_must_be_scalars() -> None:
    rejects(RunConfig, gpu_config().model_dump() | {"overrides": {"depth": [1, 2]}}, "overrides.depth")


def test_overrides_are_checked_against_the_trainer_config() -> None:
    """The plan of a run config is the trainer's (trainer.plan.config_of), not the contract's."""

    def check(overrides: dict[str, object]) -> None:
        cfg = gpu_config(overrides=overrides)
        config_of(cfg.recipe, cfg.overrides, cfg.seed)

    with pytest.raises(ValueError, match=r"overrides\.learning_rate"):
        check({"learning_rate": 1.0})
    with pytest.raises(ValueError, match=r"model\.depth|depth"):
        check({"depth": 0})
    check({"depth": 26})


def test_result_timestamps_need_a_timezone() -> None:
    data = run_result().model_dump() | {"started_at": datetime(2026, 3, 1, 12, 0)}
    rejects(RunResult, data, "started_at", "timezone")


def test_result_training_seconds_cannot_be_negative() -> None:
    rejects(RunResult, run_result().model_dump() | {"training_seconds": -1.0}, "training_seconds")


def test_result_val_bpb_cannot_be_nan() -> None:
    rejects(RunResult, run_result().model_dump() | {"val_bpb": float("nan")}, "val_bpb")


def test_result_core_accuracy_is_a_fraction() -> None:
    data = run_result().model_dump()
    data["core"]["tasks"]["copa"]["accuracy"] = 1.5
    rejects(RunResult, data, "core.tasks.copa.accuracy")


def test_result_digests_are_sha256() -> None:
    data = run_result().model_dump()
    data["digests"]["tokenizer_sha256"] = "not-a-digest"
    rejects(RunResult, data, "digests.tokenizer_sha256")


def test_log_file_size_is_bounded() -> None:
    rejects(LogFile, {"name": "train.log", "content": "x" * (MAX_LOG_FILE_BYTES + 1)}, "content")


def test_log_file_size_counts_bytes_not_characters() -> None:
    rejects(LogFile, {"name": "train.log", "content": "é" * (MAX_LOG_FILE_BYTES // 2 + 1)}, "content", "bytes")


def test_log_file_name_cannot_be_a_path() -> None:
    rejects(LogFile, {"name": "../../etc/passwd", "content": ""}, "name")


def test_submission_needs_a_claimed_result() -> None:
    rejects(Submission, submission(claimed_results=[]), "claimed_results")


def test_submission_claims_are_bounded() -> None:
    claims = [run_result(seed=i).model_dump(mode="json") for i in range(MAX_CLAIMED_RESULTS + 1)]
    rejects(Submission, submission(claimed_results=claims), "claimed_results")


def test_submission_log_count_is_bounded() -> None:
    logs = [{"name": f"log{i}.txt", "content": ""} for i in range(MAX_LOG_FILES + 1)]
    rejects(Submission, submission(logs=logs), "logs")


def test_submission_total_log_size_is_bounded() -> None:
    logs = [{"name": f"log{i}.txt", "content": "x" * MAX_LOG_FILE_BYTES} for i in range(5)]
    rejects(Submission, submission(logs=logs), "logs:", "bytes in all")


def test_submission_log_names_are_distinct() -> None:
    logs = [{"name": "a.log", "content": ""}, {"name": "a.log", "content": ""}]
    rejects(Submission, submission(logs=logs), "logs: file names must be distinct")


def test_submission_claims_match_the_recipe() -> None:
    claim = run_result(recipe="d12").model_dump(mode="json")
    rejects(Submission, submission(claimed_results=[claim]), "claimed_results[0].recipe")


def test_submission_needs_a_contributor() -> None:
    rejects(Submission, submission(contributors=[]), "contributors")


def test_submission_idempotency_key_has_a_minimum_length() -> None:
    rejects(Submission, submission(idempotency_key="short"), "idempotency_key")


def test_track_alpha_is_a_fraction() -> None:
    rejects(TrackRules, BUILTIN_TRACKS["cpu-smoke"].model_dump() | {"alpha": 1.5}, "alpha")


def test_job_lease_needs_at_least_one_run() -> None:
    lease = {
        "job_id": 1,
        "lease_token": "t",
        "lease_expires_at": "2026-03-01T00:00:00Z",
        "lease_seconds": 60,
        "attempt": 1,
        "entry_id": 1,
        "track": BUILTIN_TRACKS["cpu-smoke"].model_dump(mode="json"),
        "run_config": gpu_config().model_dump(mode="json"),
        "runs": 0,
        "claimed_results": [],
    }
    rejects(JobLease, lease, "runs")


# -- exported JSON Schema ----------------------------------------------------------------------


def test_exported_json_schema_files_are_current() -> None:
    """Regenerate with `speedrun verify --export-schema submissions/json_schema`."""
    for name, text in schema_documents().items():
        path = SCHEMA_DIR / name
        assert path.is_file(), f"{path} missing"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale"


def test_json_schema_rejects_unknown_fields() -> None:
    doc = json.loads(schema_documents()["submission.schema.json"])
    assert doc["additionalProperties"] is False
    assert "run_config" in doc["required"]


def test_a_claim_may_carry_the_trainers_own_time_only_on_a_verifier_clock_track() -> None:
    v2 = BUILTIN_TRACKS["gpt2-8xh100"]
    assert v2.rules_version == "speedrun-v2"
    assert v2.claim_rules_versions == {"speedrun-v2", "speedrun-v1"}
    v1 = v2.model_copy(update={"rules_version": "speedrun-v1"})
    assert v1.claim_rules_versions == {"speedrun-v1"}
    history = v2.model_copy(update={"rules_version": "nanochat-2026"})
    assert history.claim_rules_versions == {"nanochat-2026"}
