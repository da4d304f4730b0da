"""CORE eval throughput: the batched scorer vs the one-example-per-forward reference, same model and bundle.

Both run in this process on the synthetic core-v1 bundle (22 tasks x 40 examples) with a randomly
initialized GPT of the cpu_smoke recipe's shape (jittered so decisions vary); the per-example
decisions must be identical (agreement printed per task; exit 1 otherwise). The batched scorer uses
the GPT's evaluation extras: an example's options as one token tree (common prefix computed once)
and the head only at the scored positions. The reference is the harness as the
tests write it (tests/evaluation/conftest.py). Also printed: the forward FLOPs per example the
batched scorer spends (padded tokens x forward FLOPs/token), and from them a projection of a full
CORE pass (91,037 examples) of the gpt2_speedrun model (depth 24) on one H100 at an assumed MFU.

    python bench/core_eval.py [--threads 2] [--batch-tokens 16384] [--mfu 0.35]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _reference_module():  # the harness reference lives with the tests; load it from there
    spec = importlib.util.spec_from_file_location("eval_reference", REPO / "tests" / "evaluation" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _forward_flops_per_token(dims, context_tokens: float) -> float:  # type: ignore[no-untyped-def]
    """2 x matmul params + attention (4 x heads x head_dim x attended keys per layer), for one forward token."""
    from trainer.plan import matmul_params

    attn = sum(4 * dims.n_head * dims.head_dim * min(w, context_tokens) for w in dims.window_sizes)
    return 2.0 * matmul_params(dims) + attn


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument(
        "--batch-tokens", type=int, default=4096, help="token budget of a batched forward (default: the CPU default)"
    )
    parser.add_argument("--mfu", type=float, default=0.35, help="assumed H100 bf16 MFU of eval forwards")
    parser.add_argument("--repeats", type=int, default=1, help="runs per task and scorer; the best counts")
    parser.add_argument(
        "--model",
        choices=("smoke", "depth2"),
        default="smoke",
        help="smoke: the cpu_smoke GPT shape (depth 4, dim 128); depth2: depth 2, dim 64 (vocab 2048 both)",
    )
    args = parser.parse_args()

    import torch

    from contract.core_v1 import CORE_V1_EXAMPLES, CORE_V1_LABELS
    from contract.hardware import PEAKS
    from trainer.config import cpu_smoke, gpt2_speedrun
    from trainer.data.synth import SyntheticWorld
    from trainer.data.tokenizer import train_tokenizer
    from trainer.evaluation.bundle import load_bundle, write_synthetic_bundle
    from trainer.evaluation.core import _rows, _units, evaluate_tasks, forward_options, pack_batches
    from trainer.evaluation.prompts import prepare_examples, task_items
    from trainer.model import GPT, GPTConfig
    from trainer.plan import dims_for

    torch.set_num_threads(args.threads)
    ref = _reference_module()
    print("bench: tokenizer, bundle, model", file=sys.stderr)
    tokenizer = train_tokenizer(
        SyntheticWorld(0).documents(3000, seed=0), vocab_size=2048, max_chars=10**8, progress=False
    )
    tmp = Path(tempfile.mkdtemp(prefix="core-bench-"))
    bundle = load_bundle(write_synthetic_bundle(tmp / "bundle"))
    if args.model == "smoke":
        config = GPTConfig.from_train_config(cpu_smoke())
    else:
        config = GPTConfig.from_train_config(
            cpu_smoke().replace(**{"model.depth": 2, "model.aspect_ratio": 32, "model.head_dim": 32})
        )
    torch.manual_seed(0)
    model = GPT(config)
    model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.lm_head.weight.normal_(0.0, 0.3)
    model.eval()

    print("bench: batched and reference, interleaved task by task", file=sys.stderr)
    evaluate_tasks(model, tokenizer, bundle, device="cpu", labels=["copa"], progress=False)  # warm-up
    # Task by task, alternating which scorer goes first, so a machine whose load drifts (shared CPUs)
    # weighs on both alike; each figure is the sum over tasks of the best of --repeats runs.
    outcomes = []
    reference: dict[str, list[bool]] = {}
    batched_s = reference_s = 0.0
    for i, label in enumerate(CORE_V1_LABELS):
        best_b = best_r = float("inf")
        for r in range(args.repeats):
            for which in ("batched", "reference") if (i + r) % 2 == 0 else ("reference", "batched"):
                t0 = time.perf_counter()
                if which == "batched":
                    (outcome,) = evaluate_tasks(
                        model,
                        tokenizer,
                        bundle,
                        device="cpu",
                        labels=[label],
                        batch_tokens=args.batch_tokens,
                        progress=False,
                    )
                    best_b = min(best_b, time.perf_counter() - t0)
                else:
                    reference[label] = ref.reference_task(model, tokenizer, bundle, label, None)
                    best_r = min(best_r, time.perf_counter() - t0)
        outcomes.append(outcome)
        batched_s += best_b
        reference_s += best_r
        print(f"bench: {label}: batched {best_b:.2f}s, reference {best_r:.2f}s", file=sys.stderr)

    agree = {o.label: sum(a == b for a, b in zip(o.correct, reference[o.label], strict=True)) for o in outcomes}
    examples = sum(o.n for o in outcomes)
    identical = sum(agree.values()) == examples

    # Tokens the batched scorer feeds the model (padded batch rows: an example's options as one token tree
    # when the model takes one), and the tokens of the reference's rows, per example.
    share_prefix = forward_options(model)[1]
    padded = real = fed = 0
    for task in bundle.tasks:
        items = task_items(task.items, None)
        rows = _rows(prepare_examples(task.spec, items, range(len(items)), tokenizer))
        real += sum(len(r.tokens) for r in rows)
        lengths = [len(u.tokens) for u in _units(rows, share_prefix)]
        fed += sum(lengths)
        padded += sum(len(b) * lengths[b[0]] for b in pack_batches(lengths, args.batch_tokens))
    mean_context = real / max(1, sum(len(task.items) for task in bundle.tasks))
    d24 = dims_for(gpt2_speedrun())
    flops_token_d24 = _forward_flops_per_token(d24, mean_context)
    flops_example_d24 = flops_token_d24 * padded / examples
    full_examples = sum(CORE_V1_EXAMPLES.values())
    projected_s = full_examples * flops_example_d24 / (PEAKS["h100-sxm"].flops * args.mfu)

    result = {
        "bench": "core_eval",
        "device": "cpu",
        "threads": args.threads,
        "timing": f"task by task, interleaved, best of {args.repeats}",
        "model": f"GPT depth {config.n_layer}, dim {config.n_embd}, vocab {config.vocab_size} ({args.model}), random",
        "bundle": "synthetic core-v1, 22 tasks x 40 examples",
        "examples": examples,
        "batch_tokens": args.batch_tokens,
        "batched_seconds": round(batched_s, 3),
        "batched_examples_per_s": round(examples / batched_s, 2),
        "reference_seconds": round(reference_s, 3),
        "reference_examples_per_s": round(examples / reference_s, 2),
        "speedup": round(reference_s / batched_s, 2),
        "target_speedup": 3.0,
        "identical_decisions": identical,
        "agreement_per_task": {o.label: f"{agree[o.label]}/{o.n}" for o in outcomes},
        "accuracy_mean": round(sum(o.accuracy for o in outcomes) / len(outcomes), 4),
        "tokens_per_example_real": round(real / examples, 1),
        "tokens_per_example_shared_prefix": round(fed / examples, 1),
        "tokens_per_example_padded": round(padded / examples, 1),
        "projection_h100": {
            "model": f"gpt2_speedrun depth {d24.n_layer}, dim {d24.model_dim}, vocab {d24.vocab_size}",
            "forward_flops_per_token": flops_token_d24,
            "forward_flops_per_example": flops_example_d24,
            "examples": full_examples,
            "assumed_mfu": args.mfu,
            "bf16_peak_flops": PEAKS["h100-sxm"].flops,
            "seconds": round(projected_s, 1),
            "note": "synthetic prompts are shorter than the public bundle's; scale by the real tokens/example",
        },
    }
    print(json.dumps(result, indent=2))
    if not identical:
        print("bench: batched and reference decisions differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
