"""The trainer-side gradient noise scale equals the standalone instrument on each member."""

import torch

from lmech.models.mlp import MemberModule
from lmech.observables import OBSERVABLES
from lmech.observables.gradient_noise_scale import gradient_noise_scale
from lmech.spec import ModelSpec, RunSpec
from lmech.tasks.gaussian_regression import GaussianRegressionSpec
from lmech.train import build_ensemble, loss_function


def _state(seeds):
    task = GaussianRegressionSpec(n_train=200, input_dim=5)
    return build_ensemble([RunSpec(task=task, model=ModelSpec(width=8, depth=1), seed=s, observe={})
                           for s in seeds])


def test_matches_standalone_per_member_and_is_ensemble_invariant():
    state = _state([0, 1])
    values = OBSERVABLES["gradient_noise_scale"].function(state, small_batch=4, big_batch=64, num_pairs=3)
    assert values["b_simple"].shape == (2,)
    for k in range(2):
        module = MemberModule(state.plan, state.params, k)
        ref = gradient_noise_scale(module, loss_function(state.loss), (state.x_train, state.y_train),
                                   small_batch=4, big_batch=64, num_pairs=3, seed=1_000_003 * k)
        assert abs(ref.b_simple - values["b_simple"][k].item()) <= 1e-9 * abs(ref.b_simple)  # same float path
    alone = OBSERVABLES["gradient_noise_scale"].function(_state([1]), small_batch=4, big_batch=64, num_pairs=3)
    assert abs(alone["b_simple"][0].item() - values["b_simple"][1].item()) <= 1e-9 * abs(alone["b_simple"][0].item())
    # negative control: other batches give a different estimate
    other = OBSERVABLES["gradient_noise_scale"].function(state, small_batch=4, big_batch=64, num_pairs=3)
    state.step = 5
    moved = OBSERVABLES["gradient_noise_scale"].function(state, small_batch=4, big_batch=64, num_pairs=3)
    assert torch.equal(other["b_simple"], values["b_simple"]) and not torch.equal(moved["b_simple"], values["b_simple"])
