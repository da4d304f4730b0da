"""Issue 18: sealed start-up (median of 7 launches of `python -c pass` / `import torch` through
submissions.sandbox.launch) and one cpu-smoke verification (20 steps, 1 run, seed 7, full CORE), for
the code on sys.path: run it from two checkouts back to back (PYTHONPATH=<checkout>) to compare.

    python bench/verify_timing.py
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract.schema import RunConfig
from contract.tracks import BUILTIN_TRACKS
from submissions.sandbox import Limits, Step, launch
from submissions.verify import verify


def startup(code, n=7):
    ts = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as tmp:
            step = Step(argv=[sys.executable, "-c", code], cwd=Path(tmp), writable=[Path(tmp)], env={"HOME": tmp})
            t0 = time.perf_counter()
            p = launch(step, Limits(wall_s=120), sealed=True, stdout=subprocess.DEVNULL)
            p.wait()
            ts.append(time.perf_counter() - t0)
            assert p.returncode == 0
    return round(statistics.median(ts), 3)


out = {"startup_pass_s": startup("pass"), "startup_torch_s": startup("import torch")}
cfg = RunConfig.model_validate(
    {
        "trainer": {"kind": "reference", "version": "0.1.0"},
        "recipe": "cpu_smoke",
        "overrides": {"num_iterations": 20},
        "hardware_class": "cpu",
        "gpus_per_node": 0,
    }
)
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    rep = verify(cfg, track=BUILTIN_TRACKS["cpu-smoke"], runs=1, seeds=[7], out_dir=Path(tmp) / "job")
    out["verify_1run_20steps_s"] = round(time.perf_counter() - t0, 1)
    r = rep.runs[0] if rep.runs else None
    out.update(
        verdict=rep.verdict.value,
        core=r.core.core if r and r.core else None,
        clock_s=r.training_seconds if r else None,
        self_s=r.self_reported_training_seconds if r else None,
    )
print(json.dumps(out))
