"""CORE eval throughput: this checkout's scorer against a baseline commit's (today's) and the one-example reference.

One GPT of the cpu_smoke recipe's shape, randomly initialized and jittered so decisions vary (``--model
trained``: the model of a real cpu_smoke run, seed 0, with its tokenizer: language-modelling answers right
and wrong as in use, so continuations take more than one round), and the synthetic core-v1 bundle (22
tasks x 40 examples, in the public bundle's format) are written once;
then each scorer runs in a worker process of its own tree (this checkout, and ``git archive`` of
``--baseline``, put first on PYTHONPATH), at each of ``--threads``, two ways:

- in process: ``trainer.evaluation.core.evaluate_tasks`` over the 22 tasks;
- through the sealed verifier's protocol: ``submissions.score.remote_core`` in the worker, talking
  over pipes to ``python -m submissions.model_process`` of the same tree (the model loaded from
  ``model.pt``; ``OMP_NUM_THREADS`` set to the thread count in both processes). Start-up and the
  model process's load are not timed; its requests are.

Workers run interleaved (repeat by repeat, thread count by thread count, alternating which tree goes
first), so a shared machine's load drift weighs on both; each figure is the best and the median of
``--repeats`` wall times, and the median CPU seconds (user + system, all threads; for the model-process
path the scorer's and the model process's), which a busy machine inflates less than wall time.
Every example's decision of every scorer and path must equal the one-example-per-forward reference harness of the tests (tests/evaluation/conftest.py; exit 1 otherwise). Also printed: the
tokens per example the batched scorer feeds the model and a projection of a full CORE pass (91,037
examples) of the gpt2_speedrun model on one H100 at an assumed MFU.

    python bench/core_eval.py [--threads 1,2] [--repeats 3] [--baseline c0012aa] [--model smoke|depth2|trained]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BASELINE = "c0012aa"  # main before issue 22: the scorer being replaced
MODELS = {"smoke": {}, "depth2": {"depth": 2, "aspect_ratio": 32, "head_dim": 32}, "trained": {}}


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


def _load_model(work: Path, model: str) -> Any:
    """The bench's GPT as the model process loads it (built, its RoPE table filled, then the weights)."""
    import torch

    from trainer.model import GPTConfig, build_model
    from trainer.plan import config_of

    config = GPTConfig.from_train_config(config_of("cpu_smoke", MODELS[model], 0))
    gpt = build_model(config, torch.device("cpu"), torch.float32)
    gpt.load_state_dict(torch.load(work / "model" / "model.pt", weights_only=True), strict=True)
    return gpt.eval()


# -- worker: one tree's scorer, timed in process and through a model process ---------------------------


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def worker(work: Path, threads: int, tree: Path, model: str) -> dict[str, Any]:
    import torch

    import trainer
    from contract.core_v1 import CORE_V1_LABELS
    from submissions import score
    from submissions.model_client import Budget, ModelClient
    from trainer.data.tokenizer import Tokenizer
    from trainer.evaluation.bundle import load_bundle
    from trainer.evaluation.core import evaluate_tasks

    torch.set_num_threads(threads)
    tokenizer = Tokenizer.load(work / "tokenizer")
    bundle = load_bundle(work / "bundle")
    gpt = _load_model(work, model)
    evaluate_tasks(gpt, tokenizer, bundle, device="cpu", labels=["copa"], progress=False)  # warm-up

    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = evaluate_tasks(gpt, tokenizer, bundle, device="cpu", progress=False)
    in_process_s, in_process_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    in_process = {o.label: list(o.correct) for o in outcomes}

    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "submissions.model_process", str(work / f"model-{model}.json")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=tree,
    )
    assert proc.stdin is not None and proc.stdout is not None
    budget = Budget(load_s=300.0, base_s=600.0, multiple=1.0, seconds_per_token=0.0)
    client = ModelClient(proc.stdin.fileno(), proc.stdout.fileno(), vocab_size=tokenizer.vocab_size, budget=budget)
    hello = client.hello()
    kw: dict[str, Any] = {"max_per_task": None, "max_seq_len": hello.get("max_positions")}
    t0, c0, m0 = time.perf_counter(), time.process_time(), _cpu_s(proc.pid)
    if hasattr(score, "remote_outcomes"):  # this checkout: one losses request, then the continue rounds
        remote = score.remote_outcomes(client, tokenizer, bundle, **kw)
    else:  # the baseline's remote_core: one request per task
        remote = [score._task(client, tokenizer, bundle, label, **kw) for label in CORE_V1_LABELS]
    remote_s = time.perf_counter() - t0
    remote_cpu_s = time.process_time() - c0 + _cpu_s(proc.pid) - m0  # the scorer's and the model process's
    requests = client.requests - 1
    client.bye()
    proc.wait(timeout=60)
    return {
        "trainer": str(Path(trainer.__file__).resolve().parent),
        "in_process_s": in_process_s,
        "in_process_cpu_s": in_process_cpu_s,
        "remote_s": remote_s,
        "remote_cpu_s": remote_cpu_s,
        "requests": requests,
        "in_process": in_process,
        "remote": {o.label: list(o.correct) for o in remote},
    }


# -- parent: inputs once, workers interleaved, decisions against the reference ---------------------------


def _inputs(work: Path, model: str) -> None:
    import torch

    from contract import MODEL_FILE
    from trainer.data.synth import SyntheticWorld
    from trainer.data.tokenizer import train_tokenizer
    from trainer.evaluation.bundle import write_synthetic_bundle
    from trainer.model import GPT, GPTConfig
    from trainer.plan import config_of

    write_synthetic_bundle(work / "bundle")
    (work / "model").mkdir()
    request = {"recipe": "cpu_smoke", "overrides": MODELS[model], "seed": 0, "model_dir": str(work / "model")}
    (work / f"model-{model}.json").write_text(json.dumps(request))
    if model == "trained":  # the recipe's own run (seed 0) and its tokenizer: answers right and wrong as in use
        env = {**os.environ, "SPEEDRUN_HOME": str(work / "home")}  # the run's corpus and tokenizer, built here
        cmd = [sys.executable, "-m", "speedrun", "train", "--recipe", "cpu_smoke", "--seed", "0", "--no-progress"]
        subprocess.run([*cmd, "--out", str(work / "run")], check=True, cwd=REPO, env=env, capture_output=True)
        (tokenizer_dir,) = (work / "home").glob("synthetic-*/tokenizer")  # the one synthetic dataset it built
        shutil.copytree(tokenizer_dir, work / "tokenizer")
        shutil.copy(work / "run" / MODEL_FILE, work / "model" / MODEL_FILE)
        return
    docs = SyntheticWorld(0).documents(3000, seed=0)
    train_tokenizer(docs, vocab_size=2048, max_chars=10**8, progress=False).save(work / "tokenizer")
    torch.manual_seed(0)
    gpt = GPT(GPTConfig.from_train_config(config_of("cpu_smoke", MODELS[model], 0)))
    gpt.init_weights()
    with torch.no_grad():
        for p in gpt.parameters():
            p.add_(0.05 * torch.randn_like(p))
        gpt.lm_head.weight.normal_(0.0, 0.3)
    torch.save(gpt.state_dict(), work / "model" / MODEL_FILE)


def _run_worker(work: Path, tree: Path, threads: int, model: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(work), "--tree", str(tree)]
    cmd += ["--threads", str(threads), "--model", model]
    out = subprocess.run(cmd, env=env, cwd=tree, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout)
    if Path(result["trainer"]) != (tree / "trainer").resolve():
        raise RuntimeError(f"the worker of {tree} imported {result['trainer']}")
    return result


def _figures(times: list[float], examples: int) -> dict[str, Any]:
    return {
        "best_s": round(min(times), 3),
        "median_s": round(statistics.median(times), 3),
        "examples_per_s_best": round(examples / min(times), 1),
        "runs_s": [round(t, 3) for t in times],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="1,2", help="torch CPU thread counts, comma-separated (default 1,2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per tree and thread count (default 3)")
    parser.add_argument("--baseline", default=BASELINE, help=f"the commit whose scorer is today's (default {BASELINE})")
    parser.add_argument(
        "--model",
        choices=tuple(MODELS),
        default="smoke",
        help="smoke: depth 4, dim 128, random; depth2: 2, 64, random; trained: a cpu_smoke run's model",
    )
    parser.add_argument("--mfu", type=float, default=0.35, help="assumed H100 bf16 MFU of eval forwards")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="token budget of a forward, for the projection")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(worker(args.worker, int(args.threads), args.tree, args.model)))
        return 0

    import torch

    from contract.core_v1 import CORE_V1_EXAMPLES
    from contract.hardware import PEAKS
    from trainer.config import gpt2_speedrun
    from trainer.data.tokenizer import Tokenizer
    from trainer.evaluation.bundle import load_bundle
    from trainer.evaluation.prompts import prepare_examples, task_items
    from trainer.evaluation.rows import _units, forward_options, pack_batches, rows_of
    from trainer.plan import dims_for

    threads = [int(t) for t in args.threads.split(",")]
    work = Path(tempfile.mkdtemp(prefix="core-bench-"))
    print(f"bench: inputs in {work}; baseline {args.baseline} via git archive", file=sys.stderr)
    _inputs(work, args.model)
    base = work / "baseline"
    base.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", args.baseline], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive.stdout, check=True)
    trees = {"baseline": base, "new": REPO}

    print("bench: the one-example reference", file=sys.stderr)
    torch.set_num_threads(max(threads))
    ref = _reference_module()
    tokenizer = Tokenizer.load(work / "tokenizer")
    bundle = load_bundle(work / "bundle")
    gpt = _load_model(work, args.model)
    reference = {
        task.spec.label: ref.reference_task(gpt, tokenizer, bundle, task.spec.label, None) for task in bundle.tasks
    }
    examples = sum(len(v) for v in reference.values())

    times: dict[tuple[str, int, str], list[float]] = {}
    cpu: dict[tuple[str, int, str], list[float]] = {}  # CPU seconds: the work, less sensitive to other load
    requests: dict[str, int] = {}
    agree: dict[str, dict[str, int]] = {}
    for r in range(args.repeats):
        for i, n in enumerate(threads):
            order = ("baseline", "new") if (r + i) % 2 == 0 else ("new", "baseline")
            for name in order:
                res = _run_worker(work, trees[name], n, args.model)
                times.setdefault((name, n, "in_process"), []).append(res["in_process_s"])
                times.setdefault((name, n, "model_process"), []).append(res["remote_s"])
                cpu.setdefault((name, n, "in_process"), []).append(res["in_process_cpu_s"])
                cpu.setdefault((name, n, "model_process"), []).append(res["remote_cpu_s"])
                requests[name] = res["requests"]
                for path in ("in_process", "remote"):
                    key = f"{name} {path}"
                    for label, flags in res[path].items():
                        same = sum(a == b for a, b in zip(flags, reference[label], strict=True))
                        agree.setdefault(key, {})[label] = min(agree.get(key, {}).get(label, same), same)
                print(
                    f"bench: repeat {r + 1}, {n} thread(s), {name}: in process {res['in_process_s']:.2f} s, "
                    f"model process {res['remote_s']:.2f} s ({res['requests']} requests); CPU "
                    f"{res['in_process_cpu_s']:.2f} s, {res['remote_cpu_s']:.2f} s; load {os.getloadavg()[0]:.1f}",
                    file=sys.stderr,
                )
    identical = all(sum(per.values()) == examples for per in agree.values())

    figures: dict[str, Any] = {}
    for n in threads:
        for path in ("in_process", "model_process"):
            old, new = times[("baseline", n, path)], times[("new", n, path)]
            old_cpu, new_cpu = cpu[("baseline", n, path)], cpu[("new", n, path)]
            figures[f"{path}, {n} thread(s)"] = {
                "baseline": _figures(old, examples),
                "new": _figures(new, examples),
                "speedup_best": round(min(old) / min(new), 2),
                "speedup_median": round(statistics.median(old) / statistics.median(new), 2),
                "cpu_s_median": {
                    "baseline": round(statistics.median(old_cpu), 3),
                    "new": round(statistics.median(new_cpu), 3),
                },
                "cpu_speedup_median": round(statistics.median(old_cpu) / statistics.median(new_cpu), 2),
            }

    # Tokens the batched scorer feeds the model (an example's options as one token tree), per example
    share_prefix = forward_options(gpt)[1]
    padded = real = fed = 0
    for task in bundle.tasks:
        items = task_items(task.items, None)
        rows = rows_of(prepare_examples(task.spec, items, range(len(items)), tokenizer))
        real += sum(len(row.tokens) for row in rows)
        lengths = [len(u.tokens) for u in _units(rows, share_prefix)]
        fed += sum(lengths)
        padded += sum(len(b) * lengths[b[0]] for b in pack_batches(lengths, args.batch_tokens))
    d24 = dims_for(gpt2_speedrun())
    flops_example_d24 = _forward_flops_per_token(d24, real / examples) * padded / examples
    full_examples = sum(CORE_V1_EXAMPLES.values())
    projected_s = full_examples * flops_example_d24 / (PEAKS["h100-sxm"].flops * args.mfu)

    result = {
        "bench": "core_eval",
        "device": "cpu",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "timing": f"worker processes interleaved, alternating which tree goes first; {args.repeats} repeats",
        "baseline": args.baseline,
        "model": f"GPT depth {gpt.config.n_layer}, dim {gpt.config.n_embd}, vocab {gpt.config.vocab_size}, {args.model}",
        "bundle": "synthetic core-v1 in the public bundle's format, 22 tasks x 40 examples",
        "examples": examples,
        "requests_to_the_model_process": requests,
        "figures": figures,
        "target_speedup": 1.5,
        "identical_decisions": identical,
        "agreement_with_the_reference": {key: f"{sum(per.values())}/{examples}" for key, per in agree.items()},
        "tokens_per_example_real": round(real / examples, 1),
        "tokens_per_example_shared_prefix": round(fed / examples, 1),
        "tokens_per_example_padded": round(padded / examples, 1),
        "projection_h100_s": {
            "model": f"gpt2_speedrun depth {d24.n_layer}, dim {d24.model_dim}, vocab {d24.vocab_size}",
            "examples": full_examples,
            "assumed_mfu": args.mfu,
            "seconds": round(projected_s, 1),
        },
    }
    print(json.dumps(result, indent=2))
    if not identical:
        print("bench: a scorer's decisions differ from the reference's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
