"""The GPU-node side of the verification queue (`speedrun worker --server URL --token T`).

Loop: lease one run of a verification job (the lease expires unless renewed; the site picks the
run's seed, and several nodes run one job's runs at once), heartbeat with progress (step, ETA)
while ``verify`` runs it, upload the artifacts (the run's result, metrics and logs, its report and
summary, under ``run-<i>/``), then complete the run with its report, whatever its verdict. A crash inside the worker
fails the job with the traceback; an interrupted worker gives the job back (retryable). A node
lock (``flock`` on ``<work_dir>/worker.lock`` by default) keeps two workers that share a work dir
from running jobs at once, and the client's retries carry the worker over a restart of the server.
A worker refuses (retryable fail) a job whose hardware its own fingerprint does not match.

Several workers may share one machine (``--threads``: each its share of the CPUs): every worker
adds its work dir to this user's list (``~/.cache/speedrun/worker-dirs.txt``, under the HOME no run
sees), and masks every work dir on it in its sandboxes, so no run reads another worker's jobs (a
finished checkpoint of someone else's run, say) when those dirs lie in a tree a sandbox binds.

A worker leases nothing where it cannot seal what its tracks require: before its first lease it
launches the sandbox probe (``submissions.sandbox.probe``, the very launch a job uses, with the
GPU binds on a GPU node) and raises ``NodeCannotSeal`` when it fails, unless every track it
leases is a CPU track (there the installed reference trainer may run unsealed, and forks are
refused). Job directories are deleted after their upload, the last ``keep_job_dirs`` kept.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from contract import LOG_FILE, METRICS_FILE, RESULT_FILE
from contract.protocol import (
    MAX_ARTIFACT_BYTES,
    ArtifactKind,
    ArtifactRef,
    Heartbeat,
    JobComplete,
    JobFail,
    JobLease,
    JobProgress,
    JobState,
    LeaseRequest,
)
from contract.schema import HardwareFingerprint, Verdict
from contract.tracks import BUILTIN_TRACKS
from submissions import artifacts
from submissions.client import Client, ClientError
from submissions.hardware import local_fingerprint
from submissions.report import write_report
from submissions.sandbox import sandbox_problem
from submissions.verify import FORK_DIFF_FILE, PROCESS_LOG_FILE, REPORT_FILE, SUMMARY_FILE, verify

LOCK_FILE = "worker.lock"
WORK_DIRS_FILE = Path(".cache") / "speedrun" / "worker-dirs.txt"  # under HOME: every worker's work dir
KEEP_JOB_DIRS = 3
# Artifact files of a run directory, uploaded under run-<i>/<name>.
# (name in the upload, kind, path under run-<i>/, cap). Files under out/ were written by the run.
_RUN_FILES: tuple[tuple[str, ArtifactKind, str, int], ...] = (
    (RESULT_FILE, "result", f"out/{RESULT_FILE}", artifacts.RESULT_CAP),
    (METRICS_FILE, "metrics", f"out/{METRICS_FILE}", artifacts.METRICS_CAP),
    (LOG_FILE, "log", f"out/{LOG_FILE}", artifacts.LOG_CAP),
    (PROCESS_LOG_FILE, "log", PROCESS_LOG_FILE, artifacts.LOG_CAP),
)


def _say(message: str) -> None:
    print(f"speedrun worker: {message}", file=sys.stderr, flush=True)


class NodeCannotSeal(Exception):
    """This node cannot run sealed steps, and its tracks need them: it must not lease."""


def seal_needed(tracks: list[str] | None) -> bool:
    """Whether leasing these tracks needs a sandbox: all but CPU tracks (None: any track)."""
    if not tracks:
        return True
    return any(t not in BUILTIN_TRACKS or BUILTIN_TRACKS[t].hardware_classes != ["cpu"] for t in tracks)


def hardware_mismatch(lease: JobLease, fingerprint: HardwareFingerprint) -> str | None:
    """Why this node cannot run the leased job (None when it can)."""
    config = lease.run_config
    gpus = 0 if fingerprint.device_type == "cpu" else fingerprint.device_count
    if fingerprint.sku != config.hardware_class:
        return f"this worker is {fingerprint.sku} ({fingerprint.device_name}); the job needs {config.hardware_class}"
    if gpus < config.gpus_per_node:
        return f"this worker has {gpus} GPU(s); the job needs {config.gpus_per_node} per node"
    if fingerprint.nodes < config.nodes:
        return f"this worker spans {fingerprint.nodes} node(s); the job needs {config.nodes}"
    return lease.track.allows_hardware(fingerprint.sku, config.gpus_per_node, config.nodes)


class _Heartbeat(threading.Thread):
    """Renews the lease with the latest progress; sets ``lost`` when the lease is gone or cancelled."""

    def __init__(self, client: Client, lease: JobLease, interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{lease.job_id}", daemon=True)
        self.client = client
        self.lease = lease
        self.interval_s = interval_s
        self.progress = JobProgress(run_index=lease.run_index or 0, runs=lease.runs, message="preparing the trainer")
        self.stop = threading.Event()
        self.lost = threading.Event()  # also the verifier's cancel event
        self.why_lost = ""
        self.sent = 0
        self.expires_mono = self._monotonic_expiry(lease.lease_expires_at)

    @staticmethod
    def _monotonic_expiry(expires_at: datetime) -> float:
        return time.monotonic() + (expires_at - datetime.now(UTC)).total_seconds()

    def run(self) -> None:
        while not self.stop.wait(self.interval_s):
            self.beat()

    def beat(self) -> None:
        try:
            # retried while the site is unreachable, but never past the lease's expiry: a short
            # restart of the site is ridden out by a heartbeat that lands while the lease holds
            reply = self.client.heartbeat(
                self.lease.job_id,
                Heartbeat(lease_token=self.lease.lease_token, progress=self.progress),
                retry_until=self.expires_mono,
            )
        except ClientError as exc:
            if exc.status in (403, 404, 409, 410):
                self.why_lost = f"lease lost: {exc}"
                self.lost.set()
                self.stop.set()
            else:
                _say(f"heartbeat of job {self.lease.job_id} failed, will retry: {exc}")
            return
        self.sent += 1
        self.expires_mono = self._monotonic_expiry(reply.lease_expires_at)
        if reply.cancel:
            self.why_lost = "the server cancelled the job"
            self.lost.set()
            self.stop.set()


class Worker:
    """Leases verification jobs from the service and runs them, one at a time per node."""

    def __init__(
        self,
        client: Client,
        *,
        worker_id: str,
        work_dir: Path,
        poll_interval_s: float = 15.0,
        fingerprint: HardwareFingerprint | None = None,
        tracks: list[str] | None = None,
        run_timeout_s: float | None = None,
        lock_path: Path | None = None,
        keep_job_dirs: int = KEEP_JOB_DIRS,
        smoke_steps: int | None = None,
        allow_local_git: bool = False,
        hidden: list[Path] | None = None,
        threads: int | None = None,
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s: must be > 0")
        if not worker_id or len(worker_id) > 100:
            raise ValueError("worker_id: 1 to 100 characters")
        if keep_job_dirs < 0:
            raise ValueError("keep_job_dirs: must be >= 0")
        if threads is not None and threads < 1:
            raise ValueError("threads: must be >= 1")
        self.client = client
        self.worker_id = worker_id
        self.work_dir = Path(work_dir)
        self.poll_interval_s = poll_interval_s
        self._fingerprint = fingerprint
        self.tracks = tracks
        self.run_timeout_s = run_timeout_s  # None: each track's default cap (never unbounded)
        self.allow_local_git = allow_local_git
        self.hidden = [self.work_dir.resolve(), Path.home(), *(hidden or [])]
        self.lock_path = lock_path or self.work_dir / LOCK_FILE
        self.keep_job_dirs = keep_job_dirs
        self.smoke_steps = smoke_steps
        self.threads = threads  # CPU threads per sandboxed step (None: the CPUs free)
        self.stop_event = threading.Event()
        self._checked = False

    @property
    def fingerprint(self) -> HardwareFingerprint:
        if self._fingerprint is None:
            self._fingerprint = local_fingerprint()
        return self._fingerprint

    @contextlib.contextmanager
    def _node_lock(self) -> Iterator[bool]:
        """Hold the node lock for one job; yields False when another worker holds it."""
        from filelock import FileLock, Timeout

        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.lock_path))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    def hidden_paths(self) -> list[Path]:
        """What no sandboxed step of this worker may see: its own work dir, HOME, the paths it was given,
        and the work dir of every worker of this user on this machine (registering its own)."""
        from filelock import FileLock

        own = self.work_dir.resolve()
        registry = Path.home() / WORK_DIRS_FILE
        registry.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{registry}.lock"):
            listed = registry.read_text(encoding="utf-8").splitlines() if registry.is_file() else []
            known = [p for p in listed if p and p != str(own) and Path(p).is_dir()]  # gone ones pruned
            registry.write_text("\n".join([*known, str(own)]) + "\n", encoding="utf-8")
        return [*self.hidden, *(Path(p) for p in known)]

    def check_node(self) -> str | None:
        """Why this node must not lease (it cannot seal what its tracks require), else None."""
        problem = sandbox_problem(gpu=self.fingerprint.device_type == "cuda")
        if problem is None or not seal_needed(self.tracks):
            return None
        which = ",".join(self.tracks) if self.tracks else "any track"
        return (
            f"this node cannot seal sandboxed steps ({problem}); {which} needs sealed runs, so it leases "
            "nothing. Run `speedrun doctor` for the same probe, and see docs/deploy.md (sandbox)."
        )

    def run_once(self) -> JobState | None:
        """Lease and run at most one job; None when there was no job (or the node is busy).

        Raises NodeCannotSeal (before any lease) when the node cannot seal what its tracks need."""
        if not self._checked:
            why = self.check_node()
            if why is not None:
                raise NodeCannotSeal(why)
            self._checked = True
        with self._node_lock() as held:
            if not held:
                _say(f"another worker holds {self.lock_path}; not leasing")
                return None
            lease = self.client.lease(
                LeaseRequest(worker_id=self.worker_id, fingerprint=self.fingerprint, tracks=self.tracks)
            )
            if lease is None:
                return None
            if lease.run_index is not None:
                _say(
                    f"leased run {lease.run_index + 1}/{lease.runs} of job {lease.verification_job_id} "
                    f"(run job {lease.job_id}, attempt {lease.attempt}, track {lease.track.slug}, seed {lease.seed})"
                )
            else:
                _say(
                    f"leased job {lease.job_id} (attempt {lease.attempt}, track {lease.track.slug}, {lease.runs} runs)"
                )
            return self._run_job(lease)

    def run_forever(self) -> None:
        """Run jobs until ``stop_event`` is set; waits ``poll_interval_s`` when the queue is empty."""
        _say(f"{self.worker_id} polling for jobs ({self.fingerprint.sku}, {self.fingerprint.device_name})")
        while not self.stop_event.is_set():
            try:
                state = self.run_once()
            except ClientError as exc:
                _say(f"request to the server failed, polling again in {self.poll_interval_s:.0f} s: {exc}")
                state = None
            if state is None:
                self.stop_event.wait(self.poll_interval_s)

    # -- one job ---------------------------------------------------------------------------

    def _run_job(self, lease: JobLease) -> JobState | None:
        mismatch = hardware_mismatch(lease, self.fingerprint)
        if mismatch is not None:
            _say(f"refusing job {lease.job_id}: {mismatch}")
            return self.client.fail(
                lease.job_id,
                JobFail(lease_token=lease.lease_token, reason=f"worker refused: {mismatch}", retryable=True),
            )

        if (problem := sandbox_problem()) is not None:
            _say(f"no sandbox on this node ({problem}): forks are refused, the reference trainer runs UNSEALED")
        job_dir = self.work_dir / f"job-{lease.job_id}-attempt-{lease.attempt}"
        if job_dir.exists():
            shutil.rmtree(job_dir)
        beat = _Heartbeat(self.client, lease, interval_s=max(0.5, min(30.0, lease.lease_seconds / 4)))

        one_run = lease.run_index is not None and lease.seed is not None

        def on_progress(p: JobProgress) -> None:
            if one_run and lease.run_index is not None:  # verify() sees one run: say which of the k it is
                label = f"run {lease.run_index + 1}/{lease.runs}"
                message = label + p.message[len("run 1/1") :] if p.message.startswith("run 1/1") else p.message
                p = p.model_copy(update={"run_index": lease.run_index, "runs": lease.runs, "message": message})
            beat.progress = p

        beat.beat()
        beat.start()
        try:
            report = verify(
                lease.run_config,
                track=lease.track,
                runs=1 if one_run else lease.runs,
                seeds=[lease.seed] if one_run and lease.seed is not None else None,
                one_run_of=lease.runs if one_run else None,
                out_dir=job_dir,
                claimed=lease.claimed_results,
                progress=on_progress,
                run_timeout_s=self.run_timeout_s,
                verifier_id=self.worker_id,
                cancel=beat.lost,
                smoke_steps=self.smoke_steps,
                fingerprint=self.fingerprint,
                allow_local_git=self.allow_local_git,
                hidden=self.hidden_paths(),
                threads=self.threads,
            )
        except KeyboardInterrupt:
            beat.stop.set()
            self._give_back(lease, "the worker was interrupted", retryable=True)
            raise
        except Exception as exc:
            beat.stop.set()
            _say(f"job {lease.job_id} crashed the worker: {exc!r}")
            return self._give_back(lease, f"worker error: {exc!r}", traceback.format_exc(), retryable=False)
        finally:
            beat.stop.set()
            beat.join(timeout=30)
        if beat.lost.is_set():
            _say(f"job {lease.job_id} abandoned: {beat.why_lost}")
            if beat.why_lost.startswith("lease lost"):
                return None
            return self._give_back(lease, beat.why_lost, report.log_tail or "", retryable=False)
        try:
            refs = self._upload(lease, job_dir)
        except (artifacts.ArtifactError, OSError) as exc:
            # a file the run planted (a link, a FIFO, a huge file) is the run's fault, not the node's:
            # the run is reported as an error without its files (the site hands it to other accounts,
            # and a hostile fork cannot get honest workers paused), and the worker keeps serving
            reason = getattr(exc, "reason", None) or f"reading the job's files failed: {exc}"
            _say(f"job {lease.job_id}: {reason}; reporting the run as an error without its files")
            reasons = list(report.reasons) if report.verdict == Verdict.error else [reason, *report.reasons]
            report = report.model_copy(update={"verdict": Verdict.error, "runs": [], "reasons": reasons})
            write_report(report, job_dir)
            try:
                refs = self._upload(lease, job_dir, own_files_only=True)
            except (artifacts.ArtifactError, OSError) as again:
                why = getattr(again, "reason", None) or f"reading the job's files failed: {again}"
                return self._give_back(lease, why, report.log_tail or "", retryable=False)
        state = self._complete(lease, JobComplete(lease_token=lease.lease_token, report=report, artifacts=refs))
        _say(f"job {lease.job_id}: verdict {report.verdict.value}, {len(refs)} artifacts, status {state.status}")
        self._prune()
        return state

    def _prune(self) -> None:
        """Delete uploaded job directories but the newest ``keep_job_dirs``."""
        jobs = [p for p in self.work_dir.glob("job-*") if p.is_dir() and not p.is_symlink()]
        jobs.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        for old in jobs[self.keep_job_dirs :]:
            shutil.rmtree(old, ignore_errors=True)

    def _complete(self, lease: JobLease, body: JobComplete) -> JobState:
        """Complete the job. A server may answer an upload before its transaction is visible to the
        next request (it commits after responding); a 422 saying an artifact "was not uploaded"
        is then retried a few times, loudly, before it is believed."""
        for delay_s in (0.5, 1.0, 2.0, 4.0):
            try:
                return self.client.complete(lease.job_id, body)
            except ClientError as exc:
                if exc.status != 422 or "was not uploaded" not in str(exc):
                    raise
                _say(f"the server does not see an upload of job {lease.job_id} yet, retrying in {delay_s} s: {exc}")
                time.sleep(delay_s)
        return self.client.complete(lease.job_id, body)

    def _give_back(self, lease: JobLease, reason: str, log_tail: str = "", *, retryable: bool) -> JobState | None:
        try:
            return self.client.fail(
                lease.job_id,
                JobFail(
                    lease_token=lease.lease_token,
                    reason=reason[:2000],
                    log_tail=log_tail[-64_000:],
                    retryable=retryable,
                ),
            )
        except ClientError as exc:
            _say(f"could not report the failure of job {lease.job_id}: {exc}")
            return None

    def _upload(self, lease: JobLease, job_dir: Path, *, own_files_only: bool = False) -> list[ArtifactRef]:
        """Each run's files and the report, read as regular files only (O_NOFOLLOW, capped): a
        symlink, FIFO, device or oversized file raises ArtifactError naming it, nothing more is
        sent. ``own_files_only``: only what the worker itself wrote (the report, its summary, the
        process logs), none of the files the run wrote under out/."""
        files: list[tuple[str, ArtifactKind, str, int]] = []
        # one run of a verification: its files go up as run-<its index>/..., the report's too
        index = lease.run_index
        for run_dir in sorted(p for p in job_dir.glob("run-*") if p.is_dir() and not p.is_symlink()):
            name_dir = run_dir.name if index is None else f"run-{index}"
            for name, kind, rel, cap in _RUN_FILES:
                if not (own_files_only and rel.startswith("out/")):
                    files.append((f"{name_dir}/{name}", kind, f"{run_dir.name}/{rel}", cap))
        cap = MAX_ARTIFACT_BYTES
        prefix = "" if index is None else f"run-{index}/"
        files += [
            (prefix + REPORT_FILE, "report", REPORT_FILE, cap),
            (prefix + SUMMARY_FILE, "other", SUMMARY_FILE, cap),
        ]
        files.append((prefix + FORK_DIFF_FILE, "other", FORK_DIFF_FILE, cap))
        refs: list[ArtifactRef] = []
        for name, kind, rel, limit in files:
            try:
                data = artifacts.read_bytes(job_dir, rel, min(limit, MAX_ARTIFACT_BYTES), label=name)
            except FileNotFoundError:
                continue
            refs.append(self.client.upload_artifact(lease.job_id, lease.lease_token, name=name, kind=kind, data=data))
        return refs
