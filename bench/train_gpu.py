"""GPU training throughput at depth 24 (or the largest depth that fits one GPU): tokens/s, MFU, peak memory.

For each precision (bf16, fp8): build the model, torch.compile it, run untimed warm-up steps, then
50 timed optimizer steps (CUDA-synchronized), on one GPU with random token batches (the loader is
benchmarked separately in bench/loader.py). MFU is against the GPU's bf16 dense peak
(`contract.hardware.PEAKS`) with FLOPs per token from `plan.resolve` (fp8 layers counted).
The reference in the same run is bf16; `ratio` = fp8 / bf16 tokens/s. The public record runs at
about 59% bf16-equivalent MFU on 8xH100.

Without a CUDA GPU it prints a JSON object saying so and exits 0.

    python bench/train_gpu.py [--depth 24] [--steps 50] [--device-batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any


def measure(depth: int, dbs: int, fp8: bool, steps: int, warmup: int, compiled: bool) -> dict[str, Any]:
    import torch

    from contract.hardware import peak_flops, sku_from_device_name
    from trainer.attention import select_backend
    from trainer.config import build_config
    from trainer.model import GPTConfig, build_model
    from trainer.optim import build_optimizer
    from trainer.plan import resolve
    from trainer.train import train_step

    dev = torch.device("cuda")
    cfg = build_config(
        "gpt2_speedrun", {"depth": depth, "device_batch_size": dbs, "total_batch_size": dbs * 2048, "fp8": fp8}
    )
    plan = resolve(cfg, world_size=1)
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats(dev)
    model = build_model(GPTConfig.from_train_config(cfg), dev, torch.bfloat16)
    model.attention_backend = select_backend(dev).name
    opt = build_optimizer(
        model.param_groups(),
        plan.learning_rates,
        plan.weight_decays,
        plan.adam_betas,
        cfg.optim,
        ortho_dtype=torch.bfloat16,
    )
    step_model: Any = torch.compile(model, dynamic=False) if compiled else model
    g = torch.Generator(device=dev).manual_seed(0)

    def batches() -> Any:
        while True:
            rows = torch.randint(0, plan.vocab_size, (dbs, 2049), device=dev, generator=g)
            yield rows[:, :-1], rows[:, 1:]

    it = batches()
    for i in range(warmup):
        opt.apply_schedules(i, 1000, cfg.optim)
        train_step(step_model, opt, it, 1)
    torch.cuda.synchronize(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        opt.apply_schedules(warmup + i, 1000, cfg.optim)
        train_step(step_model, opt, it, 1)
    torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0
    name = torch.cuda.get_device_name(dev)
    peak = peak_flops(sku_from_device_name(name))
    tps = plan.total_batch_size * steps / seconds
    return {
        "device": name,
        "depth": depth,
        "device_batch_size": dbs,
        "fp8": fp8,
        "attention": model.attention_backend,
        "tokens_per_s": tps,
        "mfu": None if peak is None else tps * plan.flops_per_token / peak,
        "peak_memory_gib": torch.cuda.max_memory_allocated(dev) / 2**30,
        "seconds_per_step": seconds / steps,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depth", type=int, default=24)
    ap.add_argument("--device-batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"gpu": None, "note": "no CUDA GPU on this machine: nothing measured (run on a GPU node)"}))
        return 0
    out: dict[str, Any] = {"steps": args.steps, "torch": torch.__version__}
    depth = args.depth
    while depth >= 4:
        try:
            print(f"depth {depth}: bf16", file=sys.stderr)
            bf16 = measure(depth, args.device_batch_size, False, args.steps, args.warmup, not args.no_compile)
            break
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache()
            depth -= 2
            print(f"out of memory; trying depth {depth}", file=sys.stderr)
    else:
        print(json.dumps({"gpu": torch.cuda.get_device_name(), "error": "no depth >= 4 fits"}))
        return 1
    out["bf16"] = bf16
    torch.cuda.empty_cache()
    try:
        print(f"depth {depth}: fp8", file=sys.stderr)
        fp8 = measure(depth, args.device_batch_size, True, args.steps, args.warmup, not args.no_compile)
        out["fp8"] = fp8
        out["ratio_fp8_over_bf16"] = fp8["tokens_per_s"] / bf16["tokens_per_s"]
    except (RuntimeError, torch.OutOfMemoryError) as exc:  # fp8 needs SM >= 89
        out["fp8"] = None
        out["fp8_error"] = f"{type(exc).__name__}: {exc}"[:500]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
