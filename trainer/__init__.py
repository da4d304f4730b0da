"""The reference trainer: the GPT-2 speedrun recipe, timed and reproducible, on GPUs and on a CPU.

Library modules (no side effects at import; torch is imported by the modules that need it):

- `config`: TrainConfig, the recipes (`gpt2_speedrun`, `d12`, `cpu_smoke`), the pinned overrides.
- `plan`: `resolve(config, world_size)`, every derived number (dims, params, FLOPs, batch, steps, LRs).
- `model`, `attention`, `fp8`: the GPT; FA3 -> FA2 -> SDPA; fp8 tensorwise Linear.
- `optim`: Muon + AdamW in one optimizer; the schedules.
- `train`: `train(config, sinks) -> RunResult`; `clock`, `checkpoint`, `sinks`, `hardware` around it.

Launching:

    speedrun train --recipe cpu_smoke --out runs/smoke                   # CPU, about 20 s
    torchrun --nproc_per_node=8 -m speedrun train --recipe gpt2_speedrun --out runs/gpt2
    # several nodes (run on every node; HOST:PORT is the first node's address):
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv-backend=c10d --rdzv-endpoint=HOST:29500 \\
        --rdzv-id=gpt2-run -m speedrun train --recipe gpt2_speedrun --out runs/gpt2

On a busy CPU, `OMP_NUM_THREADS=1` avoids OpenMP threads spinning against each other.
"""
