"""Fixtures of the evaluation tests: a tiny real tokenizer and bundle, tiny real models, and the reference scorer.

The reference scorer is the nanochat harness written out plainly and independently of
`trainer.evaluation`: prompts rendered by its Jinja templates, few-shot indices from the literal
list, one forward per example (its options stacked and padded with BOS), cross-entropy over
every position, the mean over the span per option, Python's ``min``/``index``, greedy match for LM.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from jinja2 import Template
from torch import nn

from contract.core_v1 import TaskSpec, TaskType
from trainer.data.synth import SyntheticWorld
from trainer.data.tokenizer import Tokenizer, train_tokenizer
from trainer.evaluation.bundle import Bundle, load_bundle, write_synthetic_bundle

# -- the harness's templates (Jinja, as the reference renders them) -----------------------------

MC_TEMPLATE = Template(
    """
{%- for example in fewshot_examples -%}
{{ example.query }}{{ continuation_delimiter }}{{ example.choices[example.gold] }}

{% endfor -%}
{{ item.query }}{{ continuation_delimiter }}{{ choice }}""".strip()
)
SCHEMA_TEMPLATE = Template(
    """
{%- for example in fewshot_examples -%}
{{ example.context_options[example.gold] }}{{ continuation_delimiter }}{{ example.continuation }}

{% endfor -%}
{{ context }}{{ continuation_delimiter }}{{ item.continuation }}""".strip()
)
LM_TEMPLATE = Template(
    """
{%- for example in fewshot_examples -%}
{{ example.context | trim }}{{ continuation_delimiter }}{{ example.continuation }}

{% endfor -%}
{{ item.context | trim }}{{ continuation_delimiter }}{% if include_continuation %}{{ item.continuation }}{% endif %}""".strip()
)


def reference_prompts(spec: TaskSpec, items: Sequence[Any], idx: int) -> list[str]:
    item = items[idx]
    shots: list[Any] = []
    if spec.num_fewshot > 0:
        rng = random.Random(1234 + idx)
        available = [i for i in range(len(items)) if i != idx]
        shots = [items[i] for i in rng.sample(available, spec.num_fewshot)]
    ctx = {"fewshot_examples": shots, "continuation_delimiter": spec.continuation_delimiter, "item": item}
    if spec.task_type is TaskType.multiple_choice:
        return [MC_TEMPLATE.render(choice=c, **ctx) for c in item.choices]
    if spec.task_type is TaskType.schema:
        return [SCHEMA_TEMPLATE.render(context=o, **ctx) for o in item.context_options]
    without = LM_TEMPLATE.render(include_continuation=False, **ctx).strip()
    return [without, LM_TEMPLATE.render(include_continuation=True, **ctx)]


def _common(seqs: list[list[int]], direction: str) -> int:
    n = min(len(s) for s in seqs)
    idxs = range(n) if direction == "left" else range(-1, -n - 1, -1)
    for i, j in enumerate(idxs):
        if not all(s[j] == seqs[0][j] for s in seqs):
            return i
    return n


@dataclass
class ReferenceOutcome:
    correct: bool
    mean_losses: list[float] | None


@torch.no_grad()
def reference_example(
    model: nn.Module, tokenizer: Any, spec: TaskSpec, items: Sequence[Any], idx: int
) -> ReferenceOutcome:
    """One example, one forward: the harness's evaluate_example."""
    prompts = reference_prompts(spec, items, idx)
    tokens = [tokenizer.encode(p, prepend_bos=True) for p in prompts]
    if spec.task_type is TaskType.multiple_choice:
        s = _common(tokens, "left")
        starts, ends = [s] * len(tokens), [len(t) for t in tokens]
    elif spec.task_type is TaskType.schema:
        s = _common(tokens, "right")
        ends = [len(t) for t in tokens]
        starts = [e - s for e in ends]
    else:
        without, with_ = tokens
        assert len(without) < len(with_) and with_[: len(without)] == without
        tokens, starts, ends = [with_], [len(without)], [len(with_)]
    width = max(len(t) for t in tokens)
    ids = torch.full((len(tokens), width), tokenizer.bos_id, dtype=torch.long)
    for i, t in enumerate(tokens):
        ids[i, : len(t)] = torch.tensor(t)
    logits = model(ids)
    targets = torch.roll(ids, shifts=-1, dims=1)
    losses = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), reduction="none").view(ids.shape)
    losses[:, -1] = float("nan")
    predictions = logits.argmax(dim=-1)
    if spec.task_type is TaskType.language_modeling:
        s, e = starts[0], ends[0]
        ok = bool(torch.all(predictions[0, s - 1 : e - 1] == ids[0, s:e]).item())
        return ReferenceOutcome(ok, None)
    means = [losses[i, s - 1 : e - 1].mean().item() for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    return ReferenceOutcome(means.index(min(means)) == items[idx].gold, means)


def reference_task(
    model: nn.Module, tokenizer: Any, bundle: Bundle, label: str, max_per_task: int | None
) -> list[bool]:
    task = bundle.task(label)
    items = list(task.items)
    random.Random(1337).shuffle(items)
    if max_per_task is not None:
        items = items[:max_per_task]
    model.eval()
    return [reference_example(model, tokenizer, task.spec, items, i).correct for i in range(len(items))]


# -- tiny real models ---------------------------------------------------------------------------


class TinyCausalLM(nn.Module):
    """A one-layer causal transformer: embedding, SDPA self-attention, MLP, untied head."""

    def __init__(self, vocab_size: int, dim: int = 32, heads: int = 2):
        super().__init__()
        self.heads = heads
        self.wte = nn.Embedding(vocab_size, dim)
        self.wpe = nn.Embedding(4096, dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        b, t = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(t, device=idx.device))
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, -1)
        x = x + self.proj(y)
        x = x + self.mlp(x)
        return self.head(x)


class UniformLM(nn.Module):
    """Equal logits everywhere: every option has the same loss, greedy decoding always picks token 0."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.zeros(*idx.shape, self.vocab_size) + 0.0 * self.dummy


class OracleLM(nn.Module):
    """Puts (almost) all mass on the next token of whichever gold sequence the row is a prefix of."""

    def __init__(self, vocab_size: int, gold_rows: Sequence[Sequence[int]]):
        super().__init__()
        self.vocab_size = vocab_size
        self.dummy = nn.Parameter(torch.zeros(1))
        self.trie: dict[int, Any] = {}
        for row in gold_rows:
            node = self.trie
            for tok in row:
                node = node.setdefault(tok, {})

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        bs: list[int] = []
        ts: list[int] = []
        nxt: list[int] = []
        for b, row in enumerate(idx.tolist()):
            node: dict[int, Any] | None = self.trie
            for t, tok in enumerate(row):
                node = node.get(tok) if node is not None else None
                if node is None:
                    break
                if len(node) == 1:
                    bs.append(b)
                    ts.append(t)
                    nxt.append(next(iter(node)))
        logits = torch.zeros(*idx.shape, self.vocab_size)
        logits[bs, ts, nxt] = 100.0
        return logits + 0.0 * self.dummy


def depth2_gpt(
    vocab_size: int, *, seed: int = 0, sequence_len: int = 64, rope_positions_factor: int | None = None
) -> nn.Module:
    """The reference GPT at depth 2 (layer 0 with a sliding window), weights jittered so decisions vary.

    ``rope_positions_factor=1`` gives a RoPE table of only ``sequence_len`` rows (the model's positions)."""
    from trainer.model import GPTConfig, build_model

    config = GPTConfig(
        sequence_len=sequence_len,
        vocab_size=vocab_size,
        n_layer=2,
        n_head=2,
        n_kv_head=2,
        n_embd=64,
        head_dim=32,
        window_sizes=(sequence_len // 2, sequence_len),
        value_embed_layers=(1,),
        **({} if rope_positions_factor is None else {"rope_positions_factor": rope_positions_factor}),
    )
    torch.manual_seed(seed)
    model = build_model(config, torch.device("cpu"), torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
        model.lm_head.weight.normal_(0.0, 0.3)
    return model.eval()


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tokenizer() -> Tokenizer:
    docs = SyntheticWorld(0).documents(400, seed=0)
    return train_tokenizer(docs, vocab_size=700, max_chars=10**7, progress=False)


@pytest.fixture(scope="session")
def synth_bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_bundle(tmp_path_factory.mktemp("eval") / "synthetic-bundle")


@pytest.fixture(scope="session")
def bundle(synth_bundle_dir: Path) -> Bundle:
    return load_bundle(synth_bundle_dir)


@pytest.fixture
def tiny_model(tokenizer: Tokenizer) -> TinyCausalLM:
    torch.manual_seed(0)
    return TinyCausalLM(tokenizer.vocab_size).eval()


@dataclass(frozen=True)
class Reference:
    """The reference harness and the tiny models, handed to tests as one fixture."""

    prompts: Callable[..., list[str]] = reference_prompts
    example: Callable[..., ReferenceOutcome] = reference_example
    task: Callable[..., list[bool]] = reference_task
    tiny_model: type[TinyCausalLM] = TinyCausalLM
    uniform_model: type[UniformLM] = UniformLM
    oracle_model: type[OracleLM] = OracleLM
    depth2_gpt: Callable[..., nn.Module] = depth2_gpt


@pytest.fixture(scope="session")
def ref() -> Reference:
    return Reference()


@pytest.fixture
def gpt_model(tokenizer: Tokenizer) -> nn.Module:
    return depth2_gpt(tokenizer.vocab_size)
