"""CPU training throughput: tokens/s of the cpu_smoke model and of a depth-4 T=512 model, eager vs compiled.

Prints one JSON object. Each case runs real optimizer steps (`trainer.train.train_step`: forward,
backward, Muon + AdamW) on batches from the synthetic corpus through the real loader; the first
steps are warm-up (and compilation) and are not timed. The reference is the eager model measured
in the same run; `ratio` = compiled / eager.

    python bench/train_cpu.py [--steps 10] [--threads 2] [--no-compile]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def measure(overrides: dict[str, Any], *, compiled: bool, steps: int, warmup: int) -> dict[str, float]:
    import torch

    from trainer.config import build_config
    from trainer.data.loader import DataLoader
    from trainer.data.prepare import ensure_synthetic_dataset
    from trainer.model import GPTConfig, build_model
    from trainer.optim import build_optimizer
    from trainer.plan import resolve
    from trainer.train import train_step

    cfg = build_config("cpu_smoke", overrides)
    plan = resolve(cfg)
    torch.manual_seed(0)
    model = build_model(GPTConfig.from_train_config(cfg), torch.device("cpu"), torch.float32)
    opt = build_optimizer(model.param_groups(), plan.learning_rates, plan.weight_decays, plan.adam_betas, cfg.optim)
    step_model: Any = torch.compile(model, dynamic=False) if compiled else model
    ds = ensure_synthetic_dataset(seed=0, vocab_size=cfg.data.synthetic_vocab_size)
    with DataLoader(
        ds.data_dir, ds.load_tokenizer(), batch_size=cfg.data.device_batch_size, seq_len=cfg.model.sequence_len
    ) as loader:
        t0 = time.perf_counter()
        for i in range(warmup):
            opt.apply_schedules(i, 1000, cfg.optim)
            train_step(step_model, opt, loader, plan.grad_accum_steps)
        warmup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(steps):
            opt.apply_schedules(warmup + i, 1000, cfg.optim)
            train_step(step_model, opt, loader, plan.grad_accum_steps)
        seconds = time.perf_counter() - t0
    return {
        "tokens_per_s": plan.total_batch_size * steps / seconds,
        "seconds_per_step": seconds / steps,
        "warmup_seconds": warmup_s,
        "flops_per_token": plan.flops_per_token,
        "gflops_per_s": plan.flops_per_token * plan.total_batch_size * steps / seconds / 1e9,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per case")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per case (compilation happens here)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    ap.add_argument("--no-compile", action="store_true", help="eager only")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    cases = {
        "cpu_smoke": {},
        "depth4_t512": {"depth": 4, "sequence_len": 512, "device_batch_size": 8, "total_batch_size": 4096},
    }
    out: dict[str, Any] = {"threads": args.threads, "steps": args.steps, "torch": torch.__version__}
    for name, overrides in cases.items():
        print(f"{name}: eager", file=sys.stderr)
        eager = measure(overrides, compiled=False, steps=args.steps, warmup=args.warmup)
        row: dict[str, Any] = {"eager": eager}
        if not args.no_compile:
            print(f"{name}: compiled", file=sys.stderr)
            try:
                comp = measure(overrides, compiled=True, steps=args.steps, warmup=args.warmup)
                row["compiled"] = comp
                row["ratio_compiled_over_eager"] = comp["tokens_per_s"] / eager["tokens_per_s"]
            except Exception as exc:  # inductor needs a C++ toolchain; report instead of failing
                row["compiled"] = None
                row["compile_error"] = f"{type(exc).__name__}: {exc}"[:500]
        out[name] = row
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
