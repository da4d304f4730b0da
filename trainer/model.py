"""The GPT of the record recipe, in one file.

- Pre-norm blocks; RMSNorm without weights (embedding, block inputs, QK, final); no biases, no dropout.
- Attention: separate q/k/v/proj; RoPE (base 1e5, half-split) then QK-norm, q and k scaled by 1.2;
  sliding windows per layer (SSSL tiled, last layer full) through `trainer.attention`; a window `w`
  is the record's: `w` keys to the left plus the query itself (`0 <= q_pos - k_pos <= w`), in training,
  in `forward_at` and in token trees alike.
- MLP 4x with ReLU^2. Value embeddings on alternating layers (always the last), added to v through
  a per-head gate `3 * sigmoid(W_gate @ x[..., :12])`.
- Per-layer scalars `x = resid[i] * x + x0[i] * x0`; smear (bigram mixing of the previous token);
  backout (subtract a fraction of the mid-depth residual before the final norm).
- Untied lm_head; fp32 logits soft-capped at 15.
- Master weights fp32; matmuls in the compute dtype by casting the weight in forward (no autocast);
  wte and value embeddings stored in the compute dtype. Built on the meta device, then
  `to_empty` + `init_weights` on the real one.
- Evaluation extras of `forward` (both optional, off by default): `logits_at` computes the head only
  at the selected positions; `tree` runs several sequences that share a prefix in one row (each
  token sees its own sequence only, at its own RoPE position), so a shared prefix is computed once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainer.attention import attend, window_allows
from trainer.config import TrainConfig
from trainer.fp8 import Linear
from trainer.plan import MLP_EXPANSION, SMEAR_GATE_CHANNELS, VE_GATE_CHANNELS, dims_for

QK_SCALE = 1.2


@dataclass(frozen=True)
class TokenTree:
    """Sequences sharing a prefix, packed into the rows of one batch (see `GPT.forward`'s ``tree``).

    A row holds a shared prefix followed by the remaining tokens of each sequence, one after the
    other. ``positions[b, t]``: the position of token t within its own sequence (RoPE, windows);
    ``previous[b, t]``: the index in the row of the token before it in its sequence (t itself at
    position 0); ``visible[b, q, k]``: key k belongs to the sequence of query q and is not after it
    (True on the diagonal, padding included). Sliding windows are applied on ``positions``: a key is
    within window ``w`` of its query when ``positions[q] - positions[k] <= w``.
    """

    positions: torch.Tensor  # [B, T] long
    previous: torch.Tensor  # [B, T] long
    visible: torch.Tensor  # [B, T, T] bool


@dataclass(frozen=True)
class GPTConfig:
    sequence_len: int
    vocab_size: int
    n_layer: int
    n_head: int
    n_kv_head: int
    n_embd: int
    head_dim: int
    window_sizes: tuple[int, ...]
    value_embed_layers: tuple[int, ...]
    rope_base: float = 100_000.0
    rope_positions_factor: int = 10
    logit_softcap: float = 15.0
    fp8: bool = False

    def __post_init__(self) -> None:
        if len(self.window_sizes) != self.n_layer:
            raise ValueError(f"window_sizes: need one per layer ({self.n_layer}), got {len(self.window_sizes)}")
        if self.n_kv_head != self.n_head:
            raise ValueError("n_kv_head: this model uses full multi-head attention (n_kv_head == n_head)")

    @classmethod
    def from_train_config(cls, config: TrainConfig) -> GPTConfig:
        d = dims_for(config)
        m = config.model
        return cls(
            sequence_len=d.sequence_len,
            vocab_size=d.vocab_size,
            n_layer=d.n_layer,
            n_head=d.n_head,
            n_kv_head=d.n_kv_head,
            n_embd=d.model_dim,
            head_dim=d.head_dim,
            window_sizes=d.window_sizes,
            value_embed_layers=d.value_embed_layers,
            rope_base=m.rope_base,
            rope_positions_factor=m.rope_positions_factor,
            logit_softcap=m.logit_softcap,
            fp8=config.runtime.fp8,
        )


def norm(x: torch.Tensor) -> torch.Tensor:
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Half-split rotation of x [B, T, H, D] by cos/sin [1, T, 1, D/2]."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos + x2 * sin, x2 * cos - x1 * sin], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = cfg.n_head, cfg.n_kv_head, cfg.head_dim
        self.c_q = Linear(cfg.n_embd, cfg.n_head * cfg.head_dim, fp8=cfg.fp8)
        self.c_k = Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, fp8=cfg.fp8)
        self.c_v = Linear(cfg.n_embd, cfg.n_kv_head * cfg.head_dim, fp8=cfg.fp8)
        self.c_proj = Linear(cfg.n_head * cfg.head_dim, cfg.n_embd, fp8=cfg.fp8)
        has_ve = layer_idx in cfg.value_embed_layers
        self.ve_gate = Linear(VE_GATE_CHANNELS, cfg.n_kv_head) if has_ve else None

    def forward(
        self,
        x: torch.Tensor,
        ve: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        window: int,
        backend: str,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.c_q(x).view(b, t, self.n_head, self.head_dim)
        k = self.c_k(x).view(b, t, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(b, t, self.n_kv_head, self.head_dim)
        if ve is not None:
            assert self.ve_gate is not None
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :VE_GATE_CHANNELS]))
            v = v + gate.unsqueeze(-1) * ve.view(b, t, self.n_kv_head, self.head_dim)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        q, k = norm(q) * QK_SCALE, norm(k) * QK_SCALE
        if mask is None:
            y = attend(q, k, v, window, backend)
        else:  # a token tree: mask [B, 1, T, T] (visible and within the window)
            y = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
            ).transpose(1, 2)
        return self.c_proj(y.reshape(b, t, -1))

    def forward_at(
        self,
        x: torch.Tensor,
        ve: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        window: int,
        mask: torch.Tensor | None,
        at: torch.Tensor,
    ) -> torch.Tensor:
        """`forward` for the queries at the True positions of ``at`` [B, T] only: `[N, C]` in row-major order.

        Keys and values come from every position; ``mask`` [B, 1, T, T] is a token tree's (None: causal).
        """
        b, t, _ = x.shape
        k = self.c_k(x).view(b, t, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(b, t, self.n_kv_head, self.head_dim)
        if ve is not None:
            assert self.ve_gate is not None
            gate = 3 * torch.sigmoid(self.ve_gate(x[..., :VE_GATE_CHANNELS]))
            v = v + gate.unsqueeze(-1) * ve.view(b, t, self.n_kv_head, self.head_dim)
        k = norm(apply_rotary(k, cos, sin)) * QK_SCALE
        # each row's selected positions first, in order (padded with unselected ones, dropped at the end)
        counts = at.sum(dim=1)
        n_q = max(int(counts.max()), 1) if b else 1
        where = torch.argsort((~at).to(torch.int8), dim=1, stable=True)[:, :n_q]  # [B, Q]
        keep = torch.arange(n_q, device=x.device)[None, :] < counts[:, None]
        xq = torch.gather(x, 1, where.unsqueeze(-1).expand(-1, -1, x.size(-1)))
        q = self.c_q(xq).view(b, n_q, self.n_head, self.head_dim)
        rows = torch.arange(b, device=x.device)[:, None]
        cos_q = cos.expand(b, -1, -1, -1)[rows, where]
        sin_q = sin.expand(b, -1, -1, -1)[rows, where]
        q = norm(apply_rotary(q, cos_q, sin_q)) * QK_SCALE
        if mask is None:
            key = torch.arange(t, device=x.device)[None, None, :]
            qpos = where.unsqueeze(-1)
            mask_q = window_allows(qpos, key, window).unsqueeze(1)  # [B, 1, Q, T]
        else:
            mask_q = mask[:, 0][rows, where].unsqueeze(1)
        y = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask_q
        ).transpose(1, 2)
        return self.c_proj(y.reshape(b, n_q, -1)[keep])


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = Linear(cfg.n_embd, MLP_EXPANSION * cfg.n_embd, fp8=cfg.fp8)
        self.c_proj = Linear(MLP_EXPANSION * cfg.n_embd, cfg.n_embd, fp8=cfg.fp8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.c_fc(x))
        return self.c_proj(h * h)  # ReLU^2; the same products as .square(), whose CPU kernel is 2x slower


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig, layer_idx: int) -> None:
        super().__init__()
        self.attn = CausalSelfAttention(cfg, layer_idx)
        self.mlp = MLP(cfg)

    def forward(
        self,
        x: torch.Tensor,
        ve: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        window: int,
        backend: str,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(norm(x), ve, cos, sin, window, backend, mask)
        return x + self.mlp(norm(x))

    def forward_at(
        self,
        x: torch.Tensor,
        ve: torch.Tensor | None,
        cos: torch.Tensor,
        sin: torch.Tensor,
        window: int,
        mask: torch.Tensor | None,
        at: torch.Tensor,
    ) -> torch.Tensor:
        """`forward` at the True positions of ``at`` only (the last block when only those logits are needed)."""
        x = x[at] + self.attn.forward_at(norm(x), ve, cos, sin, window, mask, at)
        return x + self.mlp(norm(x))


def _embedding(num: int, dim: int) -> nn.Embedding:
    """An embedding table left uninitialized (``init_weights`` sets every table). Its default init
    would be a ``normal_`` on the meta device, which imports torch._dynamo: about 1 s of CPU in
    every process that builds a model (the model process and the scorer's calibration included)."""
    return nn.Embedding(num, dim, _weight=torch.empty(num, dim))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, compute_dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.config = config
        self.compute_dtype = compute_dtype
        self.attention_backend = "sdpa"
        kv_dim = config.n_kv_head * config.head_dim
        self.wte = _embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.value_embeds = nn.ModuleDict(
            {str(i): _embedding(config.vocab_size, kv_dim) for i in config.value_embed_layers}
        )
        self.lm_head = Linear(config.n_embd, config.vocab_size)  # bf16, never fp8: logit precision matters
        self.resid_lambdas = nn.Parameter(torch.ones(config.n_layer))
        self.x0_lambdas = nn.Parameter(torch.zeros(config.n_layer))
        self.smear_gate = Linear(SMEAR_GATE_CHANNELS, 1)
        self.smear_lambda = nn.Parameter(torch.zeros(1))
        self.backout_lambda = nn.Parameter(torch.zeros(1))
        self.backout_layer = config.n_layer // 2  # the residual after this block is subtracted
        rope_len = config.rope_positions_factor * config.sequence_len
        self.register_buffer("rope_cos", torch.zeros(1, rope_len, 1, config.head_dim // 2), persistent=False)
        self.register_buffer("rope_sin", torch.zeros(1, rope_len, 1, config.head_dim // 2), persistent=False)

    @property
    def max_positions(self) -> int:
        """Positions a sequence may use (the RoPE table): CORE crops longer prompts to their last tokens."""
        return int(self.rope_cos.size(1))

    # --- initialization --------------------------------------------------------------------------

    @torch.no_grad()
    def init_weights(self) -> None:
        """The init scheme of the recipe (uses the global torch RNG: seed it first)."""
        cfg = self.config
        s = math.sqrt(3.0 / cfg.n_embd)
        nn.init.normal_(self.wte.weight, mean=0.0, std=0.8)
        nn.init.normal_(self.lm_head.weight, mean=0.0, std=0.001)
        for block in self.blocks:
            assert isinstance(block, Block)
            for lin in (block.attn.c_q, block.attn.c_k, block.attn.c_v):
                nn.init.uniform_(lin.weight, -s, s)
            nn.init.uniform_(block.mlp.c_fc.weight, -0.4 * s, 0.4 * s)
            nn.init.zeros_(block.attn.c_proj.weight)
            nn.init.zeros_(block.mlp.c_proj.weight)
            if block.attn.ve_gate is not None:
                nn.init.uniform_(block.attn.ve_gate.weight, 0.0, 0.02)
        for emb in self.value_embeds.values():
            assert isinstance(emb, nn.Embedding)
            nn.init.uniform_(emb.weight, -s, s)
        self.resid_lambdas.copy_(torch.linspace(1.15, 1.05, cfg.n_layer))
        self.x0_lambdas.copy_(torch.linspace(0.20, 0.05, cfg.n_layer))
        nn.init.uniform_(self.smear_gate.weight, 0.0, 0.02)
        self.smear_lambda.zero_()
        self.backout_lambda.fill_(0.2)
        self._init_rotary()
        # Embedding tables live in the compute dtype (they are only gathered, never multiplied).
        self.wte.to(self.compute_dtype)
        self.value_embeds.to(self.compute_dtype)

    def _init_rotary(self) -> None:
        half = self.config.head_dim // 2
        device = self.rope_cos.device
        inv_freq = 1.0 / (self.config.rope_base ** (torch.arange(half, dtype=torch.float32, device=device) / half))
        pos = torch.arange(self.rope_cos.size(1), dtype=torch.float32, device=device)
        angles = torch.outer(pos, inv_freq)
        self.rope_cos.copy_(angles.cos()[None, :, None, :])
        self.rope_sin.copy_(angles.sin()[None, :, None, :])

    # --- optimizer groups ------------------------------------------------------------------------

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by optimizer group (names as in `plan.learning_rates`)."""
        matrices = [p for block in self.blocks for p in block.parameters()]
        return {
            "matrices": matrices,
            "lm_head": [self.lm_head.weight],
            "wte": [self.wte.weight],
            "value_embeds": list(self.value_embeds.parameters()),
            "resid_lambdas": [self.resid_lambdas],
            "x0_lambdas": [self.x0_lambdas],
            "scalars": [self.smear_gate.weight, self.smear_lambda, self.backout_lambda],
        }

    # --- forward ---------------------------------------------------------------------------------

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        loss_reduction: str = "mean",
        *,
        logits_at: torch.Tensor | None = None,
        tree: TokenTree | None = None,
    ) -> torch.Tensor:
        """Logits `[B, T, V]` (fp32, soft-capped) without targets; the loss with them (`ignore_index=-1`).

        ``logits_at``: a boolean `[B, T]` mask; the last block's queries and MLP and the head (lm_head,
        softcap, loss) then run only at the selected positions, and the logits are `[N, V]` in row-major
        order (targets, if given, `[N]`).
        ``tree``: the rows are token trees (`TokenTree`): shared prefixes computed once, each token
        attending only to its own sequence. Both default to off (the plain causal forward).
        """
        cfg = self.config
        _, t = idx.shape
        if tree is None:
            if t > self.rope_cos.size(1):
                raise ValueError(f"sequence of {t} tokens is longer than the RoPE table ({self.rope_cos.size(1)})")
            cos = self.rope_cos[:, :t].to(self.compute_dtype)
            sin = self.rope_sin[:, :t].to(self.compute_dtype)
        else:
            if int(tree.positions.max()) >= self.rope_cos.size(1):
                raise ValueError(f"a tree position is beyond the RoPE table ({self.rope_cos.size(1)})")
            cos = self.rope_cos[0][tree.positions].to(self.compute_dtype)  # [B, T, 1, D/2]
            sin = self.rope_sin[0][tree.positions].to(self.compute_dtype)

        x = norm(self.wte(idx).to(self.compute_dtype))
        # Smear: x_t += lambda * sigmoid(W x_t[:24]) * x_{t-1}, for t >= 1 (causal bigram mixing).
        if tree is None:
            gate = self.smear_lambda.to(x.dtype) * torch.sigmoid(self.smear_gate(x[:, 1:, :SMEAR_GATE_CHANNELS]))
            x = torch.cat([x[:, :1], x[:, 1:] + gate * x[:, :-1]], dim=1)
        else:
            gate = self.smear_lambda.to(x.dtype) * torch.sigmoid(self.smear_gate(x[..., :SMEAR_GATE_CHANNELS]))
            before = torch.gather(x, 1, tree.previous.unsqueeze(-1).expand_as(x))
            x = torch.where((tree.positions > 0).unsqueeze(-1), x + gate * before, x)
        masks: dict[int, torch.Tensor] = {}
        if tree is not None:
            offset = tree.positions.unsqueeze(2) - tree.positions.unsqueeze(1)  # query position - key position
            for w in set(cfg.window_sizes):
                masks[w] = (tree.visible & (offset <= w)).unsqueeze(1)  # w keys to the left plus the query
        x0 = x
        x_mid = x
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = self.resid_lambdas[i].to(x.dtype) * x + self.x0_lambdas[i].to(x.dtype) * x0
            ve = self.value_embeds[str(i)](idx).to(x.dtype) if str(i) in self.value_embeds else None
            w = cfg.window_sizes[i]
            if logits_at is not None and i == last:  # the last block only where logits are wanted: [N, C]
                if self.backout_layer != last:
                    x_mid = x_mid[logits_at]
                x = block.forward_at(x, ve, cos, sin, w, masks.get(w), logits_at)
            else:
                x = block(x, ve, cos, sin, w, self.attention_backend, masks.get(w))
            if i == self.backout_layer:
                x_mid = x
        x = norm(x - self.backout_lambda.to(x.dtype) * x_mid)
        logits = self.lm_head(x).float()
        logits = cfg.logit_softcap * torch.tanh(logits / cfg.logit_softcap)
        if targets is None:
            return logits
        loss = F.cross_entropy(
            logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1, reduction=loss_reduction
        )
        return loss.view(targets.shape) if loss_reduction == "none" else loss


def build_model(config: GPTConfig, device: torch.device, compute_dtype: torch.dtype) -> GPT:
    """Construct on the meta device, materialize on `device`, initialize (seed the RNG first)."""
    with torch.device("meta"):
        model = GPT(config, compute_dtype)
    # as ``to_empty``, without ``empty_like`` of meta tensors: its reference implementation imports
    # torch.fx's symbolic shapes (~0.4 s of CPU in every model process and calibration)
    model._apply(lambda t: torch.empty(t.shape, dtype=t.dtype, device=device))
    model.init_weights()
    return model
