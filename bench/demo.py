"""Issue 22: `speedrun demo --no-serve` from a new directory with cold caches, as a phase table.

Runs the demo in a subprocess (``python -m speedrun demo --no-serve --home <new dir>``, its
SPEEDRUN_HOME in that dir too, so the corpus, tokenizer and eval bundle are built from nothing),
time-stamps each line it prints, and after it ends reads the local worker's job directory. Prints
one JSON object:

- ``phases``: site start, local training (corpus/tokenizer/bundle included), submission,
  verification (queue wait and lease to the verdict), read from the demo's own lines;
- ``runs``: per sealed run: training (the verifier's clock: sandbox start, imports, data, the
  timed steps, saving), of which the trainer's own timed region, the rest (sandbox start +
  imports + data + save), scoring (both scoring sandboxes); from the job's report.json and the
  modification times of the run's files (so any version of the demo can be measured);
- ``demo_phases``: the demo's own phase table (``<home>/demo-phases.json``) when it writes one;
- ``load``: /proc/loadavg at the start, the end, and the mean and max of its 1-minute figure
  sampled every 2 s while the demo ran; ``hog``: whether a ``while True: pass`` process ran
  beside it (``--hog``).

    python bench/demo.py                      # quiet (as quiet as the machine is)
    python bench/demo.py --hog --timeout 900  # beside one CPU-bound process
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# the demo's own lines that open a phase (regex -> phase name), in order
MILESTONES = [
    (r"data directory", "start"),
    (r"site up on", "site_up"),
    (r"^\[demo\] training ", "training_start"),
    (r"^\[demo\] submitted", "submitted"),
    (r"verifying with a local worker", "verifying"),
    (r"^\[demo\] job \d+: ", "verdict"),
]


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def run_files(job_dir: Path) -> list[dict[str, Any]]:
    """Per run: the verifier's clock and the trainer's timed region (report.json), and the end of
    training and the start and end of scoring (file modification times, epoch seconds)."""
    report_path = job_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    runs = report.get("runs") or []
    out: list[dict[str, Any]] = []
    for i in range(len(list(job_dir.glob("run-*")))):
        run_dir = job_dir / f"run-{i}"

        def mtime(rel: str, d: Path = run_dir) -> float | None:
            p = d / rel
            return p.stat().st_mtime if p.exists() else None

        r = runs[i] if i < len(runs) else {}
        out.append(
            {
                "run": i,
                "seed": r.get("seed"),
                "clock_s": r.get("training_seconds"),
                "timed_steps_s": r.get("self_reported_training_seconds"),
                "steps": r.get("steps"),
                "core": (r.get("core") or {}).get("core"),
                "train_end": mtime("process.log"),
                "score_start": mtime("eval/request.json"),
                "score_end": mtime("eval/score.json"),
            }
        )
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--home", default=None, help="the demo's directory (default: a new temporary one)")
    p.add_argument("--hog", action="store_true", help="run one `while True: pass` process beside the demo")
    p.add_argument("--timeout", type=float, default=1200.0, help="stop the demo after this many seconds")
    p.add_argument("--out", default=None, help="also write the JSON here")
    p.add_argument("--label", default="", help="a label stored in the JSON (e.g. the commit)")
    args = p.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="speedrun-demo-bench-")).resolve()
    if home.exists() and any(home.iterdir()):
        print(f"--home {home} is not empty: the demo must start cold", file=sys.stderr)
        return 2
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPEEDRUN_HOME": str(home / "cache")}
    load_start = loadavg()
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(2.0):
            samples.append(loadavg()[0])

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None
    lines: list[tuple[float, str]] = []
    t0 = time.time()
    cmd = [sys.executable, "-m", "speedrun", "demo", "--no-serve", "--home", str(home)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(args.timeout, proc.kill)
    timer.start()
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.time(), line.rstrip("\n")))
        print(f"{time.time() - t0:7.1f}s {line}", end="", file=sys.stderr, flush=True)
    rc = proc.wait()
    timer.cancel()
    total = time.time() - t0
    if hog is not None:
        hog.kill()
        hog.wait()
    done.set()
    load_end = loadavg()

    marks: dict[str, float] = {}
    for ts, line in lines:
        for pattern, name in MILESTONES:
            if name not in marks and re.search(pattern, line):
                marks[name] = ts
    end = marks.get("verdict", t0 + total)

    def span(a: str, b: str) -> float | None:
        return round(marks[b] - marks[a], 1) if a in marks and b in marks else None

    phases = {
        "site_start_s": span("start", "site_up"),
        "local_training_s": span("training_start", "submitted"),
        "submission_to_worker_s": span("submitted", "verifying"),
        "verification_s": round(end - marks["verifying"], 1) if "verifying" in marks else None,
        "to_verdict_s": round(end - t0, 1) if "verdict" in marks else None,
        "total_s": round(total, 1),
    }
    jobs = sorted((home / "worker").glob("job-*"), key=lambda d: d.stat().st_mtime)
    runs = run_files(jobs[-1]) if jobs else []
    previous = marks.get("verifying")
    for r in runs:  # wall times relative to the previous run's end (the first: the lease)
        r["run_wall_s"] = round(r["score_end"] - previous, 1) if r["score_end"] and previous else None
        r["training_wall_s"] = round(r["train_end"] - previous, 1) if r["train_end"] and previous else None
        if r["clock_s"] is not None and r["timed_steps_s"] is not None:
            r["start_imports_data_save_s"] = round(r["clock_s"] - r["timed_steps_s"], 1)
        if r["score_start"] and r["score_end"]:
            r["scoring_s"] = round(r["score_end"] - r["score_start"], 1)
        if r["train_end"] and r["score_start"]:
            r["between_s"] = round(r["score_start"] - r["train_end"], 1)
        previous = r["score_end"] or previous
        for k in ("train_end", "score_start", "score_end"):
            r.pop(k)
    if runs and previous and "verdict" in marks:
        phases["upload_and_complete_s"] = round(marks["verdict"] - previous, 1)
    demo_json = home / "demo-phases.json"
    verdict = next((line for _, line in lines if re.search(MILESTONES[-1][0], line)), None)
    out = {
        "label": args.label,
        "returncode": rc,
        "timed_out": total >= args.timeout,
        "hog": args.hog,
        "cpus": os.cpu_count(),
        "load": {
            "start": load_start,
            "end": load_end,
            "mean_1min": round(sum(samples) / len(samples), 2) if samples else None,
            "max_1min": max(samples) if samples else None,
        },
        "verdict_line": verdict,
        "phases": phases,
        "runs": runs,
        "demo_phases": json.loads(demo_json.read_text()) if demo_json.is_file() else None,
        "home": str(home),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
