"""Reproduce a run config k times with distinct seeds and decide with the track's statistics.

Flow of ``verify`` (rules ``speedrun-v2``, RULES.md; every step that runs submitted code is
sealed by ``submissions.sandbox``):

1. pre-screen (``submissions.prescreen``) and the bounds of each run (a wall-time cap always);
2. prepare the trainer: the installed reference trainer when its version matches; a git fork is
   fetched under the URL policy, diffed against the reference for review (``submissions.review``),
   stripped of its history (training sees the commit's tree only) and installed into its own
   venv inside the sandbox (``submissions.forks``); a fork never runs unsealed;
3. per seed (``submissions.runner``): train sealed (``--no-eval`` when the trainer has it), the
   verifier's clock from launch to the exit of the training's whole process tree; read the run's
   files safely (``submissions.artifacts``); score the checkpoint with the verifier's own scorer,
   which talks to the run's model in a separate sandboxed model process (``submissions.score``);
   the worker's hardware fingerprint;
4. ``stats.decide`` on the verifier's numbers; ``report.json`` and ``summary.txt``.

A run that crashes, exceeds a bound or leaves a bad file makes the verdict ``error`` with the
log tail of that run and no statistics (never a half-report).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from contract import __version__
from contract.schema import (
    RANKED_RULES_VERSION,
    ForkDiff,
    HardwareFingerprint,
    RunConfig,
    RunResult,
    TrainerSource,
    Verdict,
    VerificationReport,
    VerifierIdentity,
)
from contract.tracks import TrackRules
from submissions import forks, review, sandbox
from submissions.artifacts import read_tail
from submissions.hardware import local_fingerprint
from submissions.inputs import synthetic_inputs
from submissions.measure import supervise
from submissions.prescreen import EVAL_TIMEOUT_S, default_run_timeout_s, prescreen, smoke_overrides
from submissions.report import REPORT_FILE, SUMMARY_FILE, summary_text, write_report
from submissions.rules import decide, pick_seeds
from submissions.runner import (
    PROCESS_LOG_FILE,
    EvalInputs,
    PreparedTrainer,
    ProgressCallback,
    RunContext,
    TrainData,
    VerifyError,
    score_run,
    train_command,
    train_run,
)
from submissions.verified import VAL_BPB_BY_FORK, verified_result
from trainer.data.manifest import read_manifest
from trainer.data.paths import CLIMBMIX_VAL_SHARD_INDEX, default_cache_dir, shard_name
from trainer.evaluation.bundle import ensure_synthetic_bundle
from trainer.evaluation.fetch import fetch_bundle
from trainer.plan import config_of, resolve

__all__ = [
    "FORK_DIFF_FILE",
    "PROCESS_LOG_FILE",
    "REPORT_FILE",
    "SUMMARY_FILE",
    "PreparedTrainer",
    "TrainerUnavailable",
    "VerifyError",
    "prepare_trainer",
    "prescreen",
    "summary_text",
    "train_command",
    "verify",
    "write_report",
]
FORK_DIFF_FILE = "fork.diff"
# A fork's sealed install: no GPU, no network, 5 minutes (installing takes seconds; the cap keeps a
# setup.py from pre-training a model before the clock starts, beyond what review would see anyway).
INSTALL_TIMEOUT_S = 300.0
MEMORY_FRACTION = 0.8  # of this machine's RAM: the address-space cap of a CPU node's sandboxed steps
# The model process of scoring: an address space of MODEL_BASE_BYTES + MODEL_PARAM_FACTOR x the
# reference model's fp32 weights (CPU nodes; capped by MEMORY_FRACTION), at most 1 GiB of files.
MODEL_BASE_BYTES = 8 * 1024**3
MODEL_PARAM_FACTOR = 16


class TrainerUnavailable(VerifyError):
    """The trainer source cannot be prepared on this machine."""


def _installed_commit() -> str | None:
    repo = forks.reference_repo()
    if repo is None:
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
            env=sandbox.clean_env(),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def reference_matches(version: str) -> bool:
    """Whether ``reference@version`` is the trainer installed here (release version or commit)."""
    if version == __version__:
        return True
    commit = _installed_commit()
    is_hex = len(version) >= 7 and all(c in "0123456789abcdef" for c in version)
    return bool(commit and is_hex and commit.startswith(version))


def prepare_trainer(
    source: TrainerSource,
    work_dir: Path,
    *,
    sealed: bool,
    allow_local_git: bool = False,
    hidden: Sequence[Path] = (),
    wheel_cache: Path | None = None,
) -> tuple[PreparedTrainer, review.ReviewDiff | review.NoDiff | None]:
    """Make ``source`` runnable; raises TrainerUnavailable naming the problem. With a fork, its
    review diff (or why there is none); the checkout it leaves has no ``.git``."""
    if source.kind == "reference":
        assert source.version is not None
        if not reference_matches(source.version):
            raise TrainerUnavailable(
                f"trainer: reference@{source.version} is not installed here (installed {__version__}, "
                f"commit {_installed_commit() or 'unknown'}); submit it as a git trainer at that commit"
            )
        return PreparedTrainer(python=sys.executable, label=source.label(), sealed=sealed), None
    if not sealed:
        raise TrainerUnavailable(
            f"trainer: a fork runs only sealed, and this machine has no sandbox ({sandbox.sandbox_problem()})"
        )
    assert source.git_url is not None and source.commit is not None
    work_dir.mkdir(parents=True, exist_ok=True)
    src, venv, build = work_dir / "src", work_dir / "venv", work_dir / "build"
    try:
        forks.fetch_fork(source.git_url, source.commit, src, allow_local=allow_local_git)
        entry_point = forks.model_entry_point(src)
        diff = review.fork_diff(src, source.commit, allow_local=allow_local_git)
        forks.drop_history(src)  # before anything binds the checkout into a sandbox
        house = forks.build_tools_wheelhouse(wheel_cache or work_dir / "cache")
        forks.make_venv(venv)
        shutil.copytree(src, build, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    except forks.ForkError as exc:
        raise TrainerUnavailable(exc.reason, exc.log_tail) from exc
    except OSError as exc:
        raise TrainerUnavailable(f"trainer: preparing the fork failed: {exc}") from exc
    home = work_dir / "install-home"
    home.mkdir(exist_ok=True)
    step = sandbox.Step(
        argv=forks.install_argv(venv, house, build),
        cwd=build,
        writable=[venv, build, home],
        readonly=[house],
        hidden=list(hidden),
        env={"HOME": str(home), "TMPDIR": str(home)},
    )
    limits = sandbox.Limits(
        wall_s=INSTALL_TIMEOUT_S, memory_bytes=_memory_cap(False), file_bytes=2 * 1024**3, disk_bytes=4 * 1024**3
    )
    log = work_dir / "install.log"
    with log.open("wb") as out:
        proc = sandbox.launch(step, limits, sealed=True, stdout=out.fileno())

        outcome = supervise(proc, limits, started=time.monotonic(), disk_dirs=step.writable)
    if outcome.stop_reason is not None or outcome.returncode != 0:
        why = outcome.stop_reason or f"exit code {outcome.returncode}"

        raise TrainerUnavailable(f"pip install (the fork, sealed): {why}", read_tail(work_dir, "install.log", 16_000))
    python = str(venv / "bin" / "python")
    trainer = PreparedTrainer(
        python=python,
        label=source.label(),
        sealed=True,
        readonly=(venv, src, house),
        entry_point=entry_point,
        fork_src=src if entry_point is not None else None,
    )
    return trainer, diff


def _ram_cap() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * MEMORY_FRACTION)
    except (ValueError, OSError, AttributeError):
        return None


def _memory_cap(gpu: bool) -> int | None:
    return None if gpu else _ram_cap()


def model_limits(run_config: RunConfig, gpu: bool, wall_s: float) -> sandbox.Limits:
    """Bounds of the model process: a small multiple of the reference model's size in memory, the
    scoring time cap (each request has its own deadline in the scorer), little disk."""
    config = config_of(run_config.recipe, run_config.overrides, run_config.seed)
    params = resolve(config, 1).num_params
    budget = MODEL_BASE_BYTES + MODEL_PARAM_FACTOR * 4 * params
    machine = _ram_cap()
    cap = budget if machine is None else min(budget, machine)
    return sandbox.Limits(
        wall_s=wall_s,
        memory_bytes=None if gpu else cap,
        ram_bytes=cap,
        processes=512,
        file_bytes=64 << 20,
        disk_bytes=1 << 30,
        max_files=10_000,
    )


def eval_inputs(run_config: RunConfig, gpu: bool) -> EvalInputs:
    """The verifier's own tokenizer, validation data and eval bundle for the config (trusted code)."""

    try:
        config = config_of(run_config.recipe, run_config.overrides, run_config.seed)
    except (ValueError, TypeError, KeyError) as exc:
        raise VerifyError(
            f"run_config.recipe: the verifier scores reference recipes only ({exc}); a fork keeps the recipe "
            "names and declares its model (submissions/README.md)"
        ) from exc
    d, e = config.data, config.eval
    bundle = None
    if d.source == "synthetic":  # built once per machine, reused while the digests match
        synthetic = e.core_at_end and e.bundle_source == "synthetic"
        ins = synthetic_inputs(seed=d.synthetic_seed, vocab_size=d.synthetic_vocab_size, bundle=synthetic)
        data_dir, tokenizer_dir, bundle = ins.data_dir, ins.tokenizer_dir, ins.bundle
    else:
        data_dir = default_cache_dir() / "climbmix"
        tokenizer_dir = data_dir.parent / "tokenizer"
    if e.core_at_end and bundle is None:
        bundle = ensure_synthetic_bundle(seed=d.synthetic_seed) if e.bundle_source == "synthetic" else fetch_bundle()
    sandbox.share([Path(p) for p in (tokenizer_dir, data_dir, bundle) if p is not None])
    return EvalInputs(
        tokenizer_dir=Path(tokenizer_dir),
        data_dir=Path(data_dir),
        bundle=None if bundle is None else Path(bundle),
        device="cuda" if gpu else "cpu",
    )


def train_data(
    run_config: RunConfig, trainer: PreparedTrainer, hidden: Sequence[Path], inputs: EvalInputs | None = None
) -> TrainData:
    """What training is given beyond its config: ``--no-eval`` when the trainer has it (its own
    eval would run on the ranked clock), and the verifier's data: downloaded shards, or for a
    synthetic corpus the verifier's checked copy (``inputs``, from ``eval_inputs``; a pure
    function of the public seed, so the run sees nothing it could not build itself, and no run
    spends its clock building it). Without ``inputs``, or for a trainer without ``--data-dir`` and
    ``--tokenizer-dir``, a synthetic run builds its own corpus."""

    config = config_of(run_config.recipe, run_config.overrides, run_config.seed)
    has = _train_flags(trainer, hidden)
    no_eval = "--no-eval" in has
    if config.data.source == "synthetic":
        flags = ("--no-eval",) if no_eval else ()
        if inputs is None or inputs.data_dir is None or not {"--data-dir", "--tokenizer-dir"} <= has:
            return TrainData(args=flags, readonly=(), hidden=())
        dirs = (inputs.data_dir, inputs.tokenizer_dir)
        val = (inputs.data_dir / read_manifest(inputs.data_dir).val_shard,) if no_eval else ()
        return TrainData(
            args=("--data-dir", str(dirs[0]), "--tokenizer-dir", str(dirs[1]), *flags), readonly=dirs, hidden=val
        )
    data_dir = default_cache_dir() / "climbmix"
    tokenizer_dir = data_dir.parent / "tokenizer"
    args = ["--data-dir", str(data_dir), "--tokenizer-dir", str(tokenizer_dir)]
    masked: tuple[Path, ...] = ()
    if no_eval:
        args.append("--no-eval")
        masked = (data_dir / shard_name(CLIMBMIX_VAL_SHARD_INDEX),)
    sandbox.share([data_dir, tokenizer_dir])
    return TrainData(args=tuple(args), readonly=(data_dir, tokenizer_dir), hidden=masked)


TRAIN_FLAGS = ("--no-eval", "--data-dir", "--tokenizer-dir")


def _train_flags(trainer: PreparedTrainer, hidden: Sequence[Path]) -> set[str]:
    """Which of TRAIN_FLAGS the trainer's `speedrun train` has: skipping its own end-of-run eval,
    reading given data (asked sealed with ``--help``; the installed reference trainer is this
    code, which has them all)."""
    if trainer.python == sys.executable and not trainer.readonly:
        return set(TRAIN_FLAGS)
    with tempfile.TemporaryDirectory() as tmp:
        step = sandbox.Step(
            argv=[trainer.python, "-m", "speedrun", "train", "--help"],
            cwd=Path(tmp),
            writable=[Path(tmp)],
            readonly=list(trainer.readonly),
            hidden=list(hidden),
            env={"HOME": tmp},
        )
        try:
            proc = sandbox.launch(step, sandbox.Limits(wall_s=120), sealed=trainer.sealed, stdout=subprocess.PIPE)
            out, _ = proc.communicate(timeout=120)
        except (OSError, subprocess.SubprocessError, sandbox.SandboxUnavailable):
            return set()
    return {flag for flag in TRAIN_FLAGS if flag.encode() in out}


def _fork_diff(diff: review.ReviewDiff | review.NoDiff | None, out_dir: Path) -> ForkDiff | None:
    if not isinstance(diff, review.ReviewDiff):
        return None
    (out_dir / FORK_DIFF_FILE).write_bytes(diff.text)
    return diff.summary(FORK_DIFF_FILE)


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
    eval_timeout_s: float | None = None,
    verifier_id: str | None = None,
    cancel: threading.Event | None = None,
    rdzv_endpoint: str | None = None,
    smoke_steps: int | None = None,
    fingerprint: HardwareFingerprint | None = None,
    allow_unsealed: bool = True,
    allow_local_git: bool = False,
    hidden: Sequence[Path] = (),
    one_run_of: int | None = None,
    threads: int | None = None,
) -> VerificationReport:
    """Run the config ``runs`` times with distinct seeds and decide; writes report.json + summary.txt.

    ``allow_unsealed``: without a sandbox on this machine, run the installed reference trainer
    unsealed (the report says so); a fork is refused either way. ``hidden``: paths no sandboxed
    step may see (the worker's work dir, token file). ``one_run_of``: this is one run (``runs`` = 1,
    the site's seed) of a verification of that many runs, which the site pools and decides: the
    report's verdict is then 'inconclusive' unless the run failed. ``threads``: CPU threads of each
    CPU step (None: the CPUs free when the step starts). Raises ValueError for bad arguments only.
    """
    if runs < 1:
        raise ValueError(f"runs: must be >= 1, got {runs}")
    if seeds is not None:
        seeds = list(seeds)
        if len(seeds) != runs or len(set(seeds)) != runs:
            raise ValueError(f"seeds: {runs} distinct seeds are needed, got {seeds}")
        if any(not 0 <= s < 2**31 for s in seeds):
            raise ValueError("seeds: each must be in [0, 2**31)")
    else:
        seeds = pick_seeds(runs, avoid=[c.seed for c in claimed])
    for name, value in (("run_timeout_s", run_timeout_s), ("eval_timeout_s", eval_timeout_s)):
        if value is not None and value <= 0:
            raise ValueError(f"{name}: must be > 0")
    if smoke_steps is not None and smoke_steps < 1:
        raise ValueError("smoke_steps: must be >= 1")
    if threads is not None and threads < 1:
        raise ValueError("threads: must be >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    identity_id = verifier_id or socket.gethostname()[:100] or "verifier"
    if fingerprint is None:
        fingerprint = local_fingerprint()
    gpu = fingerprint.device_type == "cuda"
    sealed = sandbox.sandbox_problem(gpu=gpu) is None
    state: dict[str, ForkDiff | None] = {"fork_diff": None}
    notes: list[str] = []  # about the fork's review diff, in every report from here on

    def report(verdict: Verdict, reasons: list[str], results: list[RunResult], **kw: object) -> VerificationReport:
        rep = VerificationReport.model_validate(
            {
                "track": track.slug,
                "rules_version": track.rules_version,
                "protocol": track.protocol,
                "verifier": VerifierIdentity(id=identity_id, version=__version__, hardware=fingerprint),
                "run_config": run_config,
                "runs": results,
                "core_threshold": track.threshold,
                "alpha": track.alpha,
                "verdict": verdict,
                "reasons": [*reasons, *notes],
                "created_at": datetime.now(UTC),
                "sealed": sealed,
                "fork_diff": state["fork_diff"],
                **kw,
            }
        )
        write_report(rep, out_dir)
        return rep

    problems = prescreen(run_config, track)
    if problems:
        return report(Verdict.error, [f"pre-screen: {p}" for p in problems], [])
    if not sealed and not allow_unsealed:
        return report(Verdict.error, [f"this worker has no sandbox: {sandbox.sandbox_problem(gpu=gpu)}"], [])
    hidden_paths = [out_dir.parent, *hidden]
    try:
        trainer, diff = prepare_trainer(
            run_config.trainer,
            out_dir / "trainer",
            sealed=sealed,
            allow_local_git=allow_local_git,
            hidden=hidden_paths,
            wheel_cache=out_dir.parent / ".build-tools",
        )
        state["fork_diff"] = _fork_diff(diff, out_dir)
        if isinstance(diff, review.NoDiff):
            notes.append(diff.note)
        inputs = eval_inputs(run_config, gpu)
        data = train_data(run_config, trainer, hidden_paths, inputs)
    except VerifyError as exc:
        return report(Verdict.error, [exc.reason], [], log_tail=exc.log_tail)

    memory, ram = _memory_cap(gpu), _ram_cap()
    timeout = run_timeout_s if run_timeout_s is not None else default_run_timeout_s(track, run_config)
    eval_wall = eval_timeout_s or EVAL_TIMEOUT_S
    ctx = RunContext(
        trainer=trainer,
        run_config=run_config,
        eval_inputs=inputs,
        fingerprint=fingerprint,
        limits=sandbox.Limits(wall_s=timeout, memory_bytes=memory, ram_bytes=ram),
        eval_limits=sandbox.Limits(wall_s=eval_wall, memory_bytes=memory, ram_bytes=ram, file_bytes=256 << 20),
        model_limits=model_limits(run_config, gpu, eval_wall),
        v2=track.rules_version == RANKED_RULES_VERSION,
        hidden=hidden_paths,
        gpu=gpu,
        progress=progress,
        cancel=cancel,
        rdzv_endpoint=rdzv_endpoint,
        train_data=data,
        threads=threads,
    )
    if smoke_steps is not None:
        smoke = run_config.model_copy(update={"overrides": {**run_config.overrides, **smoke_overrides(smoke_steps)}})
        try:
            train_run(
                RunContext(**{**vars(ctx), "run_config": smoke, "progress": None}),
                seed=seeds[0],
                run_dir=out_dir / "smoke",
            )
        except VerifyError as exc:
            return report(Verdict.error, [f"smoke run ({smoke_steps} steps): {exc.reason}"], [], log_tail=exc.log_tail)

    results: list[RunResult] = []
    for i, seed in enumerate(seeds):
        run_dir = out_dir / f"run-{i}"
        try:
            own, clock, applied = train_run(ctx, seed=seed, run_dir=run_dir, index=i, runs=runs)
            score = score_run(ctx, seed=seed, run_dir=run_dir, index=i, runs=runs, steps=own.steps)
        except VerifyError as exc:
            reasons = [exc.reason]
            if results:
                reasons.append(f"{len(results)} earlier run(s) finished; no statistics are reported on a partial set")
            return report(Verdict.error, reasons, [], log_tail=exc.log_tail)
        results.append(verified_result(ctx, own, clock, score, applied))

    decision = decide(results, track=track, run_config=run_config, claimed=claimed)
    if one_run_of is not None and decision.verdict != Verdict.failed:
        decision = dataclasses.replace(
            decision,
            verdict=Verdict.inconclusive,
            reasons=[f"one run of {one_run_of}: the site pools the verification's runs and decides on all of them"],
        )
    notes = []
    if trainer.entry_point is not None:
        notes.append(
            f"CORE of the fork's declared model {trainer.entry_point}: it ran in its own sandboxed model process "
            "that saw token ids only (candidates' losses, greedy continuations); the verifier's scorer decided"
        )
        if any(r.val_bpb is not None for r in results):
            notes.append(f"val_bpb: {VAL_BPB_BY_FORK}")
    return report(
        decision.verdict,
        decision.reasons + notes,
        results,
        core=decision.core,
        p_value=decision.p_value,
        training_hours=decision.training_hours,
        val_bpb=decision.val_bpb,
        deltas=decision.deltas,
    )
