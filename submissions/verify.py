"""Reproduce a run config k times with distinct seeds and decide with the track's statistics.

Flow of ``verify``:

1. prepare the trainer source: the installed reference trainer when its version matches; for a
   git fork a clone at the pinned commit, installed (``pip install --no-deps -e``) into an
   isolated virtual environment that sees this machine's site-packages (torch is not downloaded
   again), run as an unprivileged user when the verifier runs as root;
2. run ``speedrun train`` once per seed, each in its own process group with a time cap
   (``torchrun`` when the config has several GPUs per node or several nodes), tailing its
   ``metrics.jsonl`` for progress;
3. read every ``result.json``, check the metrics log digest, and apply ``stats.decide``;
4. write ``report.json`` and a human ``summary.txt`` in ``out_dir``.

A run that crashes, exceeds its time cap or leaves an invalid result makes the verdict ``error``
with the log tail of that run, and no statistics at all (never a half-report). Production
workers run all this inside the CUDA trainer image (docker/), which adds the container boundary
around the unprivileged fork process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from submissions.protocol import JobProgress
from submissions.schema import (
    LOG_FILE,
    METRICS_FILE,
    RESULT_FILE,
    RunConfig,
    RunResult,
    Submission,
    TrainerSource,
    Verdict,
    VerificationReport,
    VerifierIdentity,
)
from submissions.stats import decide, same_overrides
from submissions.tracks import BF16_PEAK_FLOPS, TrackRules

REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.txt"
PROCESS_LOG_FILE = "process.log"  # stdout + stderr of the trainer process, kept by the verifier
DEFAULT_SANDBOX_USER = "nobody"
PREPARE_TIMEOUT_S = 900.0
LOG_TAIL_LINES = 80
LOG_TAIL_CHARS = 16_000
POLL_INTERVAL_S = 0.5
# A reference config whose plan needs more than this many hours at 100% MFU is refused by the
# pre-screen (the public record takes 1.65 h on 8xH100; this bounds a verification's GPU bill).
MAX_HOURS_AT_PEAK = 24.0
# Environment variables never handed to trainer processes (a fork's code must not see credentials).
_SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY", "PRIVATE_KEY")

ProgressCallback = Callable[[JobProgress], None]


class VerifyError(Exception):
    """A run could not produce a valid result; ``log_tail`` holds the end of its log."""

    def __init__(self, reason: str, log_tail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


class TrainerUnavailable(VerifyError):
    """The trainer source cannot be prepared on this machine."""


# -- trainer sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedTrainer:
    """How to start ``speedrun`` of a given trainer source."""

    python: str
    cwd: Path | None
    label: str
    run_as: tuple[int, int] | None = None  # (uid, gid) of the unprivileged user, or None
    extra_env: dict[str, str] = field(default_factory=dict)


def _installed_commit() -> str | None:
    """The git commit of the installed reference trainer when it runs from a checkout."""
    import speedrun

    root = Path(speedrun.__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def reference_matches(version: str) -> bool:
    """Whether ``reference@version`` is the trainer installed here (release version or commit)."""
    from speedrun import __version__

    if version == __version__:
        return True
    commit = _installed_commit()
    is_hex = len(version) >= 7 and all(c in "0123456789abcdef" for c in version)
    return bool(commit and is_hex and commit.startswith(version))


def _sandbox_ids(user: str | None) -> tuple[int, int] | None:
    if user is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        pw = pwd.getpwnam(user)
    except KeyError as exc:
        raise TrainerUnavailable(f"sandbox user {user!r} does not exist on this machine") from exc
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path: Path, ids: tuple[int, int]) -> None:
    os.chown(path, *ids)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(root, name), *ids, follow_symlinks=False)


def _run_checked(cmd: list[str], *, cwd: Path | None = None, timeout_s: float, what: str) -> str:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        raise TrainerUnavailable(f"{what}: timed out after {timeout_s:.0f} s") from exc
    except OSError as exc:
        raise TrainerUnavailable(f"{what}: {exc}") from exc
    if proc.returncode != 0:
        raise TrainerUnavailable(f"{what}: exit code {proc.returncode}", _tail(proc.stdout + proc.stderr))
    return proc.stdout


def prepare_trainer(
    source: TrainerSource,
    work_dir: Path,
    *,
    sandbox_user: str | None = DEFAULT_SANDBOX_USER,
    timeout_s: float = PREPARE_TIMEOUT_S,
) -> PreparedTrainer:
    """Make ``source`` runnable; raises TrainerUnavailable naming the problem."""
    if source.kind == "reference":
        assert source.version is not None
        if not reference_matches(source.version):
            from speedrun import __version__

            raise TrainerUnavailable(
                f"trainer: reference@{source.version} is not installed here (installed {__version__}, "
                f"commit {_installed_commit() or 'unknown'}); submit it as a git trainer at that commit"
            )
        return PreparedTrainer(python=sys.executable, cwd=None, label=source.label())

    assert source.git_url is not None and source.commit is not None
    work_dir.mkdir(parents=True, exist_ok=True)
    src = work_dir / "trainer-src"
    venv = work_dir / "trainer-venv"
    for stale in (src, venv):
        if stale.exists():
            shutil.rmtree(stale)
    _run_checked(["git", "init", "-q", str(src)], timeout_s=60, what="git init")
    _run_checked(["git", "-C", str(src), "remote", "add", "origin", source.git_url], timeout_s=60, what="git remote")
    try:
        _run_checked(
            ["git", "-C", str(src), "fetch", "-q", "--depth", "1", "origin", source.commit],
            timeout_s=timeout_s,
            what=f"git fetch {source.git_url} {source.commit}",
        )
    except TrainerUnavailable:  # servers that refuse fetching a bare commit: fetch everything
        _run_checked(
            ["git", "-C", str(src), "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*"],
            timeout_s=timeout_s,
            what=f"git fetch {source.git_url}",
        )
    _run_checked(
        ["git", "-C", str(src), "checkout", "-q", "--detach", source.commit],
        timeout_s=120,
        what=f"git checkout {source.commit} (is it a commit of {source.git_url}?)",
    )
    head = _run_checked(["git", "-C", str(src), "rev-parse", "HEAD"], timeout_s=60, what="git rev-parse").strip()
    if head != source.commit:
        raise TrainerUnavailable(f"trainer.commit: checked out {head}, expected {source.commit}")
    _run_checked(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        timeout_s=300,
        what="python -m venv",
    )
    python = str(venv / "bin" / "python")
    _run_checked(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(src)],
        timeout_s=timeout_s,
        what="pip install -e (the fork)",
    )
    run_as = _sandbox_ids(sandbox_user)
    if run_as is not None:
        _chown_tree(work_dir, run_as)
        try:
            probe = subprocess.run(
                [python, "-c", "import speedrun"],
                cwd=src,
                capture_output=True,
                text=True,
                timeout=120,
                user=run_as[0],
                group=run_as[1],
                extra_groups=[],
            )
            failure = None if probe.returncode == 0 else _tail(probe.stdout + probe.stderr)
        except (OSError, subprocess.SubprocessError) as exc:
            failure = str(exc)
        if failure is not None:
            raise TrainerUnavailable(
                f"sandbox user {sandbox_user!r} cannot run {python} in {src}: the interpreter, its "
                "site-packages and the work dir must be readable by that user (as in the trainer image)",
                failure,
            )
    return PreparedTrainer(python=python, cwd=src, label=source.label(), run_as=run_as)


# -- one run ---------------------------------------------------------------------------------


def _tail(text: str, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    out = "\n".join(text.splitlines()[-lines:])
    return out[-chars:]


def _file_tail(path: Path) -> str:
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 4 * LOG_TAIL_CHARS))
        return _tail(f.read().decode("utf-8", errors="replace"))


def _child_env(extra: dict[str, str], home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not any(m in k.upper() for m in _SECRET_MARKERS)}
    env["PYTHONUNBUFFERED"] = "1"
    if home is not None:
        env["HOME"] = str(home)
        env["TMPDIR"] = str(home / "tmp")
    env.update(extra)
    return env


def _death_signal_setter() -> Callable[[], None] | None:
    """A function for the child that makes it die when the verifier dies (Linux PR_SET_PDEATHSIG).

    Built in the parent: the child, forked from a threaded process, only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_death_signal() -> None:
        prctl(1, int(signal.SIGKILL))

    return set_death_signal


def train_command(
    trainer: PreparedTrainer, run_config: RunConfig, seed: int, out: Path, *, rdzv_endpoint: str | None = None
) -> list[str]:
    """argv of one run: ``speedrun train`` directly, or under torchrun for several processes."""
    train_args = [
        "train",
        "--recipe",
        run_config.recipe,
        "--overrides",
        json.dumps(dict(run_config.overrides), sort_keys=True),
        "--seed",
        str(seed),
        "--out",
        str(out),
    ]
    if run_config.gpus_per_node <= 1 and run_config.nodes == 1:
        return [trainer.python, "-m", "speedrun", *train_args]
    launcher = [trainer.python, "-m", "torch.distributed.run", f"--nproc_per_node={max(1, run_config.gpus_per_node)}"]
    if run_config.nodes > 1:
        if rdzv_endpoint is None:
            raise VerifyError(f"nodes: {run_config.nodes} nodes need a rendezvous endpoint (host:port) for torchrun")
        launcher += [
            f"--nnodes={run_config.nodes}",
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            f"--rdzv-id=speedrun-{seed}",
        ]
    else:
        launcher.append("--standalone")
    return [*launcher, "-m", "speedrun", *train_args]


class _MetricsTail:
    """Reads complete new lines of a growing metrics.jsonl."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.last: dict[str, object] | None = None

    def poll(self) -> dict[str, object] | None:
        if not self.path.is_file():
            return None
        with self.path.open("rb") as f:
            f.seek(self.offset)
            chunk = f.read()
        end = chunk.rfind(b"\n")
        if end < 0:
            return None
        self.offset += end + 1
        for line in chunk[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                if self.last is not None and "num_iterations" not in row:  # e.g. the final eval line
                    row = {**row, "num_iterations": self.last.get("num_iterations")}
                self.last = row
        return self.last


def _progress_from(
    row: dict[str, object] | None, run_index: int, runs: int, seed: int, elapsed_s: float, run_estimate_s: float | None
) -> JobProgress:
    step = row.get("step") if row else None
    steps = row.get("num_iterations") if row else None
    eta = row.get("eta_seconds") if row else None
    eta_run = float(eta) if isinstance(eta, int | float) and eta >= 0 else None
    if eta_run is not None:
        per_run = run_estimate_s if run_estimate_s is not None else elapsed_s + eta_run
        eta_total: float | None = eta_run + (runs - run_index - 1) * per_run
    else:
        eta_total = None
    return JobProgress(
        run_index=run_index,
        runs=runs,
        step=step if isinstance(step, int) and step >= 0 else None,
        steps=steps if isinstance(steps, int) and steps >= 0 else None,
        eta_seconds=eta_total,
        message=f"run {run_index + 1}/{runs} (seed {seed})",
    )


def run_once(
    trainer: PreparedTrainer,
    run_config: RunConfig,
    *,
    seed: int,
    out: Path,
    run_index: int = 0,
    runs: int = 1,
    timeout_s: float | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    run_estimate_s: float | None = None,
    rdzv_endpoint: str | None = None,
) -> RunResult:
    """One training run in its own process group; its RunResult, or VerifyError with the log tail."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    home = None
    if trainer.run_as is not None:
        home = out / ".home"
        (home / "tmp").mkdir(parents=True)
        _chown_tree(out, trainer.run_as)
    cmd = train_command(trainer, run_config, seed, out, rdzv_endpoint=rdzv_endpoint)
    log_path = out / PROCESS_LOG_FILE
    metrics = _MetricsTail(out / METRICS_FILE)
    started = time.monotonic()
    with log_path.open("wb") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        kwargs: dict[str, object] = {}
        if trainer.run_as is not None:
            kwargs = {"user": trainer.run_as[0], "group": trainer.run_as[1], "extra_groups": []}
        proc = subprocess.Popen(
            cmd,
            cwd=trainer.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(trainer.extra_env, home),
            start_new_session=True,  # its own process group: a time cap kills torchrun and its workers too
            preexec_fn=_death_signal_setter(),
            **kwargs,  # type: ignore[call-overload]
        )
        stop_reason: str | None = None
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if timeout_s is not None and elapsed > timeout_s:
                    stop_reason = f"exceeded the time cap of {timeout_s:.0f} s"
                elif cancel is not None and cancel.is_set():
                    stop_reason = "cancelled"
                if stop_reason is not None:
                    _kill_group(proc)
                    break
                row = metrics.poll()
                if progress is not None:
                    progress(_progress_from(row, run_index, runs, seed, elapsed, run_estimate_s))
                time.sleep(POLL_INTERVAL_S)
        finally:
            if proc.poll() is None:
                _kill_group(proc)
    where = f"run {run_index} (seed {seed})"
    if stop_reason is not None:
        raise VerifyError(f"{where} {stop_reason}", _logs_tail(out))
    if proc.returncode != 0:
        raise VerifyError(f"{where} exited with code {proc.returncode}", _logs_tail(out))
    result_path = out / RESULT_FILE
    if not result_path.is_file():
        raise VerifyError(f"{where} finished without writing {RESULT_FILE}", _logs_tail(out))
    try:
        result = RunResult.model_validate_json(result_path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise VerifyError(f"{where} wrote an invalid {RESULT_FILE}: {problems}", _logs_tail(out)) from exc
    if result.seed != seed:
        raise VerifyError(f"{where} reports seed {result.seed}; the verifier asked for {seed}", _logs_tail(out))
    expected = result.digests.metrics_log_sha256
    if expected is not None:
        actual = _sha256_file(out / METRICS_FILE) if (out / METRICS_FILE).is_file() else None
        if actual != expected:
            raise VerifyError(f"{where}: {METRICS_FILE} does not match the digest in {RESULT_FILE}", _logs_tail(out))
    if progress is not None:
        steps = result.steps
        progress(
            JobProgress(
                run_index=run_index, runs=runs, step=steps, steps=steps, message=f"run {run_index + 1}/{runs} done"
            )
        )
    return result


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _logs_tail(out: Path) -> str:
    """The end of the trainer's own log if it wrote one, then the end of the process output."""
    parts = []
    for name in (LOG_FILE, PROCESS_LOG_FILE):
        text = _file_tail(out / name)
        if text:
            parts.append(f"--- {name} (last lines) ---\n{text}")
    return _tail("\n".join(parts), lines=2 * LOG_TAIL_LINES, chars=LOG_TAIL_CHARS * 2)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- pre-screen ------------------------------------------------------------------------------


def prescreen(submission_or_config: Submission | RunConfig, track: TrackRules) -> list[str]:
    """Problems that make a verification pointless, found before any GPU time is spent."""
    problems: list[str] = []
    if isinstance(submission_or_config, Submission):
        sub = submission_or_config
        config = sub.run_config
        if sub.track != track.slug:
            problems.append(f"track: the submission names {sub.track!r}, checked against {track.slug!r}")
        for i, claim in enumerate(sub.claimed_results):
            if claim.rules_version != track.rules_version:
                problems.append(
                    f"claimed_results[{i}].rules_version: {claim.rules_version}, the track needs {track.rules_version}"
                )
            if not same_overrides(config.recipe, claim.overrides, config.overrides):
                problems.append(f"claimed_results[{i}].overrides: differ from run_config.overrides")
            if claim.core is None:
                problems.append(f"claimed_results[{i}].core: a claim needs a CORE result")
            hw = claim.hardware
            why = track.allows_hardware(hw.sku, 0 if hw.device_type == "cpu" else hw.device_count, hw.nodes)
            if why is not None:
                problems.append(f"claimed_results[{i}].hardware: {why}")
    else:
        config = submission_or_config
    reason = track.allows_hardware(config.hardware_class, config.gpus_per_node, config.nodes)
    if reason is not None:
        problems.append(f"run_config.hardware_class: {reason}")
    if config.trainer.kind == "reference":
        try:
            config.validate_overrides()
        except ImportError as exc:
            problems.append(f"run_config: the reference trainer cannot be imported here to check overrides ({exc})")
        except (ValueError, TypeError, KeyError) as exc:
            problems.append(f"run_config.overrides: {exc}")
        else:
            problems.extend(_compute_problems(config))
    return problems


def _compute_problems(config: RunConfig) -> list[str]:
    """A reference config whose plan needs more than MAX_HOURS_AT_PEAK even at 100% MFU."""
    peak = BF16_PEAK_FLOPS.get(config.hardware_class)
    if peak is None:  # CPU or an SKU without a known peak: the time cap of each run bounds it
        return []
    try:
        from trainer.config import build_config
        from trainer.plan import resolve

        plan = resolve(build_config(config.recipe, {**config.overrides, "seed": config.seed}), config.world_size)
    except (ImportError, ValueError) as exc:
        return [f"run_config: the plan cannot be resolved ({exc})"]
    hours = plan.total_flops / (config.world_size * peak) / 3600.0
    if hours > MAX_HOURS_AT_PEAK:
        return [
            f"run_config.overrides: the plan needs {plan.total_flops:.3e} FLOPs, {hours:.1f} h at the bf16 peak of "
            f"{config.world_size} x {config.hardware_class}; a verification run may need at most {MAX_HOURS_AT_PEAK:.0f} h"
        ]
    return []


# -- the verification ------------------------------------------------------------------------


SMOKE_CORE_MAX_PER_TASK = 11  # the smallest subsample that keeps the 10-shot tasks valid


def smoke_overrides(steps: int) -> dict[str, int | None]:
    """Overrides of a smoke run: a few steps, no intermediate eval, CORE on a small subsample."""
    return {"num_iterations": steps, "eval_every_steps": None, "core_max_per_task": SMOKE_CORE_MAX_PER_TASK}


def pick_seeds(runs: int, avoid: Sequence[int] = ()) -> list[int]:
    """``runs`` distinct seeds the submitter could not predict (and none of ``avoid``)."""
    rng = random.SystemRandom()
    seeds: list[int] = []
    while len(seeds) < runs:
        s = rng.randrange(1, 2**31)
        if s not in seeds and s not in avoid:
            seeds.append(s)
    return seeds


def verify(
    run_config: RunConfig,
    *,
    track: TrackRules,
    runs: int,
    out_dir: Path,
    claimed: Sequence[RunResult] = (),
    seeds: Sequence[int] | None = None,
    progress: ProgressCallback | None = None,
    run_timeout_s: float | None = None,
    verifier_id: str | None = None,
    sandbox_user: str | None = DEFAULT_SANDBOX_USER,
    cancel: threading.Event | None = None,
    rdzv_endpoint: str | None = None,
    smoke_steps: int | None = None,
) -> VerificationReport:
    """Run the config ``runs`` times with distinct seeds and decide; writes report.json + summary.txt.

    ``seeds`` default to unpredictable distinct seeds. ``smoke_steps``: first a short smoke run of
    the config (that many steps, CORE on a small subsample), so a config that cannot finish fails
    before the full runs are paid for. Raises ValueError for bad arguments only; every failure of
    the runs themselves is an ``error`` report.
    """
    if runs < 1:
        raise ValueError(f"runs: must be >= 1, got {runs}")
    if seeds is not None:
        seeds = list(seeds)
        if len(seeds) != runs:
            raise ValueError(f"seeds: {len(seeds)} given for {runs} runs")
        if any(not 0 <= s < 2**31 for s in seeds):
            raise ValueError("seeds: each must be in [0, 2**31)")
    else:
        seeds = pick_seeds(runs, avoid=[c.seed for c in claimed])
    if run_timeout_s is not None and run_timeout_s <= 0:
        raise ValueError("run_timeout_s: must be > 0")
    if smoke_steps is not None and smoke_steps < 1:
        raise ValueError("smoke_steps: must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity_id = verifier_id or socket.gethostname()[:100] or "verifier"

    def report(verdict: Verdict, reasons: list[str], results: list[RunResult], **kw: object) -> VerificationReport:
        from speedrun import __version__

        hardware = results[0].hardware if results else None
        rep = VerificationReport.model_validate(
            {
                "track": track.slug,
                "rules_version": track.rules_version,
                "protocol": track.protocol,
                "verifier": VerifierIdentity(id=identity_id, version=__version__, hardware=hardware),
                "run_config": run_config,
                "runs": results,
                "core_threshold": track.threshold,
                "alpha": track.alpha,
                "verdict": verdict,
                "reasons": reasons,
                "created_at": datetime.now(UTC),
                **kw,
            }
        )
        write_report(rep, out_dir)
        return rep

    problems = prescreen(run_config, track)
    if problems:
        return report(Verdict.error, [f"pre-screen: {p}" for p in problems], [])
    try:
        trainer = prepare_trainer(run_config.trainer, out_dir / "trainer", sandbox_user=sandbox_user)
    except VerifyError as exc:
        return report(Verdict.error, [exc.reason], [], log_tail=exc.log_tail)

    if smoke_steps is not None:
        smoke = run_config.model_copy(update={"overrides": {**run_config.overrides, **smoke_overrides(smoke_steps)}})
        try:
            run_once(trainer, smoke, seed=seeds[0], out=out_dir / "smoke", timeout_s=run_timeout_s, cancel=cancel)
        except VerifyError as exc:
            return report(Verdict.error, [f"smoke run ({smoke_steps} steps): {exc.reason}"], [], log_tail=exc.log_tail)

    results: list[RunResult] = []
    estimate: float | None = None
    for i, seed in enumerate(seeds):
        started = time.monotonic()
        try:
            result = run_once(
                trainer,
                run_config,
                seed=seed,
                out=out_dir / f"run-{i}",
                run_index=i,
                runs=runs,
                timeout_s=run_timeout_s,
                progress=progress,
                cancel=cancel,
                run_estimate_s=estimate,
                rdzv_endpoint=rdzv_endpoint,
            )
        except VerifyError as exc:
            reasons = [exc.reason]
            if results:
                reasons.append(f"{len(results)} earlier run(s) finished; no statistics are reported on a partial set")
            return report(Verdict.error, reasons, [], log_tail=exc.log_tail)
        estimate = time.monotonic() - started
        results.append(result)

    decision = decide(results, track=track, run_config=run_config, claimed=claimed)
    return report(
        decision.verdict,
        decision.reasons,
        results,
        core=decision.core,
        p_value=decision.p_value,
        training_hours=decision.training_hours,
        val_bpb=decision.val_bpb,
        deltas=decision.deltas,
    )


# -- report files ----------------------------------------------------------------------------


def write_report(report: VerificationReport, out_dir: Path) -> None:
    """report.json (the contract) and summary.txt (for people), written atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in ((REPORT_FILE, report.model_dump_json(indent=2) + "\n"), (SUMMARY_FILE, summary_text(report))):
        tmp = out_dir / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out_dir / name)


def summary_text(report: VerificationReport) -> str:
    """A human summary of a verification report."""
    lines = [
        f"verdict: {report.verdict.value.upper()}",
        f"track: {report.track} (rules {report.rules_version}, protocol {report.protocol})",
        f"config: {report.run_config.trainer.label()} recipe {report.run_config.recipe} "
        f"overrides {json.dumps(dict(report.run_config.overrides), sort_keys=True)}",
        f"hardware class: {report.run_config.hardware_class} x {report.run_config.gpus_per_node} GPU(s) "
        f"x {report.run_config.nodes} node(s)",
        f"verifier: {report.verifier.id} (speedrun {report.verifier.version})",
    ]
    if report.core is not None:
        lines.append(
            f"CORE: mean {report.core.mean:.4f}, std {report.core.std:.4f}, n {report.core.n}; "
            f"threshold {report.core_threshold}, alpha {report.alpha}"
        )
    if report.p_value is not None:
        lines.append(f"p-value (one-sided t-test, mean CORE > threshold): {report.p_value:.4g}")
    if report.training_hours is not None:
        h = report.training_hours
        lines.append(f"training time: mean {h.mean:.6f} h ({h.mean * 3600:.2f} s), std {h.std * 3600:.2f} s, n {h.n}")
    if report.val_bpb is not None:
        lines.append(f"val_bpb: mean {report.val_bpb.mean:.4f}, std {report.val_bpb.std:.4f}")
    if report.runs:
        lines.append("runs:")
        for i, r in enumerate(report.runs):
            core = "n/a" if r.core_score is None else f"{r.core_score:.4f}"
            bpb = "n/a" if r.val_bpb is None else f"{r.val_bpb:.4f}"
            lines.append(
                f"  {i}: seed {r.seed}, CORE {core}, val_bpb {bpb}, training {r.training_seconds:.2f} s, "
                f"{r.steps} steps on {r.hardware.device_name}"
            )
    if report.deltas is not None:
        d = report.deltas
        flag = "FLAGGED" if d.flagged else "ok"
        lines.append(f"claims vs verified: {flag}")
        if d.training_hours_ratio is not None:
            lines.append(f"  training time verified/claimed: {d.training_hours_ratio:.3f}x")
        if d.core is not None:
            lines.append(f"  CORE verified - claimed: {d.core:+.4f}")
        if d.val_bpb is not None:
            lines.append(f"  val_bpb verified - claimed: {d.val_bpb:+.4f}")
        lines.extend(f"  note: {n}" for n in d.notes)
    if report.reasons:
        lines.append("reasons:")
        lines.extend(f"  - {r}" for r in report.reasons)
    if report.log_tail:
        lines.append("log tail:")
        lines.extend(f"  | {line}" for line in report.log_tail.splitlines())
    return "\n".join(lines) + "\n"
