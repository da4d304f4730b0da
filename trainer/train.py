"""train(config, sinks) -> RunResult: the training loop, linear and visible.

Setup (process group, device, plan, data, model, optimizer, loader, resume, untimed compile
warm-up with a full state reset), then one loop whose iterations read top to bottom:

    eval (val_bpb; CORE at the end) -> checkpoint -> step (timed) -> log

and at the end the run result: `result.json`, `metrics.jsonl`, `train.log` and `model.pt` under
`config.out_dir`. Launch several processes with `torchrun` (one per GPU; gloo on CPU); the
process group is read from torchrun's environment at call time, never at import.
"""

from __future__ import annotations

import copy
import os
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from contract import LOG_FILE, METRICS_FILE, MODEL_FILE, RESULT_FILE, __version__
from contract.schema import CoreResult, Digests, RunResult
from trainer.attention import BackendChoice, select_backend
from trainer.checkpoint import latest_step, load_checkpoint, mark_latest, rng_state, save_checkpoint, save_model
from trainer.clock import Clock, WallClock
from trainer.config import TrainConfig, overrides_of
from trainer.data.manifest import file_sha256
from trainer.hardware import fingerprint, peak_flops, run_software
from trainer.inputs import RunInputs, prepare_inputs
from trainer.memory import keep_freed_memory
from trainer.model import GPT, GPTConfig, build_model
from trainer.optim import MuonAdamW, build_optimizer
from trainer.plan import Plan, resolve
from trainer.sinks import JsonlSink, LogFileSink, Sink, Sinks, StdoutSink, wandb_sink

# --- setup helpers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def nodes(self) -> int:
        return max(1, self.world_size // self.local_world_size)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def dist_env_from_environ(environ: dict[str, str] | None = None) -> DistEnv:
    """The process's place in a torchrun launch (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE)."""
    env = dict(os.environ) if environ is None else environ
    world = int(env.get("WORLD_SIZE", "1"))
    return DistEnv(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
    )


def resolve_device(config: TrainConfig, env: DistEnv) -> torch.device:
    want = config.runtime.device
    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"runtime.device: recipe {config.recipe!r} needs a CUDA GPU and this machine has none "
                "(use --recipe cpu_smoke on a CPU)"
            )
        return torch.device("cuda", env.local_rank)
    keep_freed_memory()  # a CPU run's steps reuse their activations' memory
    return torch.device("cpu")


def compute_dtype_for(device: torch.device) -> torch.dtype:
    """bf16 on SM >= 80, else fp32 (CPU and older GPUs)."""
    if device.type == "cuda" and torch.cuda.get_device_capability(device)[0] >= 8:
        return torch.bfloat16
    return torch.float32


def synchronizer(device: torch.device) -> Any:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def trainer_commit() -> str | None:
    """`git rev-parse HEAD` of the source tree when it is a git checkout, else None."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if len(sha) == 40 else None


# --- one optimizer step ----------------------------------------------------------------------------


def train_step(
    model: torch.nn.Module,
    optimizer: MuonAdamW,
    batches: Any,
    grad_accum_steps: int,
) -> torch.Tensor:
    """Forward/backward `grad_accum_steps` micro-batches, average gradients, update; returns the mean loss."""
    total = torch.zeros((), dtype=torch.float32)
    for _ in range(grad_accum_steps):
        inputs, targets = next(batches)
        loss = model(inputs, targets)
        (loss / grad_accum_steps).backward()
        total = total.to(loss.device) + loss.detach().float()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return total / grad_accum_steps


# --- the run ---------------------------------------------------------------------------------------


def _config_for_compare(d: dict[str, Any]) -> dict[str, Any]:
    """The parts of a config that must match between a checkpoint and its resume."""
    d = copy.deepcopy(d)
    d.pop("checkpoint", None)
    d.pop("log", None)
    d.pop("out_dir", None)
    return d


def _make_sinks(config: TrainConfig, out_dir: Path, extra: Sink | None, resumed_step: int | None, main: bool) -> Sinks:
    if not main:
        return Sinks([extra] if extra is not None else [])
    sinks: list[Sink] = [
        JsonlSink(out_dir / METRICS_FILE, keep_until_step=resumed_step),
        LogFileSink(out_dir / LOG_FILE, append=resumed_step is not None),
        StdoutSink(every_steps=config.log.log_every_steps, progress=config.log.progress),
        wandb_sink(config.log.wandb_project, run_name=out_dir.name, config=config.to_dict()),
    ]
    if extra is not None:
        sinks.append(extra)
    return Sinks(sinks)


def _evaluate_bpb(model: GPT, inputs: RunInputs, config: TrainConfig, env: DistEnv, device: torch.device) -> float:
    from trainer.data.loader import val_batches
    from trainer.evaluation.bpb import evaluate_bpb, merged_batches
    from trainer.evaluation.rows import default_batch_tokens

    batches = val_batches(
        inputs.data_dir,
        inputs.tokenizer,
        batch_size=config.data.device_batch_size,
        seq_len=config.model.sequence_len,
        num_tokens=config.eval.eval_tokens,
        rank=env.rank,
        world_size=env.world_size,
        device=device,
    )
    joined = merged_batches(batches, default_batch_tokens(device))
    return evaluate_bpb(model, joined, inputs.tokenizer.token_bytes(), world_size=env.world_size)


def _evaluate_core(
    model: GPT, inputs: RunInputs, config: TrainConfig, env: DistEnv, device: torch.device
) -> CoreResult:
    from trainer.evaluation.core import evaluate_core

    return evaluate_core(
        model,
        inputs.tokenizer,
        inputs.bundle,
        device=device,
        max_per_task=config.eval.core_max_per_task,
        rank=env.rank,
        world_size=env.world_size,
        max_seq_len=model.rope_cos.size(1),  # crop only prompts longer than the RoPE table
        progress=config.log.progress and env.is_main,
    )


def _barrier(env: DistEnv) -> None:
    if env.world_size > 1:
        dist.barrier()


def train(config: TrainConfig, sinks: Sink | None = None, *, env: DistEnv | None = None) -> RunResult:
    """Train `config` and write the run's files under `config.out_dir`; returns the RunResult (on every rank)."""
    if config.out_dir is None:
        raise ValueError("out_dir: a run needs an output directory")
    wall = WallClock()
    started_at = datetime.now(UTC)
    env = env or dist_env_from_environ()
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(config, env)
    own_group = False
    if env.world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        own_group = True
    try:
        return _train(config, sinks, env, out_dir, device, wall, started_at)
    finally:
        if own_group:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    extra_sink: Sink | None,
    env: DistEnv,
    out_dir: Path,
    device: torch.device,
    wall: WallClock,
    started_at: datetime,
) -> RunResult:
    from trainer.data.loader import DataLoader

    # --- plan, inputs, model, optimizer, loader ---
    plan: Plan = resolve(config, env.world_size)
    inputs = prepare_inputs(config, progress=config.log.progress and env.is_main)
    dtype = compute_dtype_for(device)
    torch.manual_seed(config.seed)
    model = build_model(GPTConfig.from_train_config(config), device, dtype)
    attention = select_backend(device, config.runtime.attention)
    model.attention_backend = attention.name
    optimizer = build_optimizer(
        model.param_groups(),
        plan.learning_rates,
        plan.weight_decays,
        plan.adam_betas,
        config.optim,
        ortho_dtype=dtype,
    )
    loader = DataLoader(
        inputs.data_dir,
        inputs.tokenizer,
        batch_size=config.data.device_batch_size,
        seq_len=config.model.sequence_len,
        rank=env.rank,
        world_size=env.world_size,
        device=device,
        buffer_docs=config.data.buffer_docs,
        seed=config.seed,
        order=config.data.order,
    )
    step_model: Any = torch.compile(model, dynamic=False) if config.runtime.compile else model
    clock = Clock(synchronizer(device))

    # --- resume ---
    start_step = 0
    resumed: int | None = None
    if config.checkpoint.resume and (found := latest_step(out_dir)) is not None:
        ckpt = load_checkpoint(out_dir, found, rank=env.rank)
        if _config_for_compare(ckpt["config"]) != _config_for_compare(config.to_dict()):
            raise ValueError(f"--resume: the checkpoint in {out_dir} was written by a different config")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        loader.load_state_dict(ckpt["loader"])
        clock.load_state_dict(ckpt["clock"])
        wall.previous_seconds = float(ckpt["extra"]["wall_seconds"])
        started_at = datetime.fromisoformat(ckpt["extra"]["started_at"])
        start_step = resumed = found
    sinks = _make_sinks(config, out_dir, extra_sink, resumed, env.is_main)
    sinks.text(f"speedrun {__version__}: recipe {config.recipe}, seed {config.seed}, device {device}")
    sinks.text(f"attention {attention.name} {attention.version} ({attention.reason}), dtype {dtype}")
    sinks.text(f"compile {config.runtime.compile}")
    if resumed is not None:
        sinks.text(f"resumed from the checkpoint after step {resumed}")

    # --- untimed compile warm-up, then a full reset of model, optimizer, loader and RNG ---
    warmup = config.runtime.compile_warmup_steps  # compilation, autotuning, allocator warm-up
    if warmup > 0:
        snapshot = (
            copy.deepcopy(model.state_dict()),
            copy.deepcopy(optimizer.state_dict()),
            loader.state_dict(),
            rng_state(),
        )
        for i in range(warmup):
            optimizer.apply_schedules(start_step + i, plan.num_iterations, config.optim)
            train_step(step_model, optimizer, loader, plan.grad_accum_steps)
        model.load_state_dict(snapshot[0])
        optimizer.load_state_dict(snapshot[1])
        loader.load_state_dict(snapshot[2])
        from trainer.checkpoint import set_rng_state

        set_rng_state(snapshot[3])
        sinks.text(f"warm-up: {warmup} untimed steps, then model, optimizer, loader and RNG reset")

    peak = peak_flops(fingerprint(device))
    flops_per_step = plan.flops_per_token * plan.total_batch_size
    num_iterations = plan.num_iterations
    step = start_step
    last_loss: float | None = None
    val_bpb: float | None = None
    core: CoreResult | None = None
    try:
        while True:
            last = step == num_iterations

            # --- eval ---
            every = config.eval.eval_every_steps
            wanted = last or (every is not None and step % every == 0)
            if config.eval.enabled and wanted and step != resumed:
                val_bpb = _evaluate_bpb(model, inputs, config, env, device)
                record: dict[str, Any] = {"step": step, "val_bpb": val_bpb}
                if last and inputs.bundle is not None:
                    core = _evaluate_core(model, inputs, config, env, device)
                    record["core"] = core.core
                sinks.eval(record)
            if last:
                break

            # --- checkpoint ---
            ckpt_every = config.checkpoint.every_steps
            if ckpt_every is not None and step > 0 and step % ckpt_every == 0 and step != resumed:
                save_checkpoint(
                    out_dir,
                    step=step,
                    model=model,
                    optimizer=optimizer,
                    loader_state=loader.state_dict(),
                    clock_state=clock.state_dict(),
                    config=config.to_dict(),
                    extra={"wall_seconds": wall.seconds, "started_at": started_at.isoformat()},
                    rank=env.rank,
                )
                _barrier(env)
                if env.is_main:
                    mark_latest(out_dir, step)

            # --- step (timed) ---
            multipliers = optimizer.apply_schedules(step, num_iterations, config.optim)
            with clock.timed_step():
                loss = train_step(step_model, optimizer, loader, plan.grad_accum_steps)
            step += 1

            # --- log ---
            if env.world_size > 1:
                dist.all_reduce(loss, op=dist.ReduceOp.SUM)
                loss = loss / env.world_size
            last_loss = float(loss.item())
            step_s = max(clock.last_step_seconds, 1e-9)
            mean_step_s = clock.training_seconds / max(1, clock.timed_steps)
            sinks.train(
                {
                    "step": step,
                    "num_iterations": num_iterations,
                    "loss": last_loss,
                    "lr_scale": multipliers["lr_scale"],
                    "lr": plan.learning_rates["matrices"] * multipliers["lr_scale"],
                    "muon_momentum": multipliers["muon_momentum"],
                    "tokens_per_s": plan.total_batch_size / step_s,
                    "mfu": None if peak is None else flops_per_step / (step_s * peak * env.world_size),
                    "step_seconds": step_s,
                    "training_seconds": clock.training_seconds,
                    "eta_seconds": mean_step_s * (num_iterations - step),
                }
            )
    except BaseException:
        sinks.text(f"interrupted after step {step}")
        sinks.close()
        raise
    finally:
        loader.close()

    # --- the run result ---
    if env.is_main:
        save_model(out_dir / MODEL_FILE, model)
    sinks.text(f"done: {clock.training_seconds:.2f}s timed, {wall.seconds:.2f}s wall")
    sinks.close()
    result = _run_result(
        config, plan, inputs, env, device, clock, wall, started_at, last_loss, val_bpb, core, attention
    )
    if env.is_main:
        tmp = out_dir / f".{RESULT_FILE}.tmp"
        tmp.write_text(result.model_dump_json(indent=2) + "\n")
        os.replace(tmp, out_dir / RESULT_FILE)
    _barrier(env)
    return result


def _run_result(
    config: TrainConfig,
    plan: Plan,
    inputs: RunInputs,
    env: DistEnv,
    device: torch.device,
    clock: Clock,
    wall: WallClock,
    started_at: datetime,
    final_loss: float | None,
    val_bpb: float | None,
    core: CoreResult | None,
    attention: BackendChoice,
) -> RunResult:
    out_dir = Path(str(config.out_dir))
    hw = fingerprint(device, devices_per_node=env.local_world_size, nodes=env.nodes)
    peak = peak_flops(hw)
    flops = plan.flops_per_token * plan.total_tokens
    mfu = None
    if peak is not None and clock.training_seconds > 0:
        mfu = min(1.0, flops / (clock.training_seconds * peak * env.world_size))
    metrics = out_dir / METRICS_FILE
    digests = Digests(
        data_manifest_sha256=inputs.manifest.sha256,
        shards=dict(inputs.manifest.shards),
        tokenizer_sha256=inputs.tokenizer.sha256,
        eval_bundle_sha256=None if inputs.bundle is None else inputs.bundle.sha256,
        metrics_log_sha256=file_sha256(metrics) if metrics.is_file() else None,
    )
    finished_at = datetime.now(UTC)
    return RunResult(
        run_id=f"{config.recipe}-s{config.seed}-{started_at:%Y%m%dT%H%M%SZ}",
        recipe=config.recipe,
        overrides=overrides_of(config),
        seed=config.seed,
        trainer_version=__version__,
        trainer_commit=trainer_commit(),
        config=config.to_dict(),
        plan=plan.to_dict(),
        training_seconds=clock.training_seconds,
        wall_seconds=wall.seconds,
        steps=plan.num_iterations,
        tokens=plan.total_tokens,
        flops=flops,
        final_loss=final_loss,
        val_bpb=val_bpb,
        core=core,
        mfu=mfu,
        attention_backend=attention.name,
        hardware=hw,
        software=run_software(attention),
        digests=digests,
        started_at=started_at,
        finished_at=finished_at,
    )
