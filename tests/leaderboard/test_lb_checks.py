"""The site re-derives every ranked number from the runs and the track (issue 12): each attack a
hostile worker tried is reproduced through the API and the board stays unchanged."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from lb_factories import core_tasks, report, run_config, submission_json
from lb_support import Api, Users
from lb_verify import board, complete, entry, forge_runs, gpu_report, lease_run, submit
from sqlalchemy.orm import Session

from contract import protocol
from contract.schema import CoreResult
from contract.tracks import BUILTIN_TRACKS
from leaderboard.entries.models import Entry


def _attack(api: Api, users: Users, forge: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    sub = submit(api, users.alice)
    assert complete(api, users, forge_runs(gpu_report(), forge)) == 200
    detail = entry(api, sub["entry_id"])
    assert board(api) == []  # nothing ranked
    return detail


def _rejected_for(detail: dict[str, Any], words: str) -> None:
    assert detail["entry"]["status"] == "rejected" and detail["entry"]["rank"] is None
    v = detail["verifications"][0]
    assert v["verdict"] == "rejected"
    assert any(words in reason for reason in v["reasons"]), v["reasons"]
    assert v["site"]["counted"] is False


def test_runs_with_other_overrides_are_rejected(api: Api, users: Users) -> None:
    detail = _attack(api, users, lambda r: {"overrides": {"num_iterations": 1}})
    _rejected_for(detail, "overrides {'num_iterations': 1} differ")


def test_runs_that_trained_fewer_steps_than_the_recipe_are_rejected(api: Api, users: Users) -> None:
    # the overrides are right on paper, the run did one step: the site's own plan says otherwise
    detail = _attack(api, users, lambda r: {"steps": 1, "tokens": 524288, "flops": r.flops / r.steps})
    _rejected_for(detail, "steps, the recipe and overrides give")


def test_core_on_one_example_per_task_is_rejected(api: Api, users: Users) -> None:
    def one_each(r: Any) -> dict[str, Any]:
        tasks = {k: t.model_copy(update={"n": 1}) for k, t in r.core.tasks.items()}
        return {"core": r.core.model_copy(update={"max_per_task": 1, "tasks": tasks})}

    _rejected_for(_attack(api, users, one_each), "CORE on 1 per task, the track needs all examples")


def test_a_subsample_that_claims_the_full_set_is_rejected(api: Api, users: Users) -> None:
    def lie(r: Any) -> dict[str, Any]:  # max_per_task left None, but one example of each task scored
        return {
            "core": r.core.model_copy(
                update={"tasks": {k: t.model_copy(update={"n": 1}) for k, t in r.core.tasks.items()}}
            )
        }

    _rejected_for(_attack(api, users, lie), "CORE scored 22 examples, the track's full set is 91037")


def test_a_core_that_is_not_its_tasks_mean_is_rejected(api: Api, users: Users) -> None:
    forged = CoreResult(core=0.9, bundle_sha256="b" * 64, tasks=core_tasks(0.27, "h100-sxm"))
    _rejected_for(_attack(api, users, lambda r: {"core": forged}), "is not the mean centered accuracy")


def test_zero_training_seconds_is_below_the_physical_floor(api: Api, users: Users) -> None:
    _rejected_for(_attack(api, users, lambda r: {"training_seconds": 0.0}), "below the physical floor")


def test_zero_flops_cannot_hide_the_floor(api: Api, users: Users) -> None:
    # the FLOPs the site counts are its own plan's, whatever the run says
    _rejected_for(_attack(api, users, lambda r: {"flops": 0.0, "training_seconds": 1.0}), "below the physical floor")


def test_an_a100_run_on_an_h100_entry_is_rejected(api: Api, users: Users) -> None:
    a100 = {"sku": "a100-sxm", "device_name": "NVIDIA A100-SXM4-80GB"}
    detail = _attack(api, users, lambda r: {"hardware": r.hardware.model_copy(update=a100)})
    _rejected_for(detail, "ran on a100-sxm")
    assert detail["entry"]["cost_usd"] is None


def test_one_gpu_runs_on_an_eight_gpu_entry_are_rejected(api: Api, users: Users) -> None:
    detail = _attack(api, users, lambda r: {"hardware": r.hardware.model_copy(update={"device_count": 1})})
    _rejected_for(detail, "ran on 1 GPU(s) per node, the config asks for 8")


def test_verifier_seeds_equal_to_the_claimed_seed_are_refused(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)  # the claim used seed 1; the site picks each run's seed itself
    assert complete(api, users, gpu_report(seeds=(1, 2, 3)), keep_seeds=True) == 422
    assert entry(api, sub["entry_id"])["entry"]["status"] == "pending" and board(api) == []


def test_an_unsealed_report_is_refused_on_a_gpt2_track(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    assert complete(api, users, gpu_report(sealed=False)) == 200
    _rejected_for(entry(api, sub["entry_id"]), "requires sealed verification")
    assert board(api) == []


def test_the_reports_summary_is_never_believed(api: Api, users: Users) -> None:
    # runs whose CORE fails the t-test, under a summary that says mean 0.9, p = 0
    rep = gpu_report(cores=(0.20, 0.30, 0.25))
    rep = rep.model_copy(update={"core": rep.core.model_copy(update={"mean": 0.9, "std": 0.0}), "p_value": 0.0})
    sub = submit(api, users.alice)
    assert complete(api, users, rep) == 200
    detail = entry(api, sub["entry_id"])
    assert detail["entry"]["status"] == "failed" and detail["entry"]["core_mean"] == pytest.approx(0.25)
    assert detail["verifications"][0]["p_value"] > 0.05 and board(api) == []


def test_deltas_are_the_sites_and_flag_a_100x_claim(api: Api, users: Users) -> None:
    sub = submit(api, users.alice, hours=0.015)  # claims 100x faster than the verified 1.5 h
    assert complete(api, users, gpu_report()) == 200  # the report carries no deltas
    detail = entry(api, sub["entry_id"])
    deltas = detail["verifications"][0]["deltas"]
    assert deltas["flagged"] is True and deltas["training_hours_ratio"] == pytest.approx(100.0)
    assert any("100.00x the claimed" in n for n in deltas["notes"])


def test_cost_is_the_entrys_class_at_the_reference_price(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    assert complete(api, users, gpu_report(hours=(1.5, 1.6, 1.7))) == 200
    e = entry(api, sub["entry_id"])["entry"]
    assert e["status"] == "verified" and e["rank"] == 1
    assert e["price_usd_per_gpu_hour"] == 3.0  # h100-sxm, never a fingerprint-derived SKU
    assert e["cost_usd"] == pytest.approx(1.6 * 8 * 3.0)


def test_a_v1_self_report_far_from_the_verifiers_clock_is_flagged_and_shown(api: Api, users: Users) -> None:
    assert BUILTIN_TRACKS["gpt2-cost"].rules_version == "speedrun-v2"
    sub = submit(api, users.alice)  # the claim is timed by the trainer itself (speedrun-v1)
    rep = forge_runs(gpu_report(), lambda r: {"self_reported_training_seconds": 60.0})
    assert complete(api, users, rep) == 200
    v = entry(api, sub["entry_id"])["verifications"][0]
    assert v["verdict"] == "verified" and v["site"]["clock_flagged"] is True  # shown, not a rejection
    assert "the trainer reports 60.0 s, the verifier's clock 5400.0 s" in v["site"]["clock_notes"][0]


def test_an_unsealed_report_still_verifies_on_the_cpu_track(api: Api, users: Users) -> None:
    # a laptop without bwrap verifies its own CPU run unsealed: the CPU track does not require a seal
    sub = api.post(protocol.SUBMISSIONS, json=submission_json(), token=users.alice).json()
    rep = report(BUILTIN_TRACKS["cpu-smoke"], run_config(), sealed=False)
    assert complete(api, users, rep, sku="cpu", gpus=0) == 200
    v = entry(api, sub["entry_id"])["verifications"][0]
    assert v["verdict"] == "verified" and v["site"]["sealed"] is False


def test_a_report_with_more_runs_than_its_lease_is_refused(api: Api, users: Users) -> None:
    # a worker that ran ten times and kept the best would report more runs than the one it leased
    sub = submit(api, users.alice)
    lease = lease_run(api, users.worker)
    rep = gpu_report(cores=(0.27, 0.28), hours=(1.5,) * 2, seeds=(lease["seed"], 14))
    body = {"lease_token": lease["lease_token"], "report": rep.model_dump(mode="json"), "artifacts": []}
    r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=users.worker)
    assert r.status_code == 422 and "the report has 2" in r.text
    assert entry(api, sub["entry_id"])["entry"]["status"] == "pending"


def test_a_verified_report_without_its_run_goes_back_to_the_queue(api: Api, users: Users) -> None:
    sub = submit(api, users.alice)
    lease = lease_run(api, users.worker)
    rep = gpu_report().model_copy(update={"runs": []})  # "verified", and the run left out
    body = {"lease_token": lease["lease_token"], "report": rep.model_dump(mode="json"), "artifacts": []}
    r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=users.worker)
    assert r.status_code == 200 and r.json()["status"] == "queued"  # for another account
    detail = entry(api, sub["entry_id"])
    assert detail["entry"]["status"] == "pending" and detail["verifications"] == []


def test_a_reference_entry_the_trainer_can_no_longer_plan_is_not_ranked(
    api: Api, users: Users, session: Session
) -> None:
    # e.g. a recipe the installed trainer dropped: the site cannot re-derive the runs, so it
    # refuses them instead of skipping the plan checks
    sub = submit(api, users.alice)
    row = session.get(Entry, sub["entry_id"])
    assert row is not None
    row.run_config = {**row.run_config, "recipe": "recipe_the_trainer_dropped"}
    session.flush()
    rep = gpu_report()
    rep = rep.model_copy(
        update={"run_config": rep.run_config.model_copy(update={"recipe": "recipe_the_trainer_dropped"})}
    )
    assert complete(api, users, rep) == 200
    detail = entry(api, sub["entry_id"])
    assert board(api) == []
    _rejected_for(detail, "the reference trainer cannot plan the entry's recipe and overrides")
