"""A real site for the page tests: uvicorn on 127.0.0.1 over a fresh SQLite database (seeded on start).

``site`` (session scope) runs the app in a background thread; ``Site`` helpers create users
through the real user service and build valid submissions from the contract models, so tests
drive the pages exactly as a person and a GPU worker would.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from contract.core_v1 import CORE_V1_EXAMPLES, CORE_V1_TASKS
from contract.schema import (
    ClaimDeltas,
    CoreResult,
    CoreTaskResult,
    Digests,
    ForkDiff,
    ForkDiffFile,
    HardwareFingerprint,
    LogFile,
    RunConfig,
    RunResult,
    StatSummary,
    Submission,
    Verdict,
    VerificationReport,
    VerifierIdentity,
)
from trainer.config import build_config
from trainer.plan import resolve

SECRET = "web-tests-secret-key-not-for-production"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def metrics_jsonl(seed: int, steps: int = 60, seconds_per_step: float = 90.0) -> str:
    """A plausible metrics log: a falling loss every step, val_bpb every 20 steps."""
    lines = []
    for step in range(1, steps + 1):
        loss = 2.6 + 7.0 / (1 + 0.15 * step) + 0.04 * (seed % 3)
        lines.append(json.dumps({"step": step, "loss": round(loss, 4), "training_seconds": step * seconds_per_step}))
        if step % 20 == 0:
            bpb = 0.70 + 0.6 / (1 + 0.1 * step)
            lines.append(
                json.dumps({"step": step, "val_bpb": round(bpb, 5), "training_seconds": step * seconds_per_step})
            )
    return "\n".join(lines) + "\n"


def core_tasks(core: float) -> dict[str, CoreTaskResult]:
    """A full CORE pass (22 tasks, every example) whose centered mean is ``core``, as the site re-derives."""
    out = {}
    for spec in CORE_V1_TASKS:
        b = 0.01 * spec.baseline_v1_percent
        out[spec.label] = CoreTaskResult(accuracy=b + core * (1 - b), centered=core, n=CORE_V1_EXAMPLES[spec.label])
    return out


def run_result(
    seed: int,
    *,
    core: float,
    hours: float,
    metrics: str,
    rules_version: str = "speedrun-v1",
    sealed: bool | None = None,
) -> RunResult:
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    tasks = core_tasks(core)
    plan = resolve(build_config("gpt2_speedrun", {"seed": seed}), 8)
    return RunResult(
        rules_version=rules_version,  # type: ignore[arg-type]
        sealed=sealed,
        run_id=f"run-seed{seed}",
        recipe="gpt2_speedrun",
        seed=seed,
        trainer_version="0.1.0",
        config={"model": {"depth": 24}},
        plan={"num_iterations": plan.num_iterations, "total_flops": plan.total_flops},
        training_seconds=hours * 3600,
        wall_seconds=hours * 3600 + 300,
        steps=plan.num_iterations,
        tokens=plan.total_tokens,
        flops=plan.total_flops,
        final_loss=2.71,
        val_bpb=0.7172 + 0.0001 * seed,
        core=CoreResult(core=core, bundle_sha256="a" * 64, tasks=tasks),
        mfu=0.52,
        attention_backend="fa3",
        hardware=HardwareFingerprint(
            sku="h100-sxm",
            device_type="cuda",
            device_name="NVIDIA H100 80GB HBM3",
            device_count=8,
            device_memory_bytes=85_520_809_984,
            driver_version="570.86.15",
            cuda_version="12.8",
            nccl_version="2.26.2",
            torch_version="2.13.0",
        ),
        digests=Digests(metrics_log_sha256=hashlib.sha256(metrics.encode()).hexdigest()),
        started_at=started,
        finished_at=started + timedelta(hours=hours, minutes=5),
    )


def submission(title: str, key: str, *, contributors: list[str] | None = None, description: str = "") -> dict[str, Any]:
    """A valid gpt2-8xh100 submission: two claimed runs, each with its metrics log attached. Its runs
    are its own (run ids and logs carry ``key``): the site refuses a byte copy of another's runs."""
    logs = {seed: json.dumps({"run": f"{key}-seed{seed}"}) + "\n" + metrics_jsonl(seed) for seed in (1, 2)}
    results = [
        run_result(1, core=0.2641, hours=1.52, metrics=logs[1]).model_copy(update={"run_id": f"{key}-seed1"}),
        run_result(2, core=0.2633, hours=1.55, metrics=logs[2]).model_copy(update={"run_id": f"{key}-seed2"}),
    ]
    sub = Submission(
        track="gpt2-8xh100",
        title=title,
        description=description,
        contributors=contributors or ["@tester"],
        run_config=RunConfig(
            trainer="reference@0.1.0",  # type: ignore[arg-type]
            recipe="gpt2_speedrun",
            hardware_class="h100-sxm",
            gpus_per_node=8,
            seed=1,
        ),
        claimed_results=results,
        logs=[LogFile(name=f"metrics-seed{seed}.jsonl", content=text) for seed, text in logs.items()],
        idempotency_key=key,
    )
    return sub.model_dump(mode="json")


VERIFIED_RUNS = ((11, 0.2620, 1.58), (12, 0.2650, 1.60), (13, 0.2638, 1.57))  # seed, CORE, hours


def _stat(values: list[float]) -> StatSummary:
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return StatSummary(mean=mean, std=std, n=n)


def _upload(api: httpx.Client, held: dict[str, Any], name: str, kind: str, text: str) -> dict[str, Any]:
    """Upload ``text`` as run-<i>/``name`` of the run ``held`` leases; its ArtifactRef."""
    up = api.post(
        f"/api/worker/jobs/{held['job_id']}/artifacts",
        params={"name": f"run-{held['run_index']}/{name}", "kind": kind},
        content=text.encode(),
        headers={"X-Lease-Token": held["lease_token"]},
    )
    assert up.status_code == 201, up.text
    return dict(up.json())


@dataclass
class Site:
    url: str
    app: Any
    _second_worker: str = ""

    def create_user(self, name: str, role: str) -> str:
        """A new user with ``role``; returns its API token (issued by the real user service)."""
        from leaderboard.users.models import Role
        from leaderboard.users.schemas import UserCreate
        from leaderboard.users.service import create_user

        with self.app.state.sessionmaker() as session:
            issued = create_user(session, UserCreate(name=name, role=Role(role)))
            session.commit()
        return issued.token

    def api(self, token: str | None = None) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    @staticmethod
    def submission(title: str, key: str, **kwargs: Any) -> dict[str, Any]:
        return submission(title, key, **kwargs)

    def second_worker(self) -> str:
        """A second worker account of this site (GPT-2 verifications count runs of two accounts)."""
        if not self._second_worker:
            self._second_worker = self.create_user(f"second-worker-{id(self)}", "worker")
        return self._second_worker

    def verify(
        self,
        worker_token: str,
        body: dict[str, Any],
        *,
        worker_id: str = "gpu-box-1",
        runs_spec: tuple[tuple[int, float, float], ...] = (),
        verdict: Verdict = Verdict.verified,
        p_value: float = 0.004,
        reasons: tuple[str, ...] = ("3 runs with distinct seeds; mean CORE above the threshold",),
        self_reported: tuple[float, ...] = (),
        fork_diff: str | None = None,
        lease: dict[str, Any] | None = None,
    ) -> int:
        """Act as GPU workers: lease each run of the next job of ``body``'s track in turn (runs 1 and
        3 by ``worker_token``'s account, run 2 by a second account: the GPT-2 tracks count runs of
        two), upload the run's metrics log and complete it with a one-run report (``runs_spec``:
        (seed, CORE, hours) per run, the seed replaced by the site's; by default
        ``VERIFIED_RUNS``, a pass). ``self_reported``: the trainer's own seconds per run
        (speedrun-v2, beside the clock; by default 97% of the clock); ``fork_diff``: a fork's diff,
        uploaded and summarized in each report; ``lease``: the first run's lease, already held
        (from ``lease()``). Returns the verification job's id."""
        spec = runs_spec or VERIFIED_RUNS
        track = body["track"]
        first = lease
        i, runs, job_id = 0, len(spec), 0
        while i < runs:
            token = worker_token if i % 2 == 0 else self.second_worker()
            held = first if (i == 0 and first is not None) else self.lease(token, body, worker_id=f"{worker_id}-{i}")
            runs, job_id = held["runs"], held["verification_job_id"]
            seed = held["seed"]
            spec_seed, core, hours = spec[held["run_index"]]
            rules = held["track"]["rules_version"]
            with self.api(token) as api:
                log = metrics_jsonl(spec_seed, seconds_per_step=hours * 3600 / 60)
                refs = [_upload(api, held, "metrics.jsonl", "metrics", log)]
                run = run_result(spec_seed, core=core, hours=hours, metrics=log, rules_version=rules, sealed=True)
                run = run.model_copy(update={"seed": seed})  # the seed the site picked for this run
                own = self_reported[held["run_index"]] if self_reported else (0.97 * hours * 3600)
                if self_reported or rules == "speedrun-v2":
                    run = run.model_copy(update={"self_reported_training_seconds": own, "clock_disagrees": False})
                diff = None
                if fork_diff is not None:
                    refs.append(_upload(api, held, "fork.diff", "other", fork_diff))
                    lines = fork_diff.splitlines()
                    files: dict[str, list[int]] = {}
                    for line in lines:
                        if line.startswith("+++ "):
                            counts = files.setdefault(line[4:].removeprefix("b/"), [0, 0])
                        elif line[:1] in "+-" and line and not line.startswith(("---", "+++")):
                            counts[0 if line[0] == "+" else 1] += 1
                    diff = ForkDiff(
                        base_commit="0123456789abcdef0123456789abcdef01234567",
                        files_changed=len(files),
                        files=[ForkDiffFile(path=p, insertions=a, deletions=d) for p, (a, d) in files.items()],
                        insertions=sum(1 for line in lines if line.startswith("+") and not line.startswith("+++")),
                        deletions=sum(1 for line in lines if line.startswith("-") and not line.startswith("---")),
                        sha256=refs[-1]["sha256"],
                        size_bytes=len(fork_diff.encode()),
                    )
                report = VerificationReport(
                    track=track,
                    verifier=VerifierIdentity(id=f"{worker_id}-{i}", version="0.1.0"),
                    run_config=RunConfig.model_validate(held["run_config"]),
                    runs=[run],
                    core=_stat([core]),
                    core_threshold=held["track"]["threshold"],
                    alpha=held["track"]["alpha"],
                    p_value=p_value,
                    training_hours=_stat([hours]),
                    deltas=ClaimDeltas(training_hours=0.045),
                    verdict=verdict,
                    reasons=list(reasons),
                    created_at=datetime.now(UTC),
                    rules_version=rules,
                    sealed=True,
                    fork_diff=diff,
                )
                done = api.post(
                    f"/api/worker/jobs/{held['job_id']}/complete",
                    json={
                        "lease_token": held["lease_token"],
                        "report": report.model_dump(mode="json"),
                        "artifacts": refs,
                    },
                )
                assert done.status_code == 200, done.text
            i += 1
        return int(job_id)

    def lease(self, worker_token: str, body: dict[str, Any], *, worker_id: str = "gpu-box-1") -> dict[str, Any]:
        """Lease the next run of ``body``'s track as a worker with its hardware (the lease's JSON)."""
        fingerprint = body["claimed_results"][0]["hardware"]
        with self.api(worker_token) as api:
            r = api.post(
                "/api/worker/lease",
                json={"worker_id": worker_id, "fingerprint": fingerprint, "tracks": [body["track"]]},
            )
        assert r.status_code == 200, r.text
        return dict(r.json())

    def submit(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.api(token) as client:
            r = client.post("/api/submissions", json=body)
        assert r.status_code in (200, 201), r.text
        return dict(r.json())


WAIT_MS = 15_000


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A desktop browser page that fails the test on any console error (a resource the
    Content-Security-Policy refused, a failed load, an uncaught exception)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT_MS)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # a form answered with 422 (validation), 409 (a refused copy) or 401 (sign-in), or an error
    # page asked for on purpose (404), is the page working as meant
    expected = ("status of 422", "status of 401", "status of 404", "status of 409")

    def on_console(msg: Any) -> None:
        if msg.type == "error" and not any(e in msg.text for e in expected):
            errors.append(msg.text)

    pg.on("console", on_console)
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], f"errors in the browser console: {errors}"


@pytest.fixture(scope="session")
def make_submission() -> Any:
    """``make_submission(title, idempotency_key, **kwargs)``: a valid submission body (a dict)."""
    return submission


@contextmanager
def serve(home: Path, database_url: str, *, cache_ttl_seconds: float = 0) -> Iterator[Site]:
    """The site on a free port of 127.0.0.1 (uvicorn in a thread) over ``database_url``; its read
    caches off unless ``cache_ttl_seconds`` says how long they keep a value."""
    import uvicorn

    from leaderboard.settings import Settings
    from speedrun.site import create_app

    port = _free_port()
    settings = Settings(
        home=home,
        database_url=database_url,
        base_url=f"http://127.0.0.1:{port}",
        secret_key=SECRET,
        cache_ttl_seconds=cache_ttl_seconds,
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="web-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the site did not start on 127.0.0.1 (see the log above)")
        time.sleep(0.05)
    try:
        yield Site(url=f"http://127.0.0.1:{port}", app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The site over a fresh SQLite file, seeded on start."""
    home: Path = tmp_path_factory.mktemp("site")
    with serve(home, f"sqlite:///{home / 'site.db'}") as running:
        yield running


@pytest.fixture(scope="module")
def own_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A site of one test module's own, over a fresh SQLite file (nothing another module queued
    can be leased there, and the module decides what every track holds)."""
    home: Path = tmp_path_factory.mktemp("own-site")
    with serve(home, f"sqlite:///{home / 'site.db'}") as running:
        yield running


@pytest.fixture(scope="module")
def pg_site(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The site over its own fresh database on the PostgreSQL server of ``postgres_url``."""
    import uuid

    import psycopg

    admin = postgres_url.replace("postgresql+psycopg://", "postgresql://", 1).rsplit("/", 1)[0] + "/postgres"
    name = f"speedrun_web_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with serve(tmp_path_factory.mktemp("pg-site"), postgres_url.rsplit("/", 1)[0] + f"/{name}") as running:
            yield running
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
