"""One verification run: sealed training, the verifier's clock, a sealed re-scoring of its checkpoint.

Layout of ``run-<i>/`` (everything but ``out/``, ``home/``, ``tmp/`` and ``model-home/`` is the
verifier's own): ``process.log`` (the step's stdout+stderr, bounded), ``out/`` (the trainer's
``--out``), ``home/`` + ``tmp/`` (its HOME and TMPDIR; its SPEEDRUN_HOME lives in home/, so the
verifier's data cache, eval bundle and validation shard are never visible to training),
``eval/`` (the scorer's request, ``score.json`` or ``failure.json``), ``eval-home/`` and
``model-home/`` (HOME and TMPDIR of the scorer and of the model process, made after training:
nothing training wrote is read from them), ``eval.log`` and ``model.log``.

The ranked clock is the training step's: launch to the exit of its whole process tree
(``submissions.measure``). Scoring is two sandboxes joined by pipes: the scorer (the verifier's
code; it alone sees the eval bundle and the validation data) and the model process (the run's
model, a fork's code included; it sees token ids only), see ``submissions.score``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from contract import LOG_FILE, METRICS_FILE, MODEL_FILE, RESULT_FILE
from contract.protocol import JobProgress
from contract.schema import HardwareFingerprint, RunConfig, RunResult
from submissions import artifacts
from submissions.measure import MetricsTail, StepOutcome, supervise
from submissions.model_process import ModelRequest
from submissions.sandbox import Limits, Step, launch
from submissions.score import FAILURE_FILE, SCORE_FILE, Score, ScoreRequest
from trainer.cpus import THREADS_ENV, free_cpus

PROCESS_LOG_FILE = "process.log"
PHASES_FILE = "phases.json"  # the verifier's own timing of the run's phases (for the demo's table)
THREADS_WINDOW_S = 0.3  # the /proc/stat window that sizes a CPU step's torch threads
LOG_TAIL_CHARS = 16_000
LOG_TAIL_LINES = 80
PROCESS_LOG_HEAD = 4 * 1024 * 1024  # bytes of a step's output kept from its start (its tail is kept too)
PROCESS_LOG_TAIL = 256 * 1024
ProgressCallback = Callable[[JobProgress], None]


class VerifyError(Exception):
    """A run could not produce a valid result; ``log_tail`` holds the end of its log."""

    def __init__(self, reason: str, log_tail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = log_tail


@dataclass(frozen=True)
class PreparedTrainer:
    """How to start ``speedrun`` of a trainer source, and what its steps may see."""

    python: str
    label: str
    sealed: bool
    readonly: tuple[Path, ...] = ()  # the fork's venv and checkout
    entry_point: str | None = None
    fork_src: Path | None = None


@dataclass(frozen=True)
class EvalInputs:
    """The verifier's own copies of what scoring reads (bound read-only into the eval sandbox only)."""

    tokenizer_dir: Path
    data_dir: Path | None
    bundle: Path | None
    device: str


@dataclass
class RunContext:
    """What every run of one verification shares."""

    trainer: PreparedTrainer
    run_config: RunConfig
    eval_inputs: EvalInputs
    fingerprint: HardwareFingerprint
    limits: Limits
    eval_limits: Limits
    model_limits: Limits
    v2: bool  # the track's rules are speedrun-v2: the verifier's clock is the ranked time
    hidden: list[Path] = field(default_factory=list)
    gpu: bool = False
    progress: ProgressCallback | None = None
    cancel: threading.Event | None = None
    rdzv_endpoint: str | None = None
    train_data: TrainData | None = None
    threads: int | None = None  # CPU threads per step (None: the CPUs free when it starts)


@dataclass(frozen=True)
class TrainData:
    """What a training run is given beyond its config: ``--no-eval`` when the trainer has it (its own
    end-of-run eval would run on the ranked clock; the verifier scores the checkpoint itself), and
    downloaded data (GPU tracks) bound read-only, the validation shard masked under ``--no-eval``."""

    args: tuple[str, ...]
    readonly: tuple[Path, ...]
    hidden: tuple[Path, ...]


def _tail(text: str, lines: int = LOG_TAIL_LINES, chars: int = LOG_TAIL_CHARS) -> str:
    return "\n".join(text.splitlines()[-lines:])[-chars:]


def logs_tail(run_dir: Path) -> str:
    """The end of the trainer's own log (read safely) and of the step's output."""
    parts = []
    for root, name in ((run_dir / "out", LOG_FILE), (run_dir, PROCESS_LOG_FILE)):
        if root.is_dir() and not root.is_symlink():
            text = artifacts.read_tail(root, name, 4 * LOG_TAIL_CHARS)
            if text:
                parts.append(f"--- {name} (last lines) ---\n{_tail(text)}")
    return _tail("\n".join(parts), lines=2 * LOG_TAIL_LINES, chars=2 * LOG_TAIL_CHARS)


class _BoundedLog(threading.Thread):
    """Copies a step's output into process.log: the first PROCESS_LOG_HEAD bytes and the last
    PROCESS_LOG_TAIL bytes, whatever the step writes."""

    def __init__(self, pipe: int, path: Path) -> None:
        super().__init__(daemon=True, name=f"log-{path.parent.name}")
        self.pipe, self.path = pipe, path

    def run(self) -> None:
        written, dropped, tail = 0, 0, bytearray()
        with open(self.pipe, "rb", buffering=0) as src, self.path.open("ab", buffering=0) as dst:
            while block := src.read(65536):
                room = max(0, PROCESS_LOG_HEAD - written)
                dst.write(block[:room])
                written += min(room, len(block))
                rest = block[room:]
                if rest:
                    tail += rest
                    if len(tail) > PROCESS_LOG_TAIL:
                        dropped += len(tail) - PROCESS_LOG_TAIL
                        del tail[: len(tail) - PROCESS_LOG_TAIL]
            if dropped:
                dst.write(f"\n[... {dropped} bytes of output dropped ...]\n".encode())
            dst.write(bytes(tail))


def _run_step(
    step: Step,
    limits: Limits,
    ctx: RunContext,
    log: Path,
    *,
    on_poll: Callable[[float], None] | None = None,
    pass_fds: tuple[int, ...] = (),
) -> tuple[StepOutcome, str]:
    """Run one step to the end; (its outcome, the limits that applied to it)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_bytes(f"$ {' '.join(step.argv)}\n".encode())
    read_end, write_end = os.pipe()
    started = time.monotonic()
    try:
        proc = launch(step, limits, sealed=ctx.trainer.sealed, stdout=write_end, pass_fds=pass_fds)
    finally:
        os.close(write_end)
    copier = _BoundedLog(read_end, log)
    copier.start()
    outcome = supervise(proc, limits, started=started, disk_dirs=step.writable, cancel=ctx.cancel, on_poll=on_poll)
    copier.join(timeout=30)
    return outcome, proc.limits_applied


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
    ]
    train_args += ["--seed", str(seed), "--out", str(out), "--no-progress"]
    if run_config.gpus_per_node <= 1 and run_config.nodes == 1:
        return [trainer.python, "-m", "speedrun", *train_args]
    launcher = [trainer.python, "-m", "torch.distributed.run", f"--nproc_per_node={max(1, run_config.gpus_per_node)}"]
    if run_config.nodes > 1:
        if rdzv_endpoint is None:
            raise VerifyError(f"nodes: {run_config.nodes} nodes need a rendezvous endpoint (host:port) for torchrun")
        launcher += [f"--nnodes={run_config.nodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]
        launcher.append(f"--rdzv-id=speedrun-{seed}")
    else:
        launcher.append("--standalone")
    return [*launcher, "-m", "speedrun", *train_args]


def threads_env(ctx: RunContext) -> dict[str, str]:
    """``OMP_NUM_THREADS`` for a CPU step: the worker's ``threads`` when it says (several runs at once
    on one machine share its cores), else the CPUs free now (measured over a short window), so a
    busy machine does not make two torch threads fight for one core. The worker's own
    ``OMP_NUM_THREADS`` wins over the measurement (passed through by the sandbox); GPU steps keep
    torch's default."""
    if ctx.gpu:
        return {}
    if ctx.threads is not None:
        return {THREADS_ENV: str(ctx.threads)}
    if os.environ.get(THREADS_ENV):
        return {}
    return {THREADS_ENV: str(free_cpus(THREADS_WINDOW_S))}


def note_phases(run_dir: Path, **figures: object) -> None:
    """Merge ``figures`` into the run's phases.json (a verifier's file: the run never writes it)."""
    path = run_dir / PHASES_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data.update(figures)
    path.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")


def say(ctx: RunContext, index: int, runs: int, message: str, step: int | None = None) -> None:
    """A phase change of run ``index`` for the progress callback (the worker's heartbeat)."""
    if ctx.progress is not None:
        ctx.progress(JobProgress(run_index=index, runs=runs, step=step, steps=step, message=message))


def _progress(ctx: RunContext, tail: MetricsTail, index: int, runs: int, seed: int) -> Callable[[float], None]:
    def on_poll(elapsed: float) -> None:
        if ctx.progress is None:
            return
        row = tail.poll()
        step, steps, eta = (row.get(k) for k in ("step", "num_iterations", "eta_seconds")) if row else (None,) * 3
        eta_s = float(eta) if isinstance(eta, int | float) and not isinstance(eta, bool) and eta >= 0 else None
        ctx.progress(
            JobProgress(
                run_index=index,
                runs=runs,
                step=step if isinstance(step, int) and step >= 0 else None,
                steps=steps if isinstance(steps, int) and steps >= 0 else None,
                eta_seconds=None if eta_s is None else min(eta_s, 1e9),
                message=f"run {index + 1}/{runs} (seed {seed}): "
                + ("training" if isinstance(step, int) else "starting (sandbox, imports, data)"),
            )
        )

    return on_poll


def _fresh(run_dir: Path) -> dict[str, Path]:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    dirs = {name: run_dir / name for name in ("out", "home", "tmp", "eval")}  # eval/: the scorer's only
    for d in dirs.values():
        d.mkdir(parents=True)
    return dirs


def train_run(
    ctx: RunContext, *, seed: int, run_dir: Path, index: int = 0, runs: int = 1
) -> tuple[RunResult, float, str]:
    """Train once, sealed; (the run's own result, the verifier's clock in seconds, the limits applied)."""
    d = _fresh(run_dir)
    data = ctx.train_data
    where = f"run {index} (seed {seed})"
    threads = threads_env(ctx)
    say(ctx, index, runs, f"run {index + 1}/{runs} (seed {seed}): starting the sandbox")
    train_start = time.time()
    step = Step(
        argv=train_command(ctx.trainer, ctx.run_config, seed, d["out"], rdzv_endpoint=ctx.rdzv_endpoint)
        + list(data.args if data else ()),
        cwd=d["out"],
        writable=[d["out"], d["home"], d["tmp"]],
        readonly=[*ctx.trainer.readonly, *(data.readonly if data else ())],
        hidden=[*ctx.hidden, *(data.hidden if data else ())],
        env={
            "HOME": str(d["home"]),
            "TMPDIR": str(d["tmp"]),
            "SPEEDRUN_HOME": str(d["home"] / "speedrun"),
            **threads,
        },
        gpu=ctx.gpu,
    )
    tail = MetricsTail(d["out"], METRICS_FILE)
    o, applied = _run_step(
        step, ctx.limits, ctx, run_dir / PROCESS_LOG_FILE, on_poll=_progress(ctx, tail, index, runs, seed)
    )
    note_phases(
        run_dir,
        index=index,
        runs=runs,
        seed=seed,
        train_start=train_start,
        train_end=time.time(),
        train_clock_s=o.elapsed_s,
        train_threads=threads.get(THREADS_ENV),
    )
    if o.stop_reason is not None:
        raise VerifyError(f"{where} {o.stop_reason}", logs_tail(run_dir))
    if o.returncode != 0:
        raise VerifyError(f"{where} exited with code {o.returncode}", logs_tail(run_dir))
    try:
        for name, cap in ((LOG_FILE, artifacts.LOG_CAP), (METRICS_FILE, artifacts.METRICS_CAP)):
            artifacts.check(d["out"], name, cap, label=f"run-{index}/{name}")
        raw = artifacts.read_bytes(d["out"], RESULT_FILE, artifacts.RESULT_CAP, label=f"run-{index}/{RESULT_FILE}")
        artifacts.check(d["out"], MODEL_FILE, artifacts.MODEL_CAP, label=f"run-{index}/{MODEL_FILE}", required=True)
    except FileNotFoundError:
        raise VerifyError(f"{where} finished without writing {RESULT_FILE}", logs_tail(run_dir)) from None
    except artifacts.ArtifactError as exc:
        raise VerifyError(f"{where}: {exc.reason}", logs_tail(run_dir)) from exc
    try:
        result = RunResult.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
        raise VerifyError(f"{where} wrote an invalid {RESULT_FILE}: {problems}", logs_tail(run_dir)) from exc
    if result.seed != seed:
        raise VerifyError(f"{where} reports seed {result.seed}; the verifier asked for {seed}", logs_tail(run_dir))
    return result, o.elapsed_s, applied


def _model_step(ctx: RunContext, run_dir: Path, seed: int, home: Path, env: dict[str, str]) -> Step:
    """The model process: the run's model behind a pipe; it sees the run's output (and a fork's code)."""
    req = ModelRequest(
        recipe=ctx.run_config.recipe,
        overrides=dict(ctx.run_config.overrides),
        seed=seed,
        model_dir=str(run_dir / "out"),
        device=ctx.eval_inputs.device,
        entry_point=ctx.trainer.entry_point,
        fork_src=None if ctx.trainer.fork_src is None else str(ctx.trainer.fork_src),
    )
    (home / "request.json").write_text(req.model_dump_json(), encoding="utf-8")
    readonly = [run_dir / "out", *(ctx.trainer.readonly if ctx.trainer.entry_point is not None else ())]
    return Step(
        argv=[sys.executable, "-m", "submissions.model_process", str(home / "request.json")],
        cwd=home,
        writable=[home],
        readonly=readonly,
        hidden=ctx.hidden,
        env={"HOME": str(home), "TMPDIR": str(home), **env},
        gpu=ctx.gpu,
    )


def score_run(
    ctx: RunContext, *, seed: int, run_dir: Path, index: int = 0, runs: int = 1, steps: int | None = None
) -> Score:
    """CORE and val_bpb of the run's checkpoint: the verifier's scorer and the run's model process,
    each in its own sandbox with a fresh HOME/TMPDIR, joined by two pipes. ``steps``: the run's
    steps, for the progress report (step = steps says the run is being scored)."""
    e = ctx.eval_inputs
    eval_dir, eval_home, model_home = run_dir / "eval", run_dir / "eval-home", run_dir / "model-home"
    for d in (eval_home, model_home):
        d.mkdir(exist_ok=True)
    where = f"run {index} (seed {seed}): scoring its checkpoint"
    threads = threads_env(ctx)  # the scorer and the model process take turns: each gets the free CPUs
    say(ctx, index, runs, f"run {index + 1}/{runs} (seed {seed}): scoring CORE", step=steps)
    score_start = time.time()
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    req = ScoreRequest(
        recipe=ctx.run_config.recipe,
        overrides=dict(ctx.run_config.overrides),
        seed=seed,
        out_dir=str(eval_dir),
        bundle=None if e.bundle is None else str(e.bundle),
        data_dir=None if e.data_dir is None else str(e.data_dir),
        tokenizer_dir=str(e.tokenizer_dir),
        device=e.device,
        fork_model=ctx.trainer.entry_point is not None,
        to_model_fd=to_w,
        from_model_fd=from_r,
    )
    (eval_dir / "request.json").write_text(req.model_dump_json(), encoding="utf-8")
    scorer = Step(
        argv=[sys.executable, "-m", "submissions.score", str(eval_dir / "request.json")],
        cwd=eval_dir,
        writable=[eval_dir, eval_home],
        readonly=[e.tokenizer_dir, *(p for p in (e.data_dir, e.bundle) if p is not None)],
        hidden=ctx.hidden,
        env={"HOME": str(eval_home), "TMPDIR": str(eval_home), **threads},
        gpu=ctx.gpu,
    )
    model_log_r, model_log_w = os.pipe()
    (run_dir / "model.log").write_bytes(b"$ python -m submissions.model_process\n")
    started = time.monotonic()
    try:
        model_step = _model_step(ctx, run_dir, seed, model_home, threads)
        model = launch(
            model_step, ctx.model_limits, sealed=ctx.trainer.sealed, stdin=to_r, stdout=from_w, stderr=model_log_w
        )
    finally:
        for fd in (to_r, from_w, model_log_w):
            os.close(fd)
    model_log = _BoundedLog(model_log_r, run_dir / "model.log")
    model_log.start()
    model_done = threading.Event()
    model_out: list[StepOutcome] = []

    def watch_model() -> None:
        model_out.append(
            supervise(model, ctx.model_limits, started=started, disk_dirs=model_step.writable, cancel=model_done)
        )

    watcher = threading.Thread(target=watch_model, name=f"model-{index}", daemon=True)
    watcher.start()
    try:
        o, _ = _run_step(scorer, ctx.eval_limits, ctx, run_dir / "eval.log", pass_fds=(to_w, from_r))
        note_phases(
            run_dir,
            score_start=score_start,
            score_end=time.time(),
            score_s=time.monotonic() - started,
            score_threads=threads.get(THREADS_ENV),
        )
    finally:
        for fd in (to_w, from_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        watcher.join(timeout=10)  # the scorer said bye; a model process that lingers is stopped
        model_done.set()
        watcher.join(timeout=60)
        model_log.join(timeout=30)
    m = model_out[0] if model_out else None
    model_note = ""
    if m is not None and (m.stop_reason is not None or m.returncode not in (0, None)):
        model_note = f" (model process: {m.stop_reason or f'exit code {m.returncode}'})"
    log_tail = _tail(
        artifacts.read_tail(run_dir, "eval.log", 64_000) + artifacts.read_tail(run_dir, "model.log", 64_000)
    )
    with contextlib.suppress(artifacts.ArtifactError, FileNotFoundError, ValueError, ValidationError):
        raw = artifacts.read_bytes(
            eval_dir, FAILURE_FILE, artifacts.RESULT_CAP, label=f"run-{index}/eval/{FAILURE_FILE}"
        )
        reason = str(json.loads(raw).get("reason", "unknown"))
        raise VerifyError(f"{where} failed: {reason}{model_note}", log_tail)
    if o.stop_reason is not None or o.returncode != 0:
        why = o.stop_reason or f"exit code {o.returncode}"
        raise VerifyError(f"{where} failed: the scorer stopped ({why}){model_note}", log_tail)
    try:
        raw = artifacts.read_bytes(eval_dir, SCORE_FILE, artifacts.RESULT_CAP, label=f"run-{index}/eval/{SCORE_FILE}")
        return Score.model_validate_json(raw)
    except (artifacts.ArtifactError, FileNotFoundError, ValidationError) as exc:
        raise VerifyError(f"{where}: no valid {SCORE_FILE} ({exc})") from exc
