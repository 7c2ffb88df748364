"""Decoder-only transformer (pre-LayerNorm, causal multi-head attention, GELU MLP) as an nn.Module,
with SP / NTK / muP as data.

One job: the architecture and its parameterization table. It ignores optimizers (the trainer
multiplies learning rates by `transformer_lr_multipliers`) and data.

Tokens (N, T) int64 -> logits (N, T, C), usually C = V (next-token prediction). Attention is
written with plain matmuls and an explicit scale, so the forward pass is a pure function of
parameters and inputs: it vmaps over stacked members (torch.func.stack_module_state +
functional_call) and has double backward on CPU (torch's fused attention kernel has none).

Parameterization (m = width / base_width, d = width / heads, d0 = base_width / heads; every
weight matrix is drawn N(0, std^2) from `lmech.seeding.generator(seed, "init/<name>")`):

| parameter                 | SP                 | NTK                        | muP                          |
|---------------------------|--------------------|----------------------------|------------------------------|
| token / position embedding| std s_e            | std s_e                    | std s_e                      |
| q, k, v, out, mlp up/down | std 1/sqrt(fan_in) | std 1, x 1/sqrt(fan_in)    | std 1/sqrt(fan_in) (q: 0)    |
| readout (untied)          | std 1/sqrt(H)      | std 1, x 1/sqrt(H)         | std 0, x 1/m                 |
| attention logits          | q.k / sqrt(d)      | q.k / sqrt(d)              | q.k * sqrt(d0) / d           |
| Adam lr x                 | 1                  | 1                          | hidden weights 1/m, rest 1   |
| SGD lr x                  | 1                  | 1                          | embeddings, readout, layer   |
|                           |                    |                            | norms, biases m; hidden 1    |

s_e = embedding_std (an embedding is an input weight with fan_in 1: a one-hot token). Layer-norm
gains start at 1, biases at 0; the readout has no bias. With tied embeddings the readout is
the token embedding's transpose times the readout multiplier (1, 1/sqrt(H), 1/m), so the
initial logits have RMS about s_e * sqrt(H) * multiplier: choose s_e accordingly (GPT-2 uses
0.02). `init_scale` multiplies every initial weight matrix and embedding.

Source: Yang et al. 2022, Tensor Programs V (arXiv 2203.03466): Table 3 with the output
weights in the equivalent multiplier form of Table 8 (readout multiplier 1/m, Adam lr of
hidden weights / m, SGD lr of vector-like parameters x m), exactly as the `mup` package's
MuReadout / MuAdam / MuSGD with base width `base_width`; attention logits scaled by 1/d instead
of 1/sqrt(d) (TP V; the `mup` README writes 8/d to match 1/sqrt(d) at d = 64, here the
constant is sqrt(d0), so muP equals SP at base width); zero-initialised readout and query
(TP V and the `mup` README's coordinate-check advice): `zero_init_readout` and
`zero_init_query` default to True under muP and False otherwise. With both set False, muP at
width = base_width is SP exactly. NTK: Jacot et al. 2018 eq. (1) for every dense layer.

Failure modes: dropout > 0 in train mode draws random numbers, so a vmap over members needs
`randomness="different"`; T must not exceed `context`; rotary positions need an even d.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from lmech.errors import InputError
from lmech.models._layers import (
    Dense,
    LayerNorm,
    draw,
    init_std_and_multiplier,
    role_lr_multipliers,
    width_ratio,
)
from lmech.seeding import generator

__all__ = ["TransformerSpec", "Transformer", "build_transformer", "transformer_lr_multipliers"]


class TransformerSpec(BaseModel):
    """A decoder-only pre-LN transformer; sizes, parameterization and the output multiplier."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["transformer"] = "transformer"
    width: int = Field(64, ge=1, le=16_384, description="H, the residual-stream width (d_model)")
    heads: int = Field(4, ge=1, le=1024, description="attention heads; d_head = width / heads")
    depth: int = Field(2, ge=0, le=1024, description="number of blocks")
    context: int = Field(64, ge=1, le=65_536, description="longest sequence T (learned position table size)")
    vocab: int | None = Field(None, ge=1, le=65_536, description="V; None: the task's vocabulary size")
    mlp_ratio: float = Field(4.0, gt=0, le=64, description="MLP hidden units = round(mlp_ratio * width)")
    attention_only: bool = Field(False, description="blocks without MLPs")
    positions: Literal["learned", "rotary", "none"] = "learned"
    tie_embeddings: bool = Field(False, description="readout = token embedding transposed")
    bias: bool = Field(True, description="biases in dense layers and layer norms")
    dropout: float = Field(0.0, ge=0, lt=1, description="on attention probabilities and branch outputs")
    parameterization: Literal["sp", "ntk", "mup"] = "sp"
    base_width: int = Field(64, ge=1, le=16_384, description="width at which muP equals SP")
    embedding_std: float = Field(1.0, ge=0, description="init std of token and position embeddings")
    zero_init_query: bool | None = Field(None, description="None: True under muP, else False")
    zero_init_readout: bool | None = Field(None, description="None: True under muP (untied), else False")
    output_multiplier: float = Field(1.0, description="multiplies the logits")

    @model_validator(mode="after")
    def _sizes_fit(self):
        if self.width % self.heads or self.base_width % self.heads:
            raise ValueError(f"model.width ({self.width}) and model.base_width ({self.base_width}) "
                             f"must be multiples of model.heads ({self.heads})")
        if self.positions == "rotary" and (self.width // self.heads) % 2:
            raise ValueError(f"rotary positions need an even head size, got {self.width // self.heads}")
        if self.tie_embeddings and self.zero_init_readout:
            raise ValueError("a tied readout is the token embedding; it cannot start at zero")
        return self

    @property
    def mlp_width(self) -> int:
        return max(1, round(self.mlp_ratio * self.width))

    def resolved_zero_init(self) -> tuple[bool, bool]:
        """(zero query, zero readout) after applying the parameterization's defaults."""
        mup = self.parameterization == "mup"
        query = mup if self.zero_init_query is None else self.zero_init_query
        readout = (mup and not self.tie_embeddings) if self.zero_init_readout is None else self.zero_init_readout
        return query, readout

    def attention_scale(self) -> float:
        """Multiplier of q.k: 1/sqrt(d) (SP, NTK) or sqrt(d0)/d (muP, TP V)."""
        d = self.width // self.heads
        if self.parameterization == "mup":
            return math.sqrt(self.base_width // self.heads) / d
        return 1.0 / math.sqrt(d)


def _dense(spec: TransformerSpec, name: str, fan_in: int, fan_out: int, seed: int,
           init_scale: float, role: str = "hidden", zero: bool = False, bias: bool | None = None) -> Dense:
    m = width_ratio(spec.width, spec.base_width)
    std, multiplier = init_std_and_multiplier(spec.parameterization, role, fan_in, m)
    return Dense(fan_in, fan_out, init_std=0.0 if zero else std * init_scale, multiplier=multiplier,
                 bias=spec.bias if bias is None else bias, generator=generator(seed, f"init/{name}"))


def _rotary(x: Float[Tensor, "N A T E"]) -> Float[Tensor, "N A T E"]:
    """Rotate channel pairs (i, i + E/2) by angle t * 10000^(-2i/E) (Su et al. 2021, RoFormer eq. 34)."""
    t, e = x.shape[-2], x.shape[-1]
    half = e // 2
    freq = 10000.0 ** (-torch.arange(half, dtype=x.dtype, device=x.device) / half)
    angle = torch.arange(t, dtype=x.dtype, device=x.device)[:, None] * freq  # (T, E/2)
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Attention(torch.nn.Module):
    """Causal multi-head self-attention: (N, T, H) -> (N, T, H)."""

    def __init__(self, spec: TransformerSpec, prefix: str, seed: int, init_scale: float):
        super().__init__()
        h = spec.width
        zero_query, _ = spec.resolved_zero_init()
        self.query = _dense(spec, f"{prefix}.query", h, h, seed, init_scale, zero=zero_query)
        self.key = _dense(spec, f"{prefix}.key", h, h, seed, init_scale)
        self.value = _dense(spec, f"{prefix}.value", h, h, seed, init_scale)
        self.out = _dense(spec, f"{prefix}.out", h, h, seed, init_scale)
        self.heads = spec.heads
        self.scale = spec.attention_scale()
        self.rotary = spec.positions == "rotary"
        self.dropout = spec.dropout

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        n, t, h = x.shape
        a, e = self.heads, h // self.heads

        def split(z: Tensor) -> Tensor:
            return z.reshape(n, t, a, e).transpose(1, 2)  # (N, A, T, E)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        if self.rotary:
            q, k = _rotary(q), _rotary(k)
        scores = (q @ k.transpose(-2, -1)) * self.scale  # (N, A, T, T)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        if self.dropout > 0 and self.training:
            probs = F.dropout(probs, self.dropout, training=True)
        mixed = (probs @ v).transpose(1, 2).reshape(n, t, h)  # (N, T, A*E)
        return self.out(mixed)


class MLP(torch.nn.Module):
    """down(gelu(up(x))): (N, T, H) -> (N, T, H) through mlp_width hidden units."""

    def __init__(self, spec: TransformerSpec, prefix: str, seed: int, init_scale: float):
        super().__init__()
        self.up = _dense(spec, f"{prefix}.up", spec.width, spec.mlp_width, seed, init_scale)
        self.down = _dense(spec, f"{prefix}.down", spec.mlp_width, spec.width, seed, init_scale)

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        return self.down(F.gelu(self.up(x)))


class Block(torch.nn.Module):
    """x + attention(LN(x)), then x + mlp(LN(x)) unless attention-only; returns the residual stream."""

    def __init__(self, spec: TransformerSpec, index: int, seed: int, init_scale: float):
        super().__init__()
        prefix = f"blocks.{index}"
        self.ln_attention = LayerNorm(spec.width, spec.bias)
        self.attention = Attention(spec, f"{prefix}.attention", seed, init_scale)
        if not spec.attention_only:
            self.ln_mlp = LayerNorm(spec.width, spec.bias)
            self.mlp = MLP(spec, f"{prefix}.mlp", seed, init_scale)
        self.attention_only = spec.attention_only
        self.dropout = spec.dropout

    def _drop(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.dropout, training=True) if self.dropout > 0 and self.training else x

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        x = x + self._drop(self.attention(self.ln_attention(x)))
        if not self.attention_only:
            x = x + self._drop(self.mlp(self.ln_mlp(x)))
        return x


class Transformer(torch.nn.Module):
    """Tokens (N, T) int64 -> logits (N, T, C) float32; see the module docstring for the table.

    `output_multiplier` is a 0-dim non-persistent buffer, so members stacked with
    torch.func.stack_module_state may each carry their own.
    """

    def __init__(self, spec: TransformerSpec, vocab_size: int, output_dim: int, seed: int,
                 init_scale: float = 1.0):
        super().__init__()
        h = spec.width
        m = width_ratio(h, spec.base_width)
        emb_std = spec.embedding_std * init_scale  # input role, fan_in 1: std 1 in every table
        self.token_embedding = torch.nn.Parameter(
            draw((vocab_size, h), emb_std, generator(seed, "init/token_embedding")))
        if spec.positions == "learned":
            self.position_embedding = torch.nn.Parameter(
                draw((spec.context, h), emb_std, generator(seed, "init/position_embedding")))
        self.blocks = torch.nn.ModuleList(Block(spec, i, seed, init_scale) for i in range(spec.depth))
        self.ln_final = LayerNorm(h, spec.bias)
        _, zero_readout = spec.resolved_zero_init()
        if spec.tie_embeddings:
            self.readout_multiplier = init_std_and_multiplier(spec.parameterization, "output", h, m)[1]
        else:
            self.readout = _dense(spec, "readout", h, output_dim, seed, init_scale, role="output",
                                  zero=zero_readout, bias=False)
        self.tied = spec.tie_embeddings
        self.context = spec.context
        self.register_buffer("output_multiplier", torch.tensor(float(spec.output_multiplier)),
                             persistent=False)

    def forward(self, x: Int[Tensor, "N T"]) -> Float[Tensor, "N T C"]:
        t = x.shape[-1]
        h = F.embedding(x, self.token_embedding)  # (N, T, H)
        if hasattr(self, "position_embedding"):
            h = h + self.position_embedding[:t]
        for block in self.blocks:
            h = block(h)
        h = self.ln_final(h)
        if self.tied:
            logits = F.linear(h, self.token_embedding) * self.readout_multiplier
        else:
            logits = self.readout(h)
        return logits * self.output_multiplier


def build_transformer(spec: TransformerSpec, input_shape: tuple[int, ...], output_dim: int,
                      vocab_size: int | None, seed: int, init_scale: float = 1.0) -> Transformer:
    """A Transformer for token inputs of shape (N, *input_shape) = (N, T), T <= spec.context.

    Raises InputError when the input is not one token axis, T exceeds the context, no
    vocabulary size is known, or a tied readout's output_dim differs from the vocabulary.
    """
    if len(input_shape) != 1:
        raise InputError(f"a transformer takes token sequences (N, T); got input shape {tuple(input_shape)}")
    if input_shape[0] > spec.context:
        raise InputError(f"sequence length {input_shape[0]} exceeds model.context ({spec.context})")
    if spec.vocab is not None and vocab_size is not None and spec.vocab != vocab_size:
        raise InputError(f"model.vocab ({spec.vocab}) differs from the task's vocabulary ({vocab_size})")
    vocab = spec.vocab if spec.vocab is not None else vocab_size
    if vocab is None:
        raise InputError("a transformer needs a vocabulary size: set model.vocab or use a token task")
    if spec.tie_embeddings and output_dim != vocab:
        raise InputError(f"tied embeddings need output_dim == vocab, got {output_dim} and {vocab}")
    return Transformer(spec, vocab, output_dim, seed, init_scale)


def _role(name: str) -> tuple[str, bool]:
    """(role, is_vector) of a Transformer parameter name."""
    if name in ("token_embedding", "position_embedding"):
        return "input", False
    if name == "readout.weight":
        return "output", False
    leaf = name.rsplit(".", 2)
    if name.startswith("blocks.") and leaf[-1] in ("weight", "bias"):
        if leaf[-2].startswith("ln_"):
            return "hidden", True
        if leaf[-2] in ("query", "key", "value", "out", "up", "down"):
            return "hidden", leaf[-1] == "bias"
    if name in ("ln_final.weight", "ln_final.bias"):
        return "hidden", True
    raise InputError(f"'{name}' is not a parameter of an lmech Transformer")


def transformer_lr_multipliers(spec: TransformerSpec, module: torch.nn.Module,
                               optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """{parameter name: learning-rate multiplier} for every parameter of `module` (see the table)."""
    return role_lr_multipliers(spec.parameterization, width_ratio(spec.width, spec.base_width), module,
                               optimizer_family, _role)
