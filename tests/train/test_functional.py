"""An ensemble of any nn.Module (lmech.train.functional) trains each member exactly as alone.

Exactness claims are checked in float64: the same operations per member in another summation
order agree to ~1e-14 relative, so 50 steps stay far inside the 1e-8 tolerance, while a member
trained with another member's learning rate misses it by orders of magnitude (negative control).
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lmech.errors import InputError
from lmech.instruments.losses import named_loss
from lmech.train import (
    MemberHyper,
    StackedModel,
    clip_grad_norm_per_member,
    init_optimizer_state,
    optimizer_step,
    per_member_grad_norm,
    stack_members,
)
from lmech.train.functional import losses_and_grads

STEPS = 50
K = 4


# ---- small architectures ------------------------------------------------------------------------

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


class CNN2d(nn.Module):
    """(N, 1, 8, 8) -> (N, 4): conv, max pool, conv, global average pool, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.readout = nn.Linear(6, 4)

    def forward(self, x):
        h = self.pool(F.relu(self.conv1(x)))
        h = F.adaptive_avg_pool2d(F.relu(self.conv2(h)), 1).flatten(1)
        return self.readout(h)


class CNN1d(nn.Module):
    """(N, 2, 20) -> (N, 4): conv, max pool, strided conv, average pool, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 4, 5, padding=2)
        self.conv2 = nn.Conv1d(4, 5, 3, stride=2)
        self.readout = nn.Linear(5 * 2, 4)

    def forward(self, x):
        h = F.max_pool1d(F.relu(self.conv1(x)), 2)
        h = F.avg_pool1d(torch.tanh(self.conv2(h)), 2)
        return self.readout(h.flatten(1))


class ResMLP(nn.Module):
    def __init__(self, width=12, depth=3):
        super().__init__()
        self.embed = nn.Linear(5, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 2 * width), nn.GELU(),
                                                  nn.Linear(2 * width, width)) for _ in range(depth))
        self.readout = nn.Linear(width, 3)

    def forward(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = h + block(h)
        return self.readout(h)


class Block(nn.Module):
    def __init__(self, width, heads, context, dropout):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)
        self.register_buffer("causal", torch.ones(context, context, dtype=torch.bool).tril(), persistent=False)

    def forward(self, h):
        n, t, w = h.shape
        q, k, v = (z.reshape(n, t, self.heads, w // self.heads).transpose(1, 2)  # (N, A, T, E)
                   for z in self.qkv(self.ln1(h)).split(w, dim=-1))
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(w // self.heads)  # (N, A, T, T)
        probs = scores.masked_fill(~self.causal[:t, :t], float("-inf")).softmax(-1)
        h = h + self.drop(self.proj((probs @ v).transpose(1, 2).reshape(n, t, w)))
        return h + self.drop(self.mlp(self.ln2(h)))


class CausalLM(nn.Module):
    """Tokens (N, T) int64 -> logits (N, T, V); readout tied to the token embedding."""

    def __init__(self, vocab=11, width=16, heads=2, context=8, layers=2, dropout=0.0):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.position = nn.Parameter(0.1 * torch.randn(context, width))
        self.blocks = nn.ModuleList(Block(width, heads, context, dropout) for _ in range(layers))
        self.ln = nn.LayerNorm(width)
        self.readout = nn.Linear(width, vocab, bias=False)
        self.readout.weight = self.embed.weight

    def forward(self, tokens):
        h = self.embed(tokens) + self.position[: tokens.shape[-1]]
        for block in self.blocks:
            h = block(h)
        return self.readout(self.ln(h))


class GRULM(nn.Module):
    """Embedding + a GRU written with nn.Linear gates (nn.GRU's equations and weight layout) + readout."""

    def __init__(self, vocab=9, hidden=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.input_gates = nn.Linear(hidden, 3 * hidden)  # nn.GRU's weight_ih_l0 / bias_ih_l0 (r, z, n)
        self.hidden_gates = nn.Linear(hidden, 3 * hidden)  # weight_hh_l0 / bias_hh_l0
        self.readout = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        gi = self.input_gates(self.embed(tokens))  # (N, T, 3H)
        h = gi.new_zeros(gi.shape[0], gi.shape[-1] // 3)
        states = []
        for t in range(tokens.shape[1]):
            i_r, i_z, i_n = gi[:, t].chunk(3, -1)
            h_r, h_z, h_n = self.hidden_gates(h).chunk(3, -1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
            states.append(h)
        return self.readout(torch.stack(states, 1))


class TorchGRULM(nn.Module):
    def __init__(self, vocab=9, hidden=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.readout(self.gru(self.embed(tokens))[0])


def _batches(kind: str, seed: int, steps: int, members: int | None = None):
    """`steps` (x, y) batches; members: per-member data (K, N, ...) instead of shared."""
    g = torch.Generator().manual_seed(seed)
    lead = () if members is None else (members,)
    out = []
    for _ in range(steps):
        if kind in ("mlp", "resmlp"):
            x = torch.randn(*lead, 12, 5, generator=g, dtype=torch.float64)
            y = torch.randn(*lead, 12, 3, generator=g, dtype=torch.float64)
        elif kind in ("cnn2d", "cnn1d"):
            shape = (12, 1, 8, 8) if kind == "cnn2d" else (12, 2, 20)
            x = torch.randn(*lead, *shape, generator=g, dtype=torch.float64)
            y = torch.randint(0, 4, (*lead, 12), generator=g)
        else:
            vocab, t = (11, 8) if kind == "lm" else (9, 7)
            tokens = torch.randint(0, vocab, (*lead, 6, t + 1), generator=g)
            x, y = tokens[..., :-1], tokens[..., 1:].clone()
            y[..., 0, :2] = -100  # ignored positions
        out.append((x, y))
    return out


ARCHITECTURES = {
    "mlp": (MLP, "half_sse"), "cnn2d": (CNN2d, "cross_entropy"), "cnn1d": (CNN1d, "cross_entropy"),
    "resmlp": (ResMLP, "mse"), "lm": (CausalLM, "cross_entropy"), "gru": (GRULM, "cross_entropy"),
}


def _members(factory, seeds, **kwargs) -> list[nn.Module]:
    with torch.random.fork_rng(devices=[]):
        out = []
        for seed in seeds:
            torch.manual_seed(seed)
            out.append(factory(**kwargs).double())
        return out


def _torch_optimizer(name, params, lr, weight_decay, momentum):
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return (torch.optim.Adam if name == "adam" else torch.optim.AdamW)(params, lr=lr, weight_decay=weight_decay)


def _hyper(lrs, wds, moms) -> MemberHyper:
    # float64: the reference takes Python floats, and a float32 lr would differ from it by ~1e-8
    return MemberHyper(torch.tensor(lrs, dtype=torch.float64), torch.tensor(wds, dtype=torch.float64),
                       torch.tensor(moms, dtype=torch.float64))


def _train_ensemble(stacked: StackedModel, batches, loss, optimizer, hyper, per_member=False, **kwargs):
    state = init_optimizer_state(optimizer, stacked.params)
    losses = []
    for step, (x, y) in enumerate(batches, start=1):
        step_losses, grads = losses_and_grads(stacked, x, y, loss, per_member_data=per_member, **kwargs)
        optimizer_step(optimizer, stacked.params, grads, state, hyper, 1.0, {}, step)
        losses.append(step_losses)
    return torch.stack(losses)


def _train_alone(module, batches, loss, optimizer, lr, wd, momentum):
    module = copy.deepcopy(module)
    opt = _torch_optimizer(optimizer, module.parameters(), lr, wd, momentum)
    losses = []
    for x, y in batches:
        opt.zero_grad()
        value = named_loss(loss)(module(x), y)
        value.backward()
        opt.step()
        losses.append(value.detach())
    return module, torch.stack(losses)


def _worst_relative(stacked_params, k, module) -> float:
    with torch.no_grad():
        return max(float((stacked_params[n][k] - p).norm() / p.norm()) for n, p in module.named_parameters())


# ---- ensemble == one by one ---------------------------------------------------------------------

OPTIMIZERS = {"sgd": ([0.05, 0.02, 0.08, 0.03], [0.0, 0.01, 0.0, 0.02], [0.9, 0.5, 0.0, 0.9]),
              "adam": ([1e-2, 3e-3, 5e-3, 2e-2], [0.0, 0.01, 0.0, 0.1], [0.0] * 4),
              "adamw": ([1e-2, 3e-3, 5e-3, 2e-2], [0.0, 0.01, 0.1, 0.05], [0.0] * 4)}


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_ensemble_equals_each_member_trained_alone(arch, optimizer):
    factory, loss = ARCHITECTURES[arch]
    members = _members(factory, range(K))
    batches = _batches(arch, 0, STEPS)
    lrs, wds, moms = OPTIMIZERS[optimizer]
    stacked = stack_members(members)
    losses = _train_ensemble(stacked, batches, loss, optimizer, _hyper(lrs, wds, moms))
    for k, member in enumerate(members):
        alone, alone_losses = _train_alone(member, batches, loss, optimizer, lrs[k], wds[k], moms[k])
        # float64, same ops per member in another summation order: ~1e-14 expected
        assert _worst_relative(stacked.params, k, alone) <= 1e-8, (arch, optimizer, k)
        assert torch.allclose(losses[:, k], alone_losses, rtol=1e-10, atol=0)
    # negative control: member 0 trained with member 1's learning rate fails the same check
    other, _ = _train_alone(members[0], batches, loss, optimizer, lrs[1], wds[0], moms[0])
    assert _worst_relative(stacked.params, 0, other) > 1e-4


@pytest.mark.parametrize("chunk_members", [None, 1])
def test_members_with_their_own_data(chunk_members):
    members = _members(MLP, range(3))
    batches = _batches("mlp", 1, 20, members=3)
    stacked = stack_members(members)
    _train_ensemble(stacked, batches, "half_sse", "sgd", _hyper([0.05] * 3, [0.0] * 3, [0.9] * 3), per_member=True,
                    chunk_members=chunk_members)
    for k, member in enumerate(members):
        alone, _ = _train_alone(member, [(x[k], y[k]) for x, y in batches], "half_sse", "sgd", 0.05, 0.0, 0.9)
        assert _worst_relative(stacked.params, k, alone) <= 1e-8  # float64, as above


@pytest.mark.parametrize("arch", list(ARCHITECTURES))
def test_member_alone_and_inside_an_ensemble_give_identical_losses(arch):
    factory, loss = ARCHITECTURES[arch]
    members = _members(factory, range(K))
    x, y = _batches(arch, 2, 1)[0]
    together, grads = losses_and_grads(stack_members(members), x, y, loss)
    for k, member in enumerate(members):
        alone, alone_grads = losses_and_grads(stack_members([member]), x, y, loss)
        assert torch.equal(alone[0], together[k])  # the same vmapped ops on one member's slice
        for name, g in alone_grads.items():
            # float64; bit for bit except where a batch of one takes another gemm path (the GRU)
            assert torch.allclose(g[0], grads[name][k], rtol=1e-12, atol=1e-15), name
        plain = named_loss(loss)(member(x), y).detach()
        assert abs(float(plain) - float(together[k])) <= 1e-12 * abs(float(plain))  # float64 rounding


@pytest.mark.parametrize("chunk_members", [1, 3])
def test_chunks_do_not_change_results(chunk_members):
    members = _members(ResMLP, range(K))
    x, y = _batches("resmlp", 3, 1)[0]
    stacked = stack_members(members)
    losses, grads = losses_and_grads(stacked, x, y, "mse")
    chunked, chunked_grads = losses_and_grads(stacked, x, y, "mse", chunk_members=chunk_members)
    assert torch.allclose(losses, chunked, rtol=1e-12, atol=0)  # float64 rounding
    for name in grads:
        assert torch.allclose(grads[name], chunked_grads[name], rtol=1e-10, atol=1e-14), name
    with pytest.raises(InputError, match="chunk_members"):
        losses_and_grads(stacked, x, y, "mse", chunk_members=0)


def test_forward_shapes_and_token_inputs():
    members = _members(CausalLM, range(3))
    stacked = stack_members(members)
    x, _ = _batches("lm", 4, 1)[0]
    with torch.no_grad():
        out = stacked.forward(stacked.params, x)
    assert out.shape == (3, 6, 8, 11) and not out.requires_grad
    assert stacked.forward(stacked.params, x).requires_grad  # the caller's grad mode
    assert torch.allclose(out[2], members[2](x), rtol=1e-12, atol=1e-14)  # float64 rounding
    per_member = torch.stack([x, x.flip(0), x])
    out = stacked.forward(stacked.params, per_member, per_member_data=True)
    assert torch.allclose(out[1], members[1](x.flip(0)), rtol=1e-12, atol=1e-14)
    with pytest.raises(InputError, match="leading axis of 3"):
        stacked.forward(stacked.params, x, per_member_data=True)


def test_hand_written_gru_is_torch_gru():
    hand, = _members(GRULM, [5])
    ref, = _members(TorchGRULM, [5])
    ref.embed.load_state_dict(hand.embed.state_dict())
    ref.readout.load_state_dict(hand.readout.state_dict())
    with torch.no_grad():
        for suffix, layer in (("ih", hand.input_gates), ("hh", hand.hidden_gates)):
            getattr(ref.gru, f"weight_{suffix}_l0").copy_(layer.weight)
            getattr(ref.gru, f"bias_{suffix}_l0").copy_(layer.bias)
    x, _ = _batches("gru", 0, 1)[0]
    assert torch.allclose(hand(x), ref(x), rtol=1e-12, atol=1e-14)  # float64 rounding


def test_op_without_batching_rule_is_named_and_runs_one_at_a_time():
    members = _members(TorchGRULM, range(3))
    stacked = stack_members(members)
    x, y = _batches("gru", 0, 1)[0]
    with pytest.raises(InputError, match="gru"):
        losses_and_grads(stacked, x, y, "cross_entropy")
    losses, grads = losses_and_grads(stacked, x, y, "cross_entropy", chunk_members=1)
    for k, member in enumerate(members):
        value = named_loss("cross_entropy")(member(x), y)
        for (name, p), g in zip(member.named_parameters(), torch.autograd.grad(value, list(member.parameters()))):
            assert torch.allclose(grads[name][k], g, rtol=1e-12, atol=1e-15), name  # float64, same ops
        assert torch.allclose(losses[k], value.detach(), rtol=1e-13, atol=0)


# ---- dropout and randomness ---------------------------------------------------------------------

class Dropped(nn.Module):
    def __init__(self, p=0.5):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(50))
        self.drop = nn.Dropout(p)

    def forward(self, x):
        return self.drop(x * self.scale)


def test_dropout_members_differ_reproducibly_and_keep_the_global_rng():
    members = _members(Dropped, [0] * K)  # identical members: only the masks differ
    stacked = stack_members(members)
    assert stacked.members == K
    x = torch.ones(200, 50, dtype=torch.float64)
    before = torch.get_rng_state()
    out = stacked.forward(stacked.params, x, generator_seed=7)
    assert torch.equal(torch.get_rng_state(), before)
    assert torch.equal(out, stacked.forward(stacked.params, x, generator_seed=7))
    assert not torch.equal(out, stacked.forward(stacked.params, x, generator_seed=8))
    for j in range(1, K):
        assert not torch.equal(out[0], out[j])
    # in distribution: each member keeps a fraction 1 - p of 10,000 units (standard error 0.005),
    # scaled by 1 / (1 - p), as a member alone does
    kept = (out != 0).double().mean(dim=(1, 2))
    assert torch.all((kept - 0.5).abs() < 4 * 0.005), kept
    assert torch.all(out[out != 0] == 2.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        alone = members[0](x)
    assert abs(float((alone != 0).double().mean()) - 0.5) < 4 * 0.005
    with pytest.raises(InputError, match="generator_seed"):
        stacked.forward(stacked.params, x)
    # one member at a time (no vmap): the same seeding, the same refusal, the same restored RNG
    one_by_one = stacked.forward(stacked.params, x, generator_seed=7, chunk_members=1)
    assert torch.equal(one_by_one, stacked.forward(stacked.params, x, generator_seed=7, chunk_members=1))
    assert not torch.equal(one_by_one[0], one_by_one[1])
    with pytest.raises(InputError, match="generator_seed"):
        stacked.forward(stacked.params, x, chunk_members=1)
    assert torch.equal(torch.get_rng_state(), before)


def test_dropout_training_is_reproducible_from_the_seed():
    def run():
        stacked = stack_members(_members(CausalLM, range(K), dropout=0.2))
        batches = _batches("lm", 0, 5)
        state = init_optimizer_state("adamw", stacked.params)
        hyper = _hyper([1e-2] * K, [0.01] * K, [0.0] * K)
        for step, (x, y) in enumerate(batches, start=1):
            _, grads = losses_and_grads(stacked, x, y, "cross_entropy", generator_seed=1000 + step)
            optimizer_step("adamw", stacked.params, grads, state, hyper, 1.0, {}, step)
        return stacked.params
    before = torch.get_rng_state()
    first, second = run(), run()
    assert torch.equal(torch.get_rng_state(), before)
    for name in first:
        assert torch.equal(first[name], second[name]), name


# ---- refusals and purity ------------------------------------------------------------------------

class WithNorm(nn.Module):
    def __init__(self, norm: nn.Module):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn1 = norm

    def forward(self, x):
        return self.bn1(self.conv(x)).flatten(1).mean(1, keepdim=True)


@pytest.mark.parametrize("norm,name", [(nn.BatchNorm2d(3), "BatchNorm2d"),
                                       (nn.InstanceNorm2d(3, track_running_stats=True), "InstanceNorm2d")])
def test_running_statistics_are_refused(norm, name):
    with pytest.raises(InputError, match=f"model.bn1 is {name} with running statistics"):
        stack_members([WithNorm(copy.deepcopy(norm)) for _ in range(2)])


def test_batchnorm_without_running_statistics_trains_as_alone():
    members = _members(WithNorm, range(3), norm=nn.BatchNorm2d(3, track_running_stats=False))
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 1, 6, 6, generator=g, dtype=torch.float64),
                torch.randn(8, 1, generator=g, dtype=torch.float64)) for _ in range(10)]
    stacked = stack_members(members)
    _train_ensemble(stacked, batches, "mse", "sgd", _hyper([0.1, 0.05, 0.02], [0.0] * 3, [0.9] * 3))
    for k, member in enumerate(members):
        alone, _ = _train_alone(member, batches, "mse", "sgd", [0.1, 0.05, 0.02][k], 0.0, 0.9)
        assert _worst_relative(stacked.params, k, alone) <= 1e-8  # float64 rounding


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)
        self.register_buffer("calls", torch.zeros(()))

    def forward(self, x):
        self.calls.add_(1)
        return self.linear(x)


def test_forward_that_changes_a_buffer_is_refused():
    stacked = stack_members([Counter(), Counter()])
    with pytest.raises(InputError, match="buffer 'calls'"):
        losses_and_grads(stacked, torch.randn(4, 3), torch.randn(4, 1), "mse")


def test_members_of_different_structure_or_mode_are_refused():
    with pytest.raises(InputError, match="at least one"):
        stack_members([])
    with pytest.raises(InputError, match="member 1 differs"):
        stack_members([ResMLP(width=12), ResMLP(width=13)])
    with pytest.raises(InputError, match="train/eval"):
        stack_members([MLP(), MLP().eval()])


def test_the_callers_modules_and_rng_are_left_as_they_were():
    members = _members(CausalLM, range(2), dropout=0.1)
    for member in members:
        member.blocks[0].drop.eval()  # a mixed train/eval state, kept as it was
    saved = [copy.deepcopy(m.state_dict()) for m in members]
    modes = [[sub.training for sub in m.modules()] for m in members]
    rng = torch.get_rng_state()
    stacked = stack_members(members)
    x, y = _batches("lm", 0, 1)[0]
    _, grads = losses_and_grads(stacked, x, y, "cross_entropy", generator_seed=3)
    optimizer_step("sgd", stacked.params, grads, init_optimizer_state("sgd", stacked.params),
                   _hyper([0.1] * 2, [0.0] * 2, [0.0] * 2), 1.0, {}, 1)
    assert torch.equal(torch.get_rng_state(), rng)
    for member, state, mode in zip(members, saved, modes):
        assert all(torch.equal(v, member.state_dict()[n]) for n, v in state.items())
        assert all(p.grad is None for p in member.parameters())
        assert [sub.training for sub in member.modules()] == mode
    assert stacked.params["embed.weight"].is_leaf and "readout.weight" not in stacked.params  # tied: once


def test_frozen_parameters_are_constants():
    members = _members(MLP, range(2))
    for member in members:
        member.net[0].weight.requires_grad_(False)
    stacked = stack_members(members)
    assert "net.0.weight" in stacked.buffers and "net.0.weight" not in stacked.params
    x, y = _batches("mlp", 0, 1)[0]
    _, grads = losses_and_grads(stacked, x, y, "half_sse")
    assert set(grads) == set(stacked.params)


# ---- clipping -----------------------------------------------------------------------------------

@pytest.mark.parametrize("max_norm", [0.5, 3.0])
def test_clipping_is_torch_clip_grad_norm_per_member(max_norm):
    g = torch.Generator().manual_seed(0)
    scales = torch.tensor([0.01, 1.0, 10.0], dtype=torch.float64)  # one member below max_norm, some above
    grads = {"w": torch.randn(3, 4, 5, generator=g, dtype=torch.float64) * scales.view(3, 1, 1),
             "b": torch.randn(3, 5, generator=g, dtype=torch.float64) * scales.view(3, 1)}
    original = {n: g.clone() for n, g in grads.items()}
    clipped = clip_grad_norm_per_member(grads, max_norm)
    norms = per_member_grad_norm(grads)
    for k in range(3):
        params = [torch.zeros(4, 5, dtype=torch.float64, requires_grad=True),
                  torch.zeros(5, dtype=torch.float64, requires_grad=True)]
        params[0].grad, params[1].grad = grads["w"][k].clone(), grads["b"][k].clone()
        total = torch.nn.utils.clip_grad_norm_(params, max_norm)
        assert torch.allclose(norms[k], total, rtol=1e-13, atol=0)  # float64 rounding
        assert torch.allclose(clipped["w"][k], params[0].grad, rtol=1e-13, atol=0)
        assert torch.allclose(clipped["b"][k], params[1].grad, rtol=1e-13, atol=0)
        # negative control: another max_norm gives other gradients for a clipped member
        if float(total) > max_norm:
            assert not torch.allclose(clip_grad_norm_per_member(grads, 1.1 * max_norm)["w"][k], params[0].grad,
                                      rtol=1e-6, atol=0)
    assert all(torch.equal(grads[n], original[n]) for n in grads)  # inputs untouched (new tensors returned)
