"""All-reduce bandwidth worker, started by `speedrun doctor` under torchrun: `python -m trainer.doctor.allreduce OUT MIB`.

Every rank all-reduces a bf16 tensor of MIB MiB (5 warm-up, 20 timed); rank 0 writes the algorithm and
bus bandwidth (bus = algorithm x 2 (n - 1) / n, the NCCL-tests convention) as JSON to OUT.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main(out: str, size_mib: int) -> None:
    import torch
    import torch.distributed as dist

    local = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    n = dist.get_world_size()
    x = torch.ones(size_mib * 2**20 // 2, dtype=torch.bfloat16, device="cuda")
    for _ in range(5):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    iters = 20
    t0 = time.perf_counter()
    for _ in range(iters):
        dist.all_reduce(x)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / iters
    if dist.get_rank() == 0:
        nbytes = x.numel() * x.element_size()
        algo = nbytes / seconds / 1e9
        result = {
            "gpus": n,
            "size_mib": size_mib,
            "seconds": seconds,
            "algo_gbps": algo,
            "bus_gbps": algo * 2 * (n - 1) / n,
        }
        with open(out, "w") as f:
            json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
