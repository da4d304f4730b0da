"""Driving one verification through the real API: submit, lease as a worker, complete with a report."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from typing import Any

from lb_factories import fingerprint, report, run_config, submission
from lb_support import Api, Users

from contract import protocol
from contract.schema import ForkDiff, RunConfig, VerificationReport
from contract.tracks import BUILTIN_TRACKS, TrackRules

GPU = {"track": "gpt2-cost", "sku": "h100-sxm", "gpus": 8}
FORK = {"kind": "git", "git_url": "https://example.org/someone/fork.git", "commit": "c" * 40}
_workers = itertools.count()


def gpu_config(trainer: dict[str, Any] | None = None) -> RunConfig:
    cfg = run_config("h100-sxm", 8, "gpt2_speedrun")
    return cfg if trainer is None else cfg.model_copy(update={"trainer": cfg.trainer.model_validate(trainer)})


def submit(api: Api, token: str, *, trainer: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    params = {**GPU, "hours": 1.2, "core": 0.28, **kw}
    body = json.loads(submission(**params).model_dump_json())
    if trainer is not None:
        body["run_config"]["trainer"] = trainer
    r = api.post(protocol.SUBMISSIONS, json=body, token=token)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def lease_run(api: Api, token: str, *, sku: str = "h100-sxm", gpus: int = 8) -> dict[str, Any]:
    """Lease the next run as a fresh worker of the account ``token``."""
    fp = fingerprint(sku, gpus).model_dump(mode="json")
    lease = api.post(protocol.LEASE, json={"worker_id": f"w{next(_workers)}", "fingerprint": fp}, token=token)
    assert lease.status_code == 200, lease.text
    out: dict[str, Any] = lease.json()
    return out


def run_report(rep: VerificationReport, lease: dict[str, Any], *, keep_seed: bool = False) -> VerificationReport:
    """``rep``'s run of the leased run index, as a one-run report with the site's seed."""
    run = rep.runs[lease["run_index"]]
    if not keep_seed:
        run = run.model_copy(update={"seed": lease["seed"]})
    return rep.model_copy(update={"runs": [run]})


def complete(
    api: Api, users: Users, rep: VerificationReport, *, sku: str = "h100-sxm", gpus: int = 8, keep_seeds: bool = False
) -> int:
    """Verify the next job with ``rep``'s runs: each run leased by a fresh worker, the two worker
    accounts taking turns (GPT-2 tracks count runs of two accounts), and completed with its run
    of ``rep`` (the site's seed unless ``keep_seeds``); returns the first non-200 status, else 200."""
    i, runs = 0, 1
    while i < runs:
        token = users.worker2 if i % 2 else users.worker
        lease = lease_run(api, token, sku=sku, gpus=gpus)
        runs = lease["runs"]
        one = run_report(rep, lease, keep_seed=keep_seeds)
        body = {"lease_token": lease["lease_token"], "report": one.model_dump(mode="json"), "artifacts": []}
        r = api.post(protocol.COMPLETE.format(job_id=lease["job_id"]), json=body, token=token)
        if r.status_code != 200:
            return r.status_code
        i += 1
    return 200


def gpu_report(
    *,
    cores: tuple[float, ...] = (0.27, 0.28, 0.29),
    hours: tuple[float, ...] = (1.5, 1.5, 1.5),
    seeds: tuple[int, ...] = (11, 12, 13),
    trainer: dict[str, Any] | None = None,
    track: TrackRules | None = None,
    **kw: Any,
) -> VerificationReport:
    track = track or BUILTIN_TRACKS["gpt2-cost"]
    return report(track, gpu_config(trainer), seeds=seeds, cores=cores, hours=hours, sku="h100-sxm", gpus=8, **kw)


def forge_runs(rep: VerificationReport, change: Callable[[Any], dict[str, Any]]) -> VerificationReport:
    """The same report with every run changed by ``change(run) -> update``."""
    return rep.model_copy(update={"runs": [r.model_copy(update=change(r)) for r in rep.runs]})


def entry(api: Api, entry_id: int) -> dict[str, Any]:
    r = api.get(f"/api/entries/{entry_id}")
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def board(api: Api, track: str = "gpt2-cost") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = api.get(f"/api/tracks/{track}/leaderboard").json()["rows"]
    return [r for r in rows if r["section"] == "verified"]


def complete_fork(
    api: Api, users: Users, diff_bytes: bytes | None, *, rep: VerificationReport | None = None, **diff: Any
) -> int:
    """Verify the next job as a fork's: each run leased by a fresh worker of the two accounts in
    turn, which uploads the fork's diff (unless None) and completes its run of a fork report
    (``rep``, a passing one by default) carrying the diff's summary (``diff``: ForkDiff fields over
    the defaults); returns the first non-200 HTTP status, else 200."""
    fp = fingerprint("h100-sxm", 8).model_dump(mode="json")
    i, runs = 0, 1
    while i < runs:
        account = users.worker2 if i % 2 else users.worker
        worker = {"worker_id": f"review-{next(_workers)}", "fingerprint": fp}
        lease = api.post(protocol.LEASE, json=worker, token=account).json()
        job_id, token, runs = lease["job_id"], lease["lease_token"], lease["runs"]
        refs: list[dict[str, Any]] = []
        sha, size = "d" * 64, 900
        if diff_bytes is not None:
            up = api.post(
                protocol.ARTIFACTS.format(job_id=job_id) + f"?name=run-{lease['run_index']}/fork.diff&kind=other",
                content=diff_bytes,
                headers={"X-Lease-Token": token},
                token=account,
            )
            assert up.status_code == 201, up.text
            refs.append(up.json())
            sha, size = up.json()["sha256"], len(diff_bytes)
        files = [
            {"path": "scorer.py", "insertions": 10, "deletions": 3},
            {"path": "model.py", "insertions": 2, "deletions": 0},
        ]
        fields = {"base_commit": "a" * 40, "files_changed": 2, "insertions": 12, "deletions": 3, "files": files, **diff}
        summary = ForkDiff.model_validate({"sha256": sha, "size_bytes": size, **fields})
        one = run_report((rep or gpu_report(trainer=FORK)).model_copy(update={"fork_diff": summary}), lease)
        body = {"lease_token": token, "report": one.model_dump(mode="json"), "artifacts": refs}
        r = api.post(protocol.COMPLETE.format(job_id=job_id), json=body, token=account)
        if r.status_code != 200:
            return int(r.status_code)
        i += 1
    return 200
