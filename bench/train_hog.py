"""Issue 22: cpu_smoke training alone and beside one CPU-bound process, with torch's default thread
count (every core: what `speedrun train` did before) and with the threads trainer.cpus measures.

Each case runs `speedrun train --recipe cpu_smoke --num-iterations N --no-eval` in a subprocess
and reads the trainer's timed region from result.json; ``--hog`` cases start one
``while True: pass`` first. "default" pins OMP_NUM_THREADS to the machine's CPU count (torch's
default), "measured" leaves it unset so the trainer measures the free CPUs. Prints one JSON
object with /proc/loadavg before and after each case and the slowdown beside the hog.

    python bench/train_hog.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def case(steps: int, threads: str, hog: bool, work: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if threads == "default":
        env["OMP_NUM_THREADS"] = str(os.cpu_count() or 1)
    out = work / f"{threads}-{'hog' if hog else 'alone'}"
    hog_proc = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    before = loadavg()
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--num-iterations", str(steps)]
    done = subprocess.run(
        [*cmd, "--out", str(out), "--no-progress", "--no-eval"], env=env, capture_output=True, text=True
    )
    wall = time.monotonic() - t0
    if hog_proc is not None:
        hog_proc.kill()
        hog_proc.wait()
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    result = json.loads((out / "result.json").read_text())
    line = next((x for x in done.stderr.splitlines() if "CPU thread(s)" in x), "")
    return {
        "threads": threads,
        "hog": hog,
        "timed_s": round(result["training_seconds"], 1),
        "wall_s": round(wall, 1),
        "thread_line": line,
        "load_before": before,
        "load_after": loadavg(),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for threads in ("default", "measured"):
            for hog in (False, True):
                rows.append(case(args.steps, threads, hog, Path(tmp)))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    by = {(r["threads"], r["hog"]): r["timed_s"] for r in rows}
    out = {
        "steps": args.steps,
        "cpus": os.cpu_count(),
        "cases": rows,
        "slowdown_beside_hog": {t: round(by[(t, True)] / by[(t, False)], 2) for t in ("default", "measured")},
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
