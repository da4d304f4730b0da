"""Two gloo processes give the same per-example decisions and bpb as one process (work split over ranks)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bpb import evaluate_bpb
from trainer.evaluation.bundle import Bundle
from trainer.evaluation.core import evaluate_tasks

LABELS = ["arc_easy", "winograd", "squad", "bigbench_operators"]  # MC, schema, LM; 13 items split 7 + 6
RANK_SCRIPT = """
import json, sys
import torch
import torch.distributed as dist
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bpb import evaluate_bpb
from trainer.evaluation.bundle import load_bundle
from trainer.evaluation.core import evaluate_tasks

rank, world, port = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tokenizer_dir, bundle_dir, model_path, batches_path, out = sys.argv[4:9]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
model = torch.load(model_path, weights_only=False)
tokenizer = Tokenizer.load(tokenizer_dir)
outcomes = evaluate_tasks(model, tokenizer, load_bundle(bundle_dir), device="cpu", labels=json.loads(sys.argv[9]),
                          max_per_task=13, rank=rank, world_size=world, progress=False)
batches = torch.load(batches_path)
bpb = evaluate_bpb(model, batches[rank::world], tokenizer.token_bytes(), world_size=world)
with open(out, "w") as f:
    json.dump({"tasks": [[o.label, o.accuracy, list(o.correct)] for o in outcomes], "bpb": bpb}, f)
dist.destroy_process_group()
"""


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process(
    bundle: Bundle,
    synth_bundle_dir: Path,
    tokenizer: Tokenizer,
    gpt_model: torch.nn.Module,
    tmp_path: Path,
    free_port: int,
) -> None:
    tokenizer.save(tmp_path / "tok")
    torch.save(gpt_model, tmp_path / "model.pt")
    ids = torch.tensor(tokenizer.encode("The capital of Zorbia is Quenta. 3 plus 4 is 7. " * 40, prepend_bos=True))
    n = (ids.numel() - 1) // 32 * 32
    x, y = ids[:n].view(-1, 32), ids[1 : n + 1].view(-1, 32)
    batches = [(x[i : i + 2], y[i : i + 2]) for i in range(0, x.size(0), 2)]
    torch.save(batches, tmp_path / "batches.pt")
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(rank),
                "2",
                str(free_port),
                str(tmp_path / "tok"),
                str(synth_bundle_dir),
                str(tmp_path / "model.pt"),
                str(tmp_path / "batches.pt"),
                str(tmp_path / f"out{rank}.json"),
                json.dumps(LABELS),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for rank in range(2)
    ]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    results = [json.loads((tmp_path / f"out{rank}.json").read_text()) for rank in range(2)]

    single = evaluate_tasks(gpt_model, tokenizer, bundle, device="cpu", labels=LABELS, max_per_task=13, progress=False)
    single_bpb = evaluate_bpb(gpt_model, batches, tokenizer.token_bytes())
    expected = [[o.label, o.accuracy, list(o.correct)] for o in single]
    for r in results:
        assert r["tasks"] == expected
        assert r["bpb"] == pytest.approx(single_bpb, rel=1e-12)
    assert any(o.accuracy > 0 for o in single)  # not a vacuous all-wrong comparison
