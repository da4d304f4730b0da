"""The batched scorer against the one-example reference, and its known answers (oracle, uniform, guards)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contract.core_v1 import CORE_V1_LABELS, TaskType
from contract.schema import CoreResult
from trainer.data.tokenizer import Tokenizer
from trainer.evaluation.bundle import Bundle, LMItem
from trainer.evaluation.core import evaluate_core, evaluate_tasks
from trainer.evaluation.prompts import prepare_examples, task_items
from trainer.evaluation.rows import pack_batches

# one task of each type and shot regime: MC 0/3/10-shot, schema, LM 0/10-shot (with "\nAnswer: ")
MIXED_LABELS = ["copa", "agi_eval_lsat_ar", "arc_easy", "winogrande", "lambada_openai", "jeopardy", "squad"]
PER_TASK = 16


class Blend(nn.Module):
    """A random model nudged toward the gold answers: some examples right, some wrong, of every type."""

    def __init__(self, base: nn.Module, oracle: nn.Module, weight: float):
        super().__init__()
        self.base, self.oracle, self.weight = base, oracle, weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.base(idx) + (self.weight / 100.0) * self.oracle(idx)


def gold_rows(bundle: Bundle, tokenizer: Tokenizer, labels: list[str], max_per_task: int | None = None) -> list:
    rows = []
    for label in labels:
        task = bundle.task(label)
        items = task_items(task.items, max_per_task)
        for ex in prepare_examples(task.spec, items, range(len(items)), tokenizer):
            rows.append(ex.rows[0 if ex.gold is None else ex.gold])
    return rows


def test_pack_batches_sorts_longest_first_and_respects_the_budget() -> None:
    lengths = [5, 9, 3, 9, 1, 7]
    batches = pack_batches(lengths, 20)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert [lengths[b[0]] for b in batches] == sorted((lengths[b[0]] for b in batches), reverse=True)
    assert all(len(b) * lengths[b[0]] <= 20 for b in batches)
    assert pack_batches([50, 2], 10) == [[0], [1]]  # a row over the budget gets its own batch
    with pytest.raises(ValueError, match="batch_tokens"):
        pack_batches(lengths, 0)


@pytest.fixture(scope="module")
def blend_and_reference(bundle: Bundle, tokenizer: Tokenizer, ref) -> tuple[nn.Module, dict[str, list[bool]]]:
    """A random tiny model nudged toward gold answers, and the reference's per-example decisions (computed once)."""
    torch.manual_seed(0)
    oracle = ref.oracle_model(tokenizer.vocab_size, gold_rows(bundle, tokenizer, MIXED_LABELS, PER_TASK))
    model = Blend(ref.tiny_model(tokenizer.vocab_size), oracle, weight=1.5).eval()
    expected = {label: ref.task(model, tokenizer, bundle, label, PER_TASK) for label in MIXED_LABELS}
    assert {flag for flags in expected.values() for flag in flags} == {True, False}  # right and wrong decisions
    return model, expected


@pytest.mark.parametrize("batch_tokens", [1, 900, 1 << 16])
def test_batched_equals_reference_per_example(
    batch_tokens: int, bundle: Bundle, tokenizer: Tokenizer, blend_and_reference
) -> None:
    model, expected = blend_and_reference
    outcomes = evaluate_tasks(
        model,
        tokenizer,
        bundle,
        device="cpu",
        labels=MIXED_LABELS,
        max_per_task=PER_TASK,
        batch_tokens=batch_tokens,
        progress=False,
    )
    for outcome in outcomes:
        assert list(outcome.correct) == expected[outcome.label], outcome.label
        assert outcome.accuracy == sum(expected[outcome.label]) / PER_TASK


@pytest.mark.slow
def test_batched_equals_reference_on_a_depth2_gpt(
    bundle: Bundle, tokenizer: Tokenizer, gpt_model: nn.Module, ref
) -> None:
    labels = ["agi_eval_lsat_ar", "arc_easy", "winogrande", "jeopardy", "squad"]  # MC 3/10-shot, schema, LM
    oracle = ref.oracle_model(tokenizer.vocab_size, gold_rows(bundle, tokenizer, labels, 12))
    model = Blend(gpt_model, oracle, weight=3.0).eval()
    outcomes = evaluate_tasks(
        model, tokenizer, bundle, device="cpu", labels=labels, max_per_task=12, batch_tokens=3000, progress=False
    )
    flags = set()
    for outcome in outcomes:
        expected = ref.task(model, tokenizer, bundle, outcome.label, 12)
        assert list(outcome.correct) == expected, outcome.label
        flags.update(expected)
    assert flags == {True, False}


def test_mean_span_losses_equal_the_reference(bundle: Bundle, tokenizer: Tokenizer, tiny_model: nn.Module, ref) -> None:
    from trainer.evaluation.rows import rows_of, score_rows

    task = bundle.task("hellaswag")
    items = task_items(task.items, 12)
    examples = prepare_examples(task.spec, items, range(len(items)), tokenizer)
    rows = rows_of(examples)
    got = [0.0] * len(rows)
    with torch.no_grad():
        for batch, values in score_rows(
            tiny_model, rows, pad_id=tokenizer.bos_id, device=torch.device("cpu"), batch_tokens=5000, want_losses=True
        ):
            for i, v in zip(batch, values, strict=True):
                got[i] = float(v)
    expected = [
        m for idx in range(len(items)) for m in ref.example(tiny_model, tokenizer, task.spec, items, idx).mean_losses
    ]
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.fixture(scope="module")
def gpt_and_reference(bundle: Bundle, tokenizer: Tokenizer, ref) -> tuple[nn.Module, dict[str, list[bool]]]:
    """The depth-2 GPT itself (its forward takes logits_at and tree) and the reference's decisions on all 22 tasks."""
    model = ref.depth2_gpt(tokenizer.vocab_size)
    expected = {label: ref.task(model, tokenizer, bundle, label, GPT_PER_TASK) for label in CORE_V1_LABELS}
    assert {flag for flags in expected.values() for flag in flags} == {True, False}
    return model, expected


GPT_PER_TASK = 12


@pytest.mark.parametrize(("batch_tokens", "share_prefix"), [(1, True), (900, True), (1 << 16, True), (900, False)])
def test_prefix_sharing_and_head_at_spans_equal_the_reference_on_every_task(
    batch_tokens: int,
    share_prefix: bool,
    bundle: Bundle,
    tokenizer: Tokenizer,
    gpt_and_reference,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GPT path: an example's options as one token tree (prefix once), the head only at the spans."""
    from trainer.evaluation import core, rows

    model, expected = gpt_and_reference
    assert rows.forward_options(model) == (True, True)
    real = core.score_rows
    monkeypatch.setattr(core, "score_rows", lambda *a, **k: real(*a, **{**k, "share_prefix": share_prefix}))
    outcomes = evaluate_tasks(
        model, tokenizer, bundle, device="cpu", max_per_task=GPT_PER_TASK, batch_tokens=batch_tokens, progress=False
    )
    for outcome in outcomes:
        assert list(outcome.correct) == expected[outcome.label], outcome.label


@pytest.mark.parametrize("label", ["hellaswag", "winogrande", "bigbench_language_identification", "squad"])
def test_tree_span_losses_equal_the_reference(label: str, bundle: Bundle, tokenizer: Tokenizer, ref) -> None:
    from trainer.evaluation.rows import rows_of, score_rows

    model = ref.depth2_gpt(tokenizer.vocab_size)  # windows 32 / 64: prompts longer than the first window
    task = bundle.task(label)
    items = task_items(task.items, 12)
    examples = prepare_examples(task.spec, items, range(len(items)), tokenizer)
    rows = rows_of(examples)
    want_losses = task.spec.task_type is not TaskType.language_modeling
    got: list[float] = [0.0] * len(rows)
    with torch.no_grad():
        for batch, values in score_rows(
            model, rows, pad_id=tokenizer.bos_id, device=torch.device("cpu"), batch_tokens=2000, want_losses=want_losses
        ):
            for i, v in zip(batch, values, strict=True):
                got[i] = v
    outcomes = [ref.example(model, tokenizer, task.spec, items, idx) for idx in range(len(items))]
    if want_losses:
        expected = [m for o in outcomes for m in o.mean_losses]
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-5)
    else:
        assert got == [o.correct for o in outcomes]


def test_units_store_an_examples_common_prefix_once() -> None:
    from trainer.evaluation.rows import Row, _units

    rows = [Row(0, 0, (1, 2, 3, 4, 5), 3, 5), Row(0, 1, (1, 2, 3, 6), 3, 4), Row(1, 0, (1, 7, 8), 1, 3)]
    a, b = _units(rows, share_prefix=True)
    assert a.tokens.tolist() == [1, 2, 3, 4, 5, 6] and a.rows == (0, 1)
    assert a.positions.tolist() == [0, 1, 2, 3, 4, 3]
    assert a.previous.tolist() == [0, 0, 1, 2, 3, 2]
    assert a.segment.tolist() == [0, 0, 0, 1, 1, 2]
    assert [p.tolist() for p in a.predict_at] == [[2, 3], [2]]  # position 2 (token 3) predicts both first tokens
    assert [t.tolist() for t in a.targets] == [[4, 5], [6]]
    assert b.tokens.tolist() == [1, 7, 8] and [p.tolist() for p in b.predict_at] == [[0, 1]]
    plain = _units(rows, share_prefix=False)
    assert [u.tokens.tolist() for u in plain] == [list(r.tokens) for r in rows]
    assert [u.predict_at[0].tolist() for u in plain] == [[2, 3], [2], [0, 1]]


def test_share_prefix_needs_a_model_that_takes_a_tree(tokenizer: Tokenizer, tiny_model: nn.Module) -> None:
    from trainer.evaluation.rows import Row, forward_options, score_rows

    assert forward_options(tiny_model) == (False, False)
    rows = [Row(0, 0, (1, 2, 3), 1, 3)]
    with pytest.raises(ValueError, match="tree="):
        next(
            score_rows(
                tiny_model,
                rows,
                pad_id=tokenizer.bos_id,
                device=torch.device("cpu"),
                batch_tokens=64,
                want_losses=True,
                share_prefix=True,
            )
        )


def test_oracle_model_scores_centered_one_on_every_task(bundle: Bundle, tokenizer: Tokenizer, ref) -> None:
    for label in CORE_V1_LABELS:
        oracle = ref.oracle_model(tokenizer.vocab_size, gold_rows(bundle, tokenizer, [label], 20))
        (outcome,) = evaluate_tasks(
            oracle, tokenizer, bundle, device="cpu", labels=[label], max_per_task=20, progress=False
        )
        assert outcome.accuracy == 1.0, label
        assert outcome.centered == pytest.approx(1.0), label


def test_uniform_model_gets_the_tie_rule_outcome(bundle: Bundle, tokenizer: Tokenizer, ref) -> None:
    """Equal logits: each option's loss is ln V at every position, so the decision is the tie rule's.

    The mean of L equal fp32 values can round differently for different L, so the expected decision
    is the first argmin of those fp32 means (the first option wherever the spans are equally long).
    """
    vocab = tokenizer.vocab_size
    per_token = F.cross_entropy(torch.zeros(1, vocab), torch.zeros(1, dtype=torch.long))
    result = evaluate_core(ref.uniform_model(vocab), tokenizer, bundle, device="cpu", progress=False)
    firsts = 0
    for task in bundle.tasks:
        items = task_items(task.items, None)
        examples = prepare_examples(task.spec, items, range(len(items)), tokenizer)
        if task.spec.task_type is TaskType.language_modeling:
            expected = 0.0  # greedy picks token 0 (a NUL byte) everywhere
        else:
            hits = 0
            for ex in examples:
                means = [per_token.expand(e - s).mean().item() for s, e in zip(ex.starts, ex.ends, strict=True)]
                hits += means.index(min(means)) == ex.gold
                firsts += ex.gold == 0 and len(set(means)) == 1
            expected = hits / len(items)
        assert result.tasks[task.label].accuracy == expected, task.label
        assert result.tasks[task.label].n == len(items)
    assert firsts > 50  # many exact ties, decided for the first option


def test_core_result_is_the_contract_object(bundle: Bundle, tokenizer: Tokenizer, tiny_model: nn.Module) -> None:
    result = evaluate_core(tiny_model, tokenizer, bundle, device="cpu", max_per_task=12, progress=False)
    assert isinstance(result, CoreResult)
    assert result.protocol == "core-v1" and result.bundle_sha256 == bundle.sha256 and result.max_per_task == 12
    assert list(result.tasks) == list(CORE_V1_LABELS)
    assert result.core == pytest.approx(sum(t.centered for t in result.tasks.values()) / 22)
    assert all(t.n == 12 for t in result.tasks.values())
    assert CoreResult.model_validate_json(result.model_dump_json()) == result
    assert not tiny_model.training


def test_too_few_examples_for_the_shots_is_a_clear_error(bundle: Bundle, tokenizer: Tokenizer, tiny_model) -> None:
    with pytest.raises(ValueError, match=r"jeopardy: 10-shot needs more than 10 examples.*max_per_task=10"):
        evaluate_core(tiny_model, tokenizer, bundle, device="cpu", max_per_task=10, progress=False)
    with pytest.raises(ValueError, match="max_per_task"):
        evaluate_core(tiny_model, tokenizer, bundle, device="cpu", max_per_task=0, progress=False)


def test_other_arguments_are_validated(bundle: Bundle, tokenizer: Tokenizer, tiny_model: nn.Module) -> None:
    with pytest.raises(ValueError, match="rank"):
        evaluate_core(tiny_model, tokenizer, bundle, device="cpu", rank=2, world_size=2, progress=False)
    with pytest.raises(ValueError, match=r"initialized torch\.distributed"):
        evaluate_tasks(tiny_model, tokenizer, bundle, device="cpu", labels=["copa"], world_size=2, progress=False)
    with pytest.raises(ValueError, match="precision"):
        evaluate_tasks(tiny_model, tokenizer, bundle, device="cpu", labels=["copa"], precision="fp16", progress=False)
    with pytest.raises(ValueError, match="not core-v1 tasks"):
        evaluate_tasks(tiny_model, tokenizer, bundle, device="cpu", labels=["mmlu"], progress=False)


def test_max_seq_len_crops_prompts_from_the_left(bundle: Bundle, tokenizer: Tokenizer, ref) -> None:
    seen: list[int] = []

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = ref.uniform_model(tokenizer.vocab_size)

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            seen.append(idx.size(1))
            return self.inner(idx)

    evaluate_tasks(Recorder(), tokenizer, bundle, device="cpu", labels=["squad"], max_seq_len=48, progress=False)
    assert seen and max(seen) <= 48
    spec = bundle.task("squad").spec
    long_lm = [LMItem("word " * 100, "end")] * 12
    (ex,) = prepare_examples(spec, long_lm, [0], tokenizer, max_seq_len=48)
    assert len(ex.rows[0]) == 48 and ex.ends[0] == 48


@pytest.mark.gpu
@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16])
def test_batched_agrees_with_reference_on_cuda(
    compute_dtype: torch.dtype, bundle: Bundle, tokenizer: Tokenizer, ref
) -> None:
    """On a GPU kernels differ with batch shape, so only near-ties may flip: >= 95% of decisions agree."""
    model = ref.depth2_gpt(tokenizer.vocab_size).to("cuda")
    model.compute_dtype = compute_dtype
    oracle = ref.oracle_model(tokenizer.vocab_size, gold_rows(bundle, tokenizer, MIXED_LABELS, PER_TASK))

    class OnDevice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gpt = model

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            idx = idx.to("cuda")
            return (self.gpt(idx) + 0.03 * oracle(idx.cpu()).to("cuda")).float()

    blended = OnDevice().eval()
    outcomes = evaluate_tasks(
        blended,
        tokenizer,
        bundle,
        device="cuda",
        labels=MIXED_LABELS,
        max_per_task=PER_TASK,
        precision="fp32",  # no autocast: the GPT computes in its own compute_dtype, as the reference does
        progress=False,
    )
    agree = total = 0
    for outcome in outcomes:
        expected = ref.task(blended, tokenizer, bundle, outcome.label, PER_TASK)
        agree += sum(a == b for a, b in zip(outcome.correct, expected, strict=True))
        total += len(expected)
    assert agree / total >= 0.95


@pytest.mark.gpu
@pytest.mark.parametrize("compute_dtype", [torch.float32, torch.bfloat16])
def test_gpt_path_agrees_with_reference_on_cuda(
    compute_dtype: torch.dtype, bundle: Bundle, tokenizer: Tokenizer, ref
) -> None:
    """The GPT path on a GPU (causal rows by default there, head at the spans): >= 95% agreement."""
    from trainer.evaluation.rows import forward_options

    model = ref.depth2_gpt(tokenizer.vocab_size).to("cuda")
    model.compute_dtype = compute_dtype
    assert forward_options(model) == (True, True)
    outcomes = evaluate_tasks(
        model, tokenizer, bundle, device="cuda", labels=MIXED_LABELS, max_per_task=PER_TASK, precision="fp32"
    )

    class OnDevice(nn.Module):  # the reference feeds CPU tensors
        def __init__(self) -> None:
            super().__init__()
            self.gpt = model

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            return self.gpt(idx.to("cuda")).float().cpu()

    agree = total = 0
    for outcome in outcomes:
        expected = ref.task(OnDevice().eval(), tokenizer, bundle, outcome.label, PER_TASK)
        agree += sum(a == b for a, b in zip(outcome.correct, expected, strict=True))
        total += len(expected)
    assert agree / total >= 0.95


def test_prompts_longer_than_the_rope_table_are_cropped_to_their_last_tokens(
    bundle: Bundle, tokenizer: Tokenizer, ref
) -> None:
    model = ref.depth2_gpt(tokenizer.vocab_size, sequence_len=40, rope_positions_factor=1)
    assert model.max_positions == 40
    labels = ["squad", "hellaswag", "winogrande"]
    task = bundle.task("squad")
    items = task_items(task.items, 12)
    (full,) = prepare_examples(task.spec, items, [0], tokenizer)
    assert len(full.rows[0]) > 40  # the prompt is longer than the model's positions
    (cropped,) = prepare_examples(task.spec, items, [0], tokenizer, max_seq_len=40)
    cut = len(full.rows[0]) - 40
    assert cropped.rows[0] == full.rows[0][cut:] and cropped.starts[0] == full.starts[0] - cut
    # no max_seq_len given: the model's own positions apply (it used to fail mid-run beyond the RoPE table)
    auto = evaluate_tasks(model, tokenizer, bundle, device="cpu", labels=labels, max_per_task=12, progress=False)
    explicit = evaluate_tasks(
        model, tokenizer, bundle, device="cpu", labels=labels, max_per_task=12, max_seq_len=40, progress=False
    )
    assert [o.correct for o in auto] == [o.correct for o in explicit] and all(o.n == 12 for o in auto)


def test_a_span_longer_than_the_positions_fails_before_scoring_naming_task_example_length(
    bundle: Bundle, tokenizer: Tokenizer
) -> None:
    spec = bundle.task("squad").spec
    long_answer = [LMItem("question", "word " * 60)] * 12
    with pytest.raises(
        ValueError, match=r"squad: a scored span of \d+ tokens .* does not fit in the model's 16 positions .*example 0"
    ):
        prepare_examples(spec, long_answer, [0], tokenizer, max_seq_len=16)


def test_a_prompt_that_cannot_fit_fails_before_any_task_is_scored(bundle: Bundle, tokenizer: Tokenizer, ref) -> None:
    # 6 positions: copa (first; spans of <= 2 tokens) fits once cropped, squad has spans of 6 tokens and
    # cannot: the run must stop before copa's first forward
    forwards: list[int] = []

    class Counting(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = ref.depth2_gpt(tokenizer.vocab_size, sequence_len=6, rope_positions_factor=1)

        @property
        def max_positions(self) -> int:
            return 6

        def forward(self, idx: torch.Tensor) -> torch.Tensor:
            forwards.append(idx.size(1))
            return self.inner(idx)

    with pytest.raises(ValueError, match=r"squad: a scored span of \d+ tokens .*6 positions.*example \d+"):
        evaluate_tasks(Counting(), tokenizer, bundle, device="cpu", labels=["copa", "squad"], progress=False)
    assert forwards == []
