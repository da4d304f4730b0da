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


def complete(api: Api, users: Users, rep: VerificationReport, *, sku: str = "h100-sxm", gpus: int = 8) -> int:
    """Lease the next job as a fresh worker and complete it with ``rep``; returns the HTTP status."""
    fp = fingerprint(sku, gpus).model_dump(mode="json")
    lease = api.post(protocol.LEASE, json={"worker_id": f"w{next(_workers)}", "fingerprint": fp}, token=users.worker)
    assert lease.status_code == 200, lease.text
    body = {"lease_token": lease.json()["lease_token"], "report": rep.model_dump(mode="json"), "artifacts": []}
    r = api.post(protocol.COMPLETE.format(job_id=lease.json()["job_id"]), json=body, token=users.worker)
    return r.status_code


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
    """Lease as a fresh worker, upload a fork's diff (unless None) and complete with a report of a
    fork (``rep``, a passing one by default) carrying its summary (``diff``: ForkDiff fields over
    the defaults); returns the HTTP status."""
    fp = fingerprint("h100-sxm", 8).model_dump(mode="json")
    worker = {"worker_id": f"review-{next(_workers)}", "fingerprint": fp}
    lease = api.post(protocol.LEASE, json=worker, token=users.worker).json()
    job_id, token = lease["job_id"], lease["lease_token"]
    refs: list[dict[str, Any]] = []
    sha, size = "d" * 64, 900
    if diff_bytes is not None:
        up = api.post(
            protocol.ARTIFACTS.format(job_id=job_id) + "?name=fork.diff&kind=other",
            content=diff_bytes,
            headers={"X-Lease-Token": token},
            token=users.worker,
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
    rep = (rep or gpu_report(trainer=FORK)).model_copy(update={"fork_diff": summary})
    body = {"lease_token": token, "report": rep.model_dump(mode="json"), "artifacts": refs}
    r = api.post(protocol.COMPLETE.format(job_id=job_id), json=body, token=users.worker)
    return int(r.status_code)
