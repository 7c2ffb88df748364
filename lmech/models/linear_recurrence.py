"""Diagonal linear recurrence (LRU / S4D style, real diagonal) stacked with MLPs as an nn.Module,
with SP / NTK / muP as data.

One job: tokens (N, T) int64 -> logits (N, T, C). Each of `depth` pre-LayerNorm blocks is
    u_t = B LN(x_t);  s_t = a * s_(t-1) + gamma * u_t  (s_0 = 0);  x_t <- x_t + C s_t,
then, if mlp_ratio > 0, x_t <- x_t + down(gelu(up(LN(x_t)))); a final layer norm and a linear
readout follow. The decay a = exp(-exp(nu)) lies in (0, 1) for every real nu (stable by
construction), and gamma = sqrt(1 - a^2) (normalize_input) keeps the state's variance equal to
the input's for stationary white input. It ignores optimizers (see
`linear_recurrence_lr_multipliers`) and data.

`mixer` replaces the recurrence (default "diagonal", the block above, unchanged and left out of
the run id's JSON so every earlier run id stands) by a multiplicative one, both with the keys read
from the previous token x_(t-1) (a one-step shift, H3's shift SSM reduced to one tap):
- "gated" (H3 / BaseConv style): s_t = a * s_(t-1) + (K x_(t-1)) * (V x_t), y_t = C (Q x_t * s_t);
  the state is still P numbers updated by a diagonal linear recurrence, the products bind a key
  to its value (Fu et al. 2023, arXiv 2212.14052, Sec. 3; Arora et al. 2023, Zoology, Sec. 4).
- "outer" (linear attention with decay): S_t = diag(a) S_(t-1) + k_t v_t^T, a (P, H) state,
  y_t = W_o S_t^T q_t / sqrt(P) (Katharopoulos et al. 2020). Its P x H state grows with the
  width: in a probe on MQAR (V = 66, width 32, 300 steps) P = 4 still recalled 0.76 of the
  queries at D = 16 pairs (distinct key directions in P dims stay separable under argmax).
Both cost O(N T^2 (P + H)) a block by the same closed form.

Algorithm: the recurrence in closed form, s_t = sum_(k <= t) a^(t - k) gamma u_k, as one einsum
with a (T, T, P) decay tensor: O(T^2 P) time and memory a member, no Python loop over T, and
vmap-friendly (T is small, <= 64, here). Exponents are clamped to lags >= 0 before exp, so no
inf reaches the masked (future) entries.

Parameterization (m = width / base_width; the state size P = round(state_ratio * width) grows
with width, so B (H -> P) and C (P -> H) are hidden weights; weights drawn N(0, std^2) from
`lmech.seeding.generator(seed, "init/<name>")`):

| parameter                   | SP                 | NTK                     | muP                        |
|-----------------------------|--------------------|-------------------------|----------------------------|
| token embedding             | std s_e            | std s_e                 | std s_e; SGD lr x m        |
| B, C, mlp up / down         | std 1/sqrt(fan_in) | std 1, x 1/sqrt(fan_in) | std 1/sqrt(fan_in); Adam/m |
| readout                     | std 1/sqrt(H)      | std 1, x 1/sqrt(H)      | std 0, x 1/m; SGD lr x m   |
| nu, layer norms, biases     | -                  | -                       | SGD lr x m                 |

nu starts at log(-log a) with a uniform in [a_min, a_max] (LRU's ring initialisation, real
case); init_scale multiplies the embedding and weight matrices, not nu.

Source: Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for Long Sequences" (LRU,
arXiv 2303.06349), Sec. 3: diagonal recurrence, exponential parameterization of the
eigenvalues, ring initialisation, gamma normalization (here real and computed from a rather than
learned); Gu et al. 2022 (S4D) for the diagonal state space form. Width scaling: Yang et al.
2022 (Tensor Programs V) Table 3 in the Table 8 multiplier form, as `parameterization.py`.

Failure modes: the (T, T, P) tensor grows quadratically with T (use for T up to a few hundred);
a real diagonal cannot oscillate (LRU's complex eigenvalues can); in float32 `decay()` rounds to
1 once nu < -17, but the forward pass uses log a = -exp(nu) and gamma = sqrt(-expm1(-2 exp(nu)))
directly, so the recurrence stays contracting there.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator
from torch import Tensor

from lmech.errors import InputError
from lmech.models._layers import Dense, LayerNorm, draw, init_std_and_multiplier, role_lr_multipliers, width_ratio
from lmech.seeding import generator

__all__ = ["LinearRecurrenceSpec", "LinearRecurrenceModel", "build_linear_recurrence",
           "linear_recurrence_lr_multipliers", "diagonal_recurrence", "outer_recurrence"]


class LinearRecurrenceSpec(BaseModel):
    """Blocks of a diagonal linear recurrence and an MLP over token embeddings."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
    kind: Literal["linear_recurrence"] = "linear_recurrence"
    width: int = Field(64, ge=1, le=16_384, description="H, the residual-stream width")
    depth: int = Field(2, ge=0, le=1024, description="number of blocks")
    state_ratio: float = Field(1.0, gt=0, le=64, description="state size P = round(state_ratio * width)")
    mlp_ratio: float = Field(4.0, ge=0, le=64, description="MLP hidden units = round(mlp_ratio * width); 0: no MLP")
    vocab: int | None = Field(None, ge=1, le=65_536, description="V; None: the task's vocabulary size")
    a_min: float = Field(0.5, gt=0, lt=1, description="smallest initial decay")
    a_max: float = Field(0.99, gt=0, lt=1, description="largest initial decay")
    normalize_input: bool = Field(True, description="scale B x by gamma = sqrt(1 - a^2)")
    bias: bool = True
    parameterization: Literal["sp", "ntk", "mup"] = "sp"
    base_width: int = Field(64, ge=1, le=16_384, description="width at which muP equals SP")
    embedding_std: float = Field(1.0, ge=0, description="init std of the token embedding")
    zero_init_readout: bool | None = Field(None, description="None: True under muP, else False")
    output_multiplier: float = Field(1.0, description="multiplies the logits")
    mixer: Literal["diagonal", "gated", "outer"] = Field(
        "diagonal", description="diagonal: s_t = a s_(t-1) + gamma B x_t (P numbers); gated: s_t = a s_(t-1) + "
        "(K x_(t-1)) * (V x_t), y_t = C (Q x_t * s_t) (P numbers); outer: linear attention "
        "with decay, S_t = diag(a) S_(t-1) + k_t v_t^T (P x H numbers, k from the previous token)")

    @model_serializer(mode="wrap")
    def _omit_default_mixer(self, handler, info):
        """In the run id's JSON (context "run_id") leave `mixer` out while it is "diagonal", so every run id
        from before the field existed is unchanged; every other dump has it."""
        tree = handler(self)
        if isinstance(tree, dict) and (info.context or {}).get("run_id") and self.mixer == "diagonal":
            tree.pop("mixer", None)
        return tree

    @model_validator(mode="after")
    def _ring(self):
        if self.a_min > self.a_max:
            raise ValueError(f"model.a_min ({self.a_min}) exceeds model.a_max ({self.a_max})")
        return self

    @property
    def state_size(self) -> int:
        return max(1, round(self.state_ratio * self.width))

    @property
    def mlp_width(self) -> int:
        return round(self.mlp_ratio * self.width)


def diagonal_recurrence(u: Float[Tensor, "N T P"], log_a: Float[Tensor, " P"]) -> Float[Tensor, "N T P"]:
    """s_t = a * s_(t-1) + u_t with s_0 = 0, for every t, by the closed form
    s_t = sum_(k <= t) a^(t - k) u_k (one einsum over a (T, T, P) decay tensor).

    Takes log a (< 0 for a stable recurrence) rather than a, which keeps its precision as a -> 1.
    """
    t = u.shape[-2]
    steps = torch.arange(t, device=u.device)
    lag = (steps[:, None] - steps[None, :]).to(u.dtype)  # (T, T): t - k
    causal = (lag >= 0).to(u.dtype)
    decay = torch.exp(lag.clamp(min=0)[:, :, None] * log_a) * causal[:, :, None]  # (T, T, P)
    return torch.einsum("tkp,nkp->ntp", decay, u)


def outer_recurrence(q: Float[Tensor, "N T P"], k: Float[Tensor, "N T P"], v: Float[Tensor, "N T H"],
                     log_a: Float[Tensor, " P"]) -> Float[Tensor, "N T H"]:
    """y_t = S_t^T q_t with S_t = diag(a) S_(t-1) + k_t v_t^T, S_0 = 0 (a (P, H) state), for every t,
    by the closed form y_t = sum_(j <= t) (sum_p q_tp a_p^(t - j) k_jp) v_j: one (T, T, P) decay tensor,
    O(N T^2 (P + H)) time, no loop over T (linear attention with a per-key-dimension decay).
    """
    t = q.shape[-2]
    steps = torch.arange(t, device=q.device)
    lag = (steps[:, None] - steps[None, :]).to(q.dtype)
    causal = (lag >= 0).to(q.dtype)
    decay = torch.exp(lag.clamp(min=0)[:, :, None] * log_a) * causal[:, :, None]  # (T, T, P)
    scores = torch.einsum("ntp,tjp,njp->ntj", q, decay, k)
    return torch.einsum("ntj,njh->nth", scores, v)


def _hidden_dense(spec: LinearRecurrenceSpec, fan_in: int, fan_out: int, m: float, init_scale: float, seed: int,
                  name: str) -> Dense:
    """A hidden-role Dense of the spec's parameterization, drawn from the stream init/<name>.weight."""
    std, mult = init_std_and_multiplier(spec.parameterization, "hidden", fan_in, m)
    return Dense(fan_in, fan_out, init_std=std * init_scale, multiplier=mult, bias=spec.bias,
                 generator=generator(seed, f"init/{name}.weight"))


class _DecayingMixer(torch.nn.Module):
    """A mixer with P per-state decays a = exp(-exp(nu)), drawn uniform in [a_min, a_max] (stream init/<prefix>.nu)."""

    def _draw_decays(self, spec: LinearRecurrenceSpec, prefix: str, seed: int) -> None:
        g = generator(seed, f"init/{prefix}.nu")
        a = spec.a_min + (spec.a_max - spec.a_min) * torch.rand(spec.state_size, generator=g, dtype=torch.float64)
        self.nu = torch.nn.Parameter(torch.log(-torch.log(a)).float())

    def decay(self) -> Float[Tensor, " P"]:
        """a = exp(-exp(nu)), in (0, 1)."""
        return torch.exp(-torch.exp(self.nu))


class OuterRecurrence(_DecayingMixer):
    """Linear attention with decay: (N, T, H) -> (N, T, H) through a (P, H) state.

    q_t = W_q x_t, k_t = W_k x_(t-1) (x_0 -> 0: a one-step shift of the keys, H3's shift SSM reduced to
    one tap, so the key of pair j meets its value at the value's position), v_t = W_v x_t,
    y_t = W_o S_t^T q_t / sqrt(P), S_t = diag(a) S_(t-1) + k_t v_t^T. The state update is linear and
    diagonal in the key dimension (a per row of S); the product k_t v_t^T is the multiplicative
    interaction a diagonal recurrence lacks. Sources: Katharopoulos et al. 2020 (linear attention);
    Fu et al. 2023 (H3, arXiv 2212.14052) Sec. 3; Arora et al. 2023 (Zoology / Based) Sec. 4.
    """

    def __init__(self, spec: LinearRecurrenceSpec, prefix: str, seed: int, init_scale: float):
        super().__init__()
        h, p = spec.width, spec.state_size
        m = width_ratio(h, spec.base_width)
        self.gated = spec.mixer == "gated"
        for name, out in (("q_proj", p), ("k_proj", p), ("v_proj", p if self.gated else h)):
            setattr(self, name, _hidden_dense(spec, h, out, m, init_scale, seed, f"{prefix}.{name}"))
        fan = p if self.gated else h
        self.out_proj = _hidden_dense(spec, fan, h, m, init_scale, seed, f"{prefix}.out_proj")
        self._draw_decays(spec, prefix, seed)
        self.scale = p ** -0.5

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        previous = F.pad(x, (0, 0, 1, 0))[..., :-1, :]  # x_(t-1), zeros at t = 0
        if self.gated:
            s = diagonal_recurrence(self.k_proj(previous) * self.v_proj(x), -torch.exp(self.nu))
            return self.out_proj(self.q_proj(x) * s)
        y = outer_recurrence(self.q_proj(x) * self.scale, self.k_proj(previous), self.v_proj(x),
                             -torch.exp(self.nu))
        return self.out_proj(y)


class Recurrence(_DecayingMixer):
    """C diag-recurrence(gamma * B x): (N, T, H) -> (N, T, H) through P states."""

    def __init__(self, spec: LinearRecurrenceSpec, prefix: str, seed: int, init_scale: float):
        super().__init__()
        h, p = spec.width, spec.state_size
        m = width_ratio(h, spec.base_width)
        self.in_proj = _hidden_dense(spec, h, p, m, init_scale, seed, f"{prefix}.in_proj")
        self.out_proj = _hidden_dense(spec, p, h, m, init_scale, seed, f"{prefix}.out_proj")
        self._draw_decays(spec, prefix, seed)
        self.normalize_input = spec.normalize_input

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        u = self.in_proj(x)  # (N, T, P)
        if self.normalize_input:
            u = u * torch.sqrt(-torch.expm1(-2 * torch.exp(self.nu)))  # gamma = sqrt(1 - a^2)
        return self.out_proj(diagonal_recurrence(u, -torch.exp(self.nu)))  # log a = -exp(nu)


class Block(torch.nn.Module):
    """x + recurrence(LN(x)), then x + mlp(LN(x)) when the spec has an MLP."""

    def __init__(self, spec: LinearRecurrenceSpec, index: int, seed: int, init_scale: float):
        super().__init__()
        prefix = f"blocks.{index}"
        m = width_ratio(spec.width, spec.base_width)
        self.ln_recurrence = LayerNorm(spec.width, spec.bias)
        mixer = Recurrence if spec.mixer == "diagonal" else OuterRecurrence  # gated or outer
        self.recurrence = mixer(spec, f"{prefix}.recurrence", seed, init_scale)
        self.has_mlp = spec.mlp_width > 0
        if self.has_mlp:
            self.ln_mlp = LayerNorm(spec.width, spec.bias)
            self.up = _hidden_dense(spec, spec.width, spec.mlp_width, m, init_scale, seed, f"{prefix}.up")
            self.down = _hidden_dense(spec, spec.mlp_width, spec.width, m, init_scale, seed, f"{prefix}.down")

    def forward(self, x: Float[Tensor, "N T H"]) -> Float[Tensor, "N T H"]:
        x = x + self.recurrence(self.ln_recurrence(x))
        if self.has_mlp:
            x = x + self.down(F.gelu(self.up(self.ln_mlp(x))))
        return x


class LinearRecurrenceModel(torch.nn.Module):
    """Tokens (N, T) int64 -> logits (N, T, C) float32; causal (s_t sees tokens <= t only).

    `output_multiplier` is a 0-dim non-persistent buffer (per member under stack_module_state).
    """

    def __init__(self, spec: LinearRecurrenceSpec, vocab_size: int, output_dim: int, seed: int,
                 init_scale: float = 1.0):
        super().__init__()
        h = spec.width
        m = width_ratio(h, spec.base_width)
        self.token_embedding = torch.nn.Parameter(
            draw((vocab_size, h), spec.embedding_std * init_scale, generator(seed, "init/token_embedding")))
        self.blocks = torch.nn.ModuleList(Block(spec, i, seed, init_scale) for i in range(spec.depth))
        self.ln_final = LayerNorm(h, spec.bias)
        zero = spec.parameterization == "mup" if spec.zero_init_readout is None else spec.zero_init_readout
        std, mult = init_std_and_multiplier(spec.parameterization, "output", h, m)
        self.readout = Dense(h, output_dim, init_std=0.0 if zero else std * init_scale, multiplier=mult,
                             bias=False, generator=generator(seed, "init/readout.weight"))
        self.register_buffer("output_multiplier", torch.tensor(float(spec.output_multiplier)),
                             persistent=False)

    def forward(self, x: Int[Tensor, "N T"]) -> Float[Tensor, "N T C"]:
        h = F.embedding(x, self.token_embedding)  # (N, T, H)
        for block in self.blocks:
            h = block(h)
        return self.readout(self.ln_final(h)) * self.output_multiplier


def build_linear_recurrence(spec: LinearRecurrenceSpec, input_shape: tuple[int, ...], output_dim: int,
                            vocab_size: int | None, seed: int, init_scale: float = 1.0) -> LinearRecurrenceModel:
    """A LinearRecurrenceModel for token sequences (N, T); input_shape must be (T,)."""
    if len(input_shape) != 1:
        raise InputError(f"a linear_recurrence model takes token sequences (N, T); got input shape "
                         f"{tuple(input_shape)}")
    if spec.vocab is not None and vocab_size is not None and spec.vocab != vocab_size:
        raise InputError(f"model.vocab ({spec.vocab}) differs from the task's vocabulary ({vocab_size})")
    vocab = spec.vocab if spec.vocab is not None else vocab_size
    if vocab is None:
        raise InputError("a linear_recurrence model needs a vocabulary size: set model.vocab or use a token task")
    return LinearRecurrenceModel(spec, vocab, output_dim, seed, init_scale)


def _role(name: str) -> tuple[str, bool]:
    parts = name.split(".")
    if name == "token_embedding":
        return "input", False
    if name == "readout.weight":
        return "output", False
    if name in ("ln_final.weight", "ln_final.bias") or (len(parts) == 4 and parts[2].startswith("ln_")):
        return "hidden", True
    if parts[0] == "blocks" and parts[-1] == "nu" and len(parts) == 4:
        return "hidden", True
    if parts[0] == "blocks" and parts[-1] in ("weight", "bias") and parts[-2] in ("in_proj", "out_proj", "up", "down",
                                                                              "q_proj", "k_proj", "v_proj"):
        return "hidden", parts[-1] == "bias"
    raise InputError(f"'{name}' is not a parameter of an lmech LinearRecurrenceModel")


def linear_recurrence_lr_multipliers(spec: LinearRecurrenceSpec, module: torch.nn.Module,
                                     optimizer_family: Literal["sgd", "adam"]) -> dict[str, float]:
    """{parameter name: learning-rate multiplier} for every parameter (see the table)."""
    return role_lr_multipliers(spec.parameterization, width_ratio(spec.width, spec.base_width), module,
                               optimizer_family, _role)

