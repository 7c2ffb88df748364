"""The newer optimizers (muon, lion, signsgd, schedule_free_adamw, shampoo, soap) against references.

In float64, K = 3 members differing in lr, weight decay and momentum train 50 steps through
`optimizer_step`; each member alone with a reference optimizer must agree to 1e-8 relative
(the same arithmetic in another order: ~1e-14 for the elementwise optimizers and muon, up to
~1e-10 for shampoo and soap, whose eigendecompositions amplify rounding). References:
- muon: torch.optim.Muon on the hidden matrices (its Newton-Schulz made to keep float64: torch
  casts to bfloat16, which is checked separately at bfloat16 tolerance), torch.optim.AdamW on the rest;
- lion: lion-pytorch's Lion; signsgd: Lion with beta1 = beta2 = momentum (Signum, see sign.py);
- schedule_free_adamw: the schedulefree package's AdamWScheduleFreeReference (y and x);
- shampoo, soap: torch has neither, and heavyball (compile-first, float32 state, merged dims,
  its own schedules) cannot reproduce either paper's algorithm in float64, so `_Shampoo` and
  `_Soap` below are plain per-member loops written from the papers (Gupta et al. 2018 Alg. 2;
  Vyas et al. 2024 Alg. 3-4), sharing no code with lmech.
"""

import copy
import math

import lion_pytorch  # the test extra's references
import pytest
import schedulefree
import torch
import torch.optim._muon as torch_muon

from lmech.errors import InputError
from lmech.instruments.losses import named_loss
from lmech.models import build_model
from lmech.models.family import lr_multipliers
from lmech.models.cnn import CNNSpec
from lmech.models.factory import FactorySpec
from lmech.models.linear_recurrence import LinearRecurrenceSpec
from lmech.models.mlp import ModelSpec
from lmech.models.resmlp import ResMLPSpec
from lmech.models.transformer import TransformerSpec
from lmech.spec import ObserveSpec, OptimizerSpec, RunSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.train import (MemberHyper, OptimizerOptions, evaluation_params, hidden_matrices, newton_schulz,
                         optimizer_step, stack_members, train_ensemble)
from lmech.train.functional import losses_and_grads
from lmech.train.schedule import lr_factor


STEPS = 50
K = 3
NEW = ["muon", "lion", "signsgd", "schedule_free_adamw", "shampoo", "soap"]
# per optimizer: lrs, weight decays, momenta (members differ in all three)
HYPER = {
    "muon": ([0.02, 0.05, 0.01], [0.0, 0.1, 0.05], [0.95, 0.9, 0.0]),
    "lion": ([1e-3, 3e-4, 2e-3], [0.0, 0.1, 1.0], [0.0] * 3),
    "signsgd": ([1e-3, 3e-4, 2e-3], [0.0, 0.1, 0.5], [0.9, 0.0, 0.5]),
    "schedule_free_adamw": ([1e-2, 3e-3, 2e-2], [0.0, 0.01, 0.1], [0.0] * 3),
    "shampoo": ([3e-2, 1e-2, 5e-2], [0.0, 0.01, 0.1], [0.0, 0.9, 0.5]),
    "soap": ([3e-3, 1e-3, 5e-3], [0.0, 0.01, 0.1], [0.0] * 3),
}
OPTIONS = OptimizerOptions(adamw_lr_ratio=0.1, precondition_every=3, muon_lr_scale="original")
BETAS, EPS, WARMUP = (0.9, 0.99), 1e-8, 10
EPSILONS = {"shampoo": 1e-4}  # shampoo's statistics start at eps I; 1e-4 keeps stale roots tame


# ---- models and data (lmech's own MLP and transformer families, float64) -------------------------

def _arch(kind: str):
    """(model spec, input shape, output dim, vocab, loss) of one lmech family member."""
    if kind == "mlp":
        return ModelSpec(width=16, depth=2, activation="tanh"), (5,), 3, None, "half_sse"
    spec = TransformerSpec(width=16, heads=2, depth=1, context=8, vocab=11, mlp_ratio=2.0)
    return spec, (8,), spec.vocab, spec.vocab, "cross_entropy"


def _members(kind):
    spec, shape, out, vocab, loss = _arch(kind)
    return [build_model(spec, shape, out, vocab, seed).double() for seed in range(K)], spec, loss


def _batches(kind, steps=STEPS, seed=0):
    spec, shape, out, vocab, _ = _arch(kind)
    g = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        return [(torch.randn(32, *shape, generator=g, dtype=torch.float64),
                 torch.randn(32, out, generator=g, dtype=torch.float64)) for _ in range(steps)]
    tokens = [torch.randint(0, vocab, (6, 9), generator=g) for _ in range(steps)]
    return [(t[:, :-1], t[:, 1:]) for t in tokens]


def _hyper(name, members=None):
    lrs, wds, moms = HYPER[name]
    pick = slice(None) if members is None else members
    as64 = lambda v: torch.tensor(v, dtype=torch.float64)[pick]  # noqa: E731 (the references take Python floats)
    return MemberHyper(as64(lrs), as64(wds), as64(moms))


def _factor(name, step):
    return lr_factor("warmup", step - 1, STEPS, WARMUP) if name == "schedule_free_adamw" else 1.0


def _train_lmech(name, members, spec, loss, batches, hyper):
    """lmech's optimizer_step on the stacked members; (params, optimizer state) after the batches."""
    stacked = stack_members(members)
    matrices = hidden_matrices(spec, members[0]) if name == "muon" else None
    state: dict = {}
    for step, (x, y) in enumerate(batches, start=1):
        _, grads = losses_and_grads(stacked, x, y, loss)
        optimizer_step(name, stacked.params, grads, state, hyper, _factor(name, step), {}, step, *BETAS,
                       EPSILONS.get(name, EPS), options=OPTIONS, matrix_params=matrices)
    return stacked.params, state


# ---- plain references for the optimizers torch lacks ----------------------------------------------

def _unfold_gram(g, axis):
    other = [i for i in range(g.dim()) if i != axis]
    return torch.tensordot(g, g, dims=(other, other))


def _mode(t, matrix, axis):
    return torch.tensordot(matrix, t, dims=([1], [axis])).movedim(0, axis)


def _axes(p, max_dim=10_000):
    return [i for i, d in enumerate(p.shape) if 1 < d <= max_dim]


class _Shampoo:
    """Gupta et al. 2018, Algorithm 2, one tensor at a time; decoupled decay; SGD momentum on the
    preconditioned gradient."""

    def __init__(self, params, lr, weight_decay, momentum, eps, every):
        self.params, self.lr, self.wd, self.mu, self.eps, self.every = list(params), lr, weight_decay, momentum, eps, every
        self.state, self.t = {}, 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        for p in self.params:
            st = self.state.setdefault(p, {})
            axes = _axes(p)
            direction = p.grad
            for i in axes:
                if i not in st:
                    st[i] = self.eps * torch.eye(p.shape[i], dtype=p.dtype)
                st[i] = st[i] + _unfold_gram(p.grad, i)
                if (self.t - 1) % self.every == 0:
                    lam, q = torch.linalg.eigh(st[i])
                    st[("root", i)] = q @ torch.diag(lam.clamp(min=self.eps) ** (-1 / (2 * len(axes)))) @ q.T
                direction = _mode(direction, st[("root", i)], i)
            if self.mu:
                st["buf"] = direction.clone() if "buf" not in st else self.mu * st["buf"] + direction
                direction = st["buf"]
            p.mul_(1 - self.lr * self.wd).add_(direction, alpha=-self.lr)


def _ramped(m):
    """lmech's tie break (soap.tie_broken): + 1e-5 * mean eigenvalue * diag(1/d, ..., d/d)."""
    d = m.shape[0]
    return m + 1e-5 * torch.trace(m) / d * torch.diag(torch.arange(1, d + 1, dtype=m.dtype) / d)


class _Soap:
    """Vyas et al. 2024, Algorithm 3 (Adam in the eigenbasis of L, R) with Algorithm 4's refresh
    (one power iteration + QR, moments permuted by the estimated eigenvalues); the first step only
    measures, as the authors' code; Adam's bias correction in torch's form; vectors: Adam; the
    eigenbases of lmech's tie-broken statistics (`_ramped`)."""

    def __init__(self, params, lr, weight_decay, betas, eps, beta, every):
        self.params, self.lr, self.wd, self.betas, self.eps, self.beta, self.every = (
            list(params), lr, weight_decay, betas, eps, beta, every)
        self.state, self.t = {}, 0

    @torch.no_grad()
    def step(self):
        self.t += 1
        b1, b2 = self.betas
        for p in self.params:
            g = p.grad
            axes = _axes(p) if sum(d > 1 for d in p.shape) > 1 else []
            if p not in self.state:
                st = self.state[p] = {"m": torch.zeros_like(p), "v": torch.zeros_like(p)}
                for i in axes:
                    st[("L", i)] = _unfold_gram(g, i)
                    st[("Q", i)] = torch.linalg.eigh(_ramped(st[("L", i)]))[1].flip(-1)
                continue
            st, s = self.state[p], self.t - 1

            def rotate(t, back=False):
                for i in axes:
                    t = _mode(t, st[("Q", i)] if back else st[("Q", i)].T, i)
                return t

            rotated = rotate(g)
            st["m"] = b1 * st["m"] + (1 - b1) * g
            st["v"] = b2 * st["v"] + (1 - b2) * rotated**2
            step = rotate(rotate(st["m"]) / (1 - b1**s) / ((st["v"] / (1 - b2**s)).sqrt() + self.eps), back=True)
            p.mul_(1 - self.lr * self.wd).add_(step, alpha=-self.lr)
            for i in axes:
                st[("L", i)] = self.beta * st[("L", i)] + (1 - self.beta) * _unfold_gram(g, i)
                if s % self.every == 0:
                    power = _ramped(st[("L", i)]) @ st[("Q", i)]
                    order = torch.argsort(torch.diagonal(st[("Q", i)].T @ power), descending=True)
                    st[("Q", i)] = torch.linalg.qr(power[:, order])[0]
                    st["v"] = st["v"].index_select(i, order)


class _Float64Muon(torch.Tensor):
    """Makes torch.optim.Muon's `.bfloat16()` cast a no-op, so its own Newton-Schulz runs in float64."""

    def bfloat16(self):
        return self.as_subclass(torch.Tensor).clone()


def _reference(name, module, spec, k, lr=None):
    """(optimizers to step, whether schedule-free) for member k alone."""
    lrs, wds, moms = HYPER[name]
    lr, wd, mu = lrs[k] if lr is None else lr, wds[k], moms[k]
    named = dict(module.named_parameters())
    if name == "muon":
        matrices = hidden_matrices(spec, module)
        rest = [p for n, p in named.items() if n not in matrices]
        return [torch.optim.Muon([named[n] for n in matrices], lr=lr, weight_decay=wd, momentum=mu, nesterov=True),
                torch.optim.AdamW(rest, lr=lr * OPTIONS.adamw_lr_ratio, betas=BETAS, eps=EPS, weight_decay=wd)]
    if name == "lion":
        return [lion_pytorch.Lion(named.values(), lr=lr, betas=BETAS, weight_decay=wd)]
    if name == "signsgd":
        return [lion_pytorch.Lion(named.values(), lr=lr, betas=(mu, mu), weight_decay=wd)]
    if name == "schedule_free_adamw":
        opt = schedulefree.AdamWScheduleFreeReference(named.values(), lr=lr, betas=BETAS, eps=EPS, weight_decay=wd,
                                                      warmup_steps=WARMUP)
        opt.train()
        return [opt]
    if name == "shampoo":
        return [_Shampoo(named.values(), lr, wd, mu, EPSILONS[name], OPTIONS.precondition_every)]
    return [_Soap(named.values(), lr, wd, BETAS, EPS, 0.95, OPTIONS.precondition_every)]


def _train_alone(name, member, spec, loss, batches, k, monkeypatch, lr=None):
    module = copy.deepcopy(member)
    optimizers = _reference(name, module, spec, k, lr)
    original = torch_muon._zeropower_via_newtonschulz
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz",
                        lambda g, *args: original(g.as_subclass(_Float64Muon), *args))
    for x, y in batches:
        module.zero_grad()
        named_loss(loss)(module(x), y).backward()
        for opt in optimizers:
            opt.step()
    y_point = {n: p.detach().clone() for n, p in module.named_parameters()}
    if name == "schedule_free_adamw":
        optimizers[0].eval()
    return y_point, {n: p.detach().clone() for n, p in module.named_parameters()}


# The attention key bias shifts every score of a query by the same amount, which softmax ignores:
# its gradient is rounding noise (~1e-17), and sign-based or Adam-normalised steps turn that noise
# into lr-sized moves of arbitrary sign. It is left out of the comparisons.
NOISE_ONLY = ("blocks.0.attention.key.bias",)


def _relative(stacked, k, alone) -> float:
    with torch.no_grad():
        return max(float((stacked[n][k] - p).norm() / p.norm()) for n, p in alone.items() if n not in NOISE_ONLY)


# ---- each optimizer against its reference ---------------------------------------------------------

@pytest.mark.parametrize("kind", ["mlp", "transformer"])
@pytest.mark.parametrize("name", NEW)
def test_equals_reference_step_for_step(name, kind, monkeypatch):
    members, spec, loss = _members(kind)
    batches = _batches(kind)
    params, state = _train_lmech(name, members, spec, loss, batches, _hyper(name))
    x_point = evaluation_params(name, params, state)
    for k, member in enumerate(members):
        y_alone, x_alone = _train_alone(name, member, spec, loss, batches, k, monkeypatch)
        # float64, the same steps in another order (module docstring): far inside 1e-8
        assert _relative(params, k, y_alone) <= 1e-8, (name, kind, k, _relative(params, k, y_alone))
        assert _relative(x_point, k, x_alone) <= 1e-8, (name, kind, k)
    # negative control: member 0 alone at member 1's learning rate misses by orders of magnitude
    other, _ = _train_alone(name, members[0], spec, loss, batches, 0, monkeypatch, lr=HYPER[name][0][1])
    assert _relative(params, 0, other) > 1e-4


# ---- ensemble == one by one ---------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["mlp", "transformer"])
@pytest.mark.parametrize("name", NEW)
def test_ensemble_equals_each_member_alone(name, kind):
    members, spec, loss = _members(kind)
    batches = _batches(kind, steps=20)
    params, _ = _train_lmech(name, members, spec, loss, batches, _hyper(name))
    for k, member in enumerate(members):
        alone, _ = _train_lmech(name, [member], spec, loss, batches, _hyper(name, [k]))
        worst = _relative(params, k, {n: p[0] for n, p in alone.items()})
        # float64, the same vmapped ops on one member's slice (eigh, QR per member): ~1e-13 at most
        assert worst <= 1e-10, (name, kind, k, worst)


# ---- Newton-Schulz ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 256), (256, 64)])
def test_newton_schulz_singular_values_lie_in_the_band(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, *shape, generator=g, dtype=torch.float64)
    values = torch.linalg.svdvals(newton_schulz(x))
    # Jordan et al. 2024: the five-step quintic leaves singular values in about [0.5, 1.5]
    # (measured here: 0.68 to 1.13)
    assert values.min() >= 0.5 and values.max() <= 1.5, (values.min(), values.max())
    # negative control: one step has not yet lifted the small singular values into the band
    assert torch.linalg.svdvals(newton_schulz(x, steps=1)).min() < 0.5


def test_newton_schulz_is_torch_muons_iteration():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 24, 40, generator=g, dtype=torch.float64)
    ours = newton_schulz(x)
    coefficients, eps = (torch_muon.DEFAULT_A, torch_muon.DEFAULT_B, torch_muon.DEFAULT_C), torch_muon.EPS
    for k in range(3):
        same_dtype = torch_muon._zeropower_via_newtonschulz(x[k].as_subclass(_Float64Muon), coefficients, 5, eps)
        # float64, the same iteration as bmm instead of mm: rounding only
        assert float((ours[k] - same_dtype).norm() / same_dtype.norm()) <= 1e-12
        bf16 = torch_muon._zeropower_via_newtonschulz(x[k], coefficients, 5, eps).double()
        # torch's own runs in bfloat16 (8-bit mantissa): agreement to a few percent
        assert float((ours[k] - bf16).norm() / ours[k].norm()) <= 5e-2


@pytest.mark.parametrize("scale_rule", ["original", "match_rms_adamw"])
def test_muon_layouts_and_scale_are_torch_muons(scale_rule, monkeypatch):
    """A (fan_in, fan_out) matrix ("in_out", the lmech MLP's W) updates as the transpose of torch's
    (fan_out, fan_in) one; a conv kernel as its (fan_out, fan_in * kernel) flattening."""
    original = torch_muon._zeropower_via_newtonschulz
    monkeypatch.setattr(torch_muon, "_zeropower_via_newtonschulz",
                        lambda g, *args: original(g.as_subclass(_Float64Muon), *args))
    gen = torch.Generator().manual_seed(2)
    weight = torch.randn(24, 8, generator=gen, dtype=torch.float64)  # (fan_out, fan_in): scale sqrt(3)
    grads = [torch.randn(24, 8, generator=gen, dtype=torch.float64) for _ in range(5)]
    reference = weight.clone().requires_grad_(True)
    opt = torch.optim.Muon([reference], lr=0.02, weight_decay=0.1, momentum=0.9, adjust_lr_fn=scale_rule)
    stacked = {"w": weight.T.clone().unsqueeze(0), "c": weight.reshape(24, 2, 2, 2).clone().unsqueeze(0)}
    hyper = MemberHyper(*(torch.tensor([v], dtype=torch.float64) for v in (0.02, 0.1, 0.9)))
    options = OptimizerOptions(muon_lr_scale=scale_rule)
    state: dict = {}
    for step, grad in enumerate(grads, start=1):
        reference.grad = grad.clone()
        opt.step()
        optimizer_step("muon", stacked, {"w": grad.T.unsqueeze(0), "c": grad.reshape(1, 24, 2, 2, 2)}, state, hyper,
                       1.0, {}, step, options=options, matrix_params={"w": "in_out", "c": "out_in"})
    with torch.no_grad():
        for value in (stacked["w"][0].T, stacked["c"][0].reshape(24, 8)):
            assert float((value - reference).norm() / reference.norm()) <= 1e-12  # float64 rounding
        # negative control: the scale matters (a tall matrix's update is sqrt(3) or 0.2 sqrt(24) times NS)
        assert float((weight - reference).norm() / reference.norm()) > 1e-3


def test_muon_refuses_unnamed_or_unknown_matrices():
    params = {"w": torch.zeros(1, 3, 3)}
    hyper = MemberHyper(torch.tensor([0.1]), torch.zeros(1), torch.zeros(1))
    with pytest.raises(InputError, match="matrix_params"):
        optimizer_step("muon", params, {"w": torch.ones(1, 3, 3)}, {}, hyper, 1.0, {}, 1)
    with pytest.raises(InputError, match="not parameters"):
        optimizer_step("muon", params, {"w": torch.ones(1, 3, 3)}, {}, hyper, 1.0, {}, 1, matrix_params={"v": "out_in"})
    with pytest.raises(InputError, match="unknown optimizer"):
        optimizer_step("adagrad", params, {"w": torch.ones(1, 3, 3)}, {}, hyper, 1.0, {}, 1)


# ---- which parameters are hidden matrices ------------------------------------------------------

FAMILY_MEMBERS = {
    "transformer": (TransformerSpec(width=16, heads=2, depth=2, context=8, vocab=11, parameterization="mup",
                                    base_width=8), (8,), 11, 11),
    "linear_recurrence": (LinearRecurrenceSpec(width=16, depth=2, vocab=11, parameterization="mup", base_width=8),
                          (8,), 11, 11),
    "cnn": (CNNSpec(dim=1, width=16, depth=3, parameterization="mup", base_width=8), (2, 12), 4, None),
    "resmlp": (ResMLPSpec(width=16, depth=2, block_depth=2, parameterization="mup", base_width=8), (5,), 3, None),
}


@pytest.mark.parametrize("kind", list(FAMILY_MEMBERS))
def test_hidden_matrices_are_the_familys_hidden_weights(kind):
    """Cross-check with the family's own muP table at m = 2: under SGD, exactly the hidden weights keep
    multiplier 1 (input weights, readouts and vectors' rules give 2; the readout bias, 1, is a vector)."""
    spec, shape, out, vocab = FAMILY_MEMBERS[kind]
    module = build_model(spec, shape, out, vocab, 0)
    found = hidden_matrices(spec, module)
    multipliers = lr_multipliers(spec, module, "sgd")
    expected = {n for n, p in module.named_parameters() if p.dim() >= 2 and math.isclose(multipliers[n], 1.0)}
    assert set(found) == expected and found and all(v == "out_in" for v in found.values())
    assert len(expected) < sum(1 for _ in module.parameters())  # the check can fail: not everything is hidden


def test_hidden_matrices_of_the_mlp_and_a_factory():
    spec = ModelSpec(width=16, depth=3)
    module = build_model(spec, (5,), 3, None, 0)
    assert hidden_matrices(spec, module) == {"weights.W1": "in_out", "weights.W2": "in_out"}
    assert hidden_matrices(spec, module.plan) == {"W1": "in_out", "W2": "in_out"}
    shallow = ModelSpec(width=16, depth=1)
    assert hidden_matrices(shallow, build_model(shallow, (5,), 3, None, 0)) == {}  # input and readout only
    with pytest.raises(InputError, match="no role table"):
        hidden_matrices(FactorySpec(factory="torch.nn:Linear", kwargs={"in_features": 3, "out_features": 3}),
                        torch.nn.Linear(3, 3))


# ---- members with lr 0, the spec, the trainer ------------------------------------------------------

@pytest.mark.parametrize("name", NEW)
def test_a_member_with_lr_zero_stays_put(name):
    members, spec, loss = _members("mlp")
    before = {n: p.detach().clone() for n, p in members[1].named_parameters()}
    hyper = MemberHyper(torch.tensor([1e-2, 0.0, 1e-2], dtype=torch.float64), torch.full((3,), 0.1, dtype=torch.float64),
                        torch.full((3,), 0.9, dtype=torch.float64))
    params, state = _train_lmech(name, members, spec, loss, _batches("mlp", steps=5), hyper)
    for n, p in before.items():
        assert torch.equal(evaluation_params(name, params, state)[n][1], p), n
    assert not torch.equal(params["weights.W1"][0], dict(members[0].named_parameters())["weights.W1"])


def test_spec_fields_are_validated_and_reach_the_options():
    spec = OptimizerSpec(name="soap", ns_steps=3, precondition_every=4, precondition_beta=0.9, max_precondition_dim=64)
    options = OptimizerOptions.from_spec(spec)
    assert (options.ns_steps, options.refresh_every("soap"), options.statistics_beta("soap")) == (3, 4, 0.9)
    assert OptimizerOptions().refresh_every("shampoo") == 1 and OptimizerOptions().statistics_beta("soap") == 0.95
    for bad in ({"ns_steps": 0}, {"ns_steps": 100}, {"precondition_every": 0}, {"precondition_beta": 0.0},
                {"precondition_beta": 1.5}, {"max_precondition_dim": 0}, {"adamw_lr_ratio": 0.0},
                {"muon_lr_scale": "sqrt"}, {"name": "adagrad"}):
        with pytest.raises(ValueError):
            OptimizerSpec(**bad)


TRAIN_LR = {"muon": 0.02, "lion": 1e-3, "signsgd": 1e-3, "schedule_free_adamw": 1e-2, "shampoo": 3e-2, "soap": 3e-3}


@pytest.mark.parametrize("name", NEW)
def test_the_trainer_trains_an_mlp_with_each(name):
    from lmech.observables import make_observer

    specs = [RunSpec(task=GaussianRegressionSpec(n_train=64, input_dim=8), model=ModelSpec(width=32, depth=2),
                     optimizer=OptimizerSpec(name=name, lr=TRAIN_LR[name] * factor, weight_decay=0.01,
                                             momentum=0.9 if name in ("muon", "signsgd", "shampoo") else 0.0),
                     steps=100, seed=seed, observe={}) for seed, factor in ((0, 1.0), (1, 0.5))]
    observer, steps = make_observer({"loss": ObserveSpec(every=100)}, 100)
    for result in train_ensemble(specs, observer, steps):
        losses = {step: value for step, column, value in result.rows if column == "loss/train"}
        assert result.diverged_step is None and losses[100] < 0.2 * losses[0], (name, losses)


def test_the_trainer_trains_a_transformer_with_muon():
    from lmech.observables import make_observer
    from lmech.tasks.markov_language import MarkovLanguageSpec

    spec = RunSpec(task=MarkovLanguageSpec(vocab_size=8, seq_len=8, n_train=64, n_test=16, concentration=0.3),
                   model=TransformerSpec(width=16, heads=2, depth=1, context=8),
                   optimizer=OptimizerSpec(name="muon", lr=0.02, momentum=0.95, adamw_lr_ratio=0.1), steps=60,
                   observe={})
    observer, steps = make_observer({"loss": ObserveSpec(every=60)}, 60)
    result, = train_ensemble([spec], observer, steps)
    losses = {step: value for step, column, value in result.rows if column == "loss/train"}
    assert result.diverged_step is None and losses[60] < 0.9 * losses[0], losses
